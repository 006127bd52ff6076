"""One model version per round: the file the MO publishes (the perturbed model, or the plain one with
--plain-model, and how to weight and clip the upload), its hash, and the MO's EIP-191 signature over
(market, version, hash) with the key that deployed the task (the contract's modelOwner). A DO accepts
a version only if the file hashes to what was signed and the signer is the task's modelOwner on-chain;
version 0's weights must also hash to the task's on-chain modelHash. No contract change is needed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omniplus.core.errors import InputError
from omniplus.ml.model import model_hash

FORMAT = "omniplus-model-version/1"


class ModelRefused(InputError):
    """A published model version whose hash, signature or signer does not match the task."""


def _body_hash(doc: dict) -> bytes:
    """sha256 of the canonical JSON of everything but the hash and signature (floats round-trip exactly)."""
    body = {k: v for k, v in doc.items() if k not in ("model_hash", "signature")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).digest()


def version_digest(market: str, version: int, h: bytes) -> bytes:
    """What the MO signs: keccak(tag ‖ market (20 bytes) ‖ version (u256) ‖ hash)."""
    from web3 import Web3

    return bytes(Web3.keccak(b"omniplus-model-version" + bytes.fromhex(market[2:]) + version.to_bytes(32, "big")
                             + h))


def publish_version(path: Path, *, key: str, market: str, version: int, arch: dict, layers: Sequence[str],
                    weights: torch.Tensor, upload_weights: torch.Tensor, clip: float, head_epochs: int,
                    encrypted: bool) -> dict:
    """Write one version's file (JSON, exact float32 model values) signed by the MO; returns the document."""
    from omniplus.servers.signing import sign_digest

    w32 = weights.detach().to(torch.float32)
    doc: dict[str, Any] = {
        "format": FORMAT, "market": market, "version": int(version), "encrypted": bool(encrypted),
        "arch": arch, "public_layers": list(layers), "weights": [float(x) for x in w32],
        "weights_hash": "0x" + model_hash(w32).hex(),
        "upload": {"weights": [float(x) for x in upload_weights.to(torch.float64)], "clip": float(clip),
                   "head_epochs": int(head_epochs)},
    }
    h = _body_hash(doc)
    doc["model_hash"] = "0x" + h.hex()
    doc["signature"] = "0x" + sign_digest(version_digest(market, version, h), key).hex()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)  # never a half-written version
    return doc


def read_version(path: str | Path, *, market: str, owner: str, version: int | None = None,
                 onchain_hash: bytes | None = None) -> dict:
    """Load a version and check it (ModelRefused otherwise): the file hashes to its stated hash, the
    signature over (market, version, hash) recovers to the task's modelOwner, it is for this market
    (and this version, if given); version 0's weights hash to the on-chain modelHash."""
    from omniplus.servers.signing import recover_signer

    try:
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r} is not {FORMAT}")
        stated = bytes.fromhex(doc["model_hash"][2:])
        sig = bytes.fromhex(doc["signature"][2:])
        v = int(doc["version"])
        w = torch.tensor(doc["weights"], dtype=torch.float32)
        uw = torch.tensor(doc["upload"]["weights"], dtype=torch.float64)
        clip = float(doc["upload"]["clip"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot read the published model version {path}: {exc}") from exc
    got = _body_hash(doc)
    if got != stated:
        raise ModelRefused(f"model version {path} hashes to 0x{got.hex()}, not its signed hash "
                           f"0x{stated.hex()}: refusing to train on it")
    if str(doc["market"]).lower() != market.lower():
        raise ModelRefused(f"model version {path} is for market {doc['market']}, not {market}")
    if version is not None and v != version:
        raise ModelRefused(f"model version {path} is version {v}, the current round needs {version}")
    signer = "0x" + recover_signer(version_digest(doc["market"], v, stated), sig).hex()
    if signer.lower() != owner.lower():
        raise ModelRefused(f"model version {path} is signed by {signer}, not by the task's modelOwner {owner}")
    if model_hash(w).hex() != str(doc["weights_hash"])[2:]:
        raise ModelRefused(f"model version {path}: weights do not match weights_hash")
    if v == 0 and onchain_hash is not None and model_hash(w) != bytes(onchain_hash):
        raise ModelRefused(f"model version 0 {path} does not hash to the task's on-chain modelHash "
                           f"0x{bytes(onchain_hash).hex()}")
    if not clip > 0 or not bool(torch.isfinite(uw).all()) or bool((uw <= 0).any()):
        raise InputError(f"model version {path}: upload clip and weights must be positive and finite")
    doc["weights"], doc["upload"]["weights"] = w, uw
    return doc
