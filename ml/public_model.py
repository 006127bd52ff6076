"""The traded public part of the model: published once (hash on-chain), then changed only by
on-chain aggregates, so every DO can recompute it from chain data alone."""


from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from omniplus.core.errors import InputError
from omniplus.ml.model import (
    model_hash,
)
from omniplus.ml.updates import QuantSpec, fedavg_delta


class HashMismatch(InputError):
    """The published public weights do not hash to the task's on-chain modelHash."""


# ---------------------------------------------------------------------- the public model file
def write_public(path: Path, arch: dict, layers: Sequence[str], vector: torch.Tensor, spec: QuantSpec) -> bytes:
    """Publish w₀ for the DOs (JSON: exact float32 values) and return its hash (the modelHash)."""
    v32 = vector.to(torch.float32)
    doc = {
        "arch": arch,
        "public_layers": list(layers),
        "weights": [float(x) for x in v32],
        "quant": asdict(spec),
    }
    path.write_text(json.dumps(doc))
    return model_hash(v32)


def read_public(path: str | Path, expected_hash: bytes) -> dict:
    """Load the published w₀ and check it against the on-chain modelHash (HashMismatch if not)."""
    try:
        doc = json.loads(Path(path).read_text())
        w = torch.tensor(doc["weights"], dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the published public model {path}: {exc}") from exc
    got = model_hash(w)
    if got != bytes(expected_hash):
        raise HashMismatch(
            f"published public model {path} hashes to 0x{got.hex()}, but the task's modelHash is "
            f"0x{bytes(expected_hash).hex()}: refusing to train on it"
        )
    doc["weights"] = w
    doc["quant"] = QuantSpec(**doc["quant"])
    return doc


def next_public(w: torch.Tensor, aggregate: Sequence[int], accepted: int, spec: QuantSpec) -> torch.Tensor:
    """w_r = w_{r−1} + FedAvg of the batch, in float32: the one rule the MO and every DO apply."""
    delta = fedavg_delta(aggregate, accepted, spec)[: w.numel()]
    return (w.to(torch.float64) + delta).to(torch.float32)


def words_hash(words: Sequence[int]) -> bytes:
    from web3 import Web3

    return bytes(Web3.keccak(b"".join(int(x).to_bytes(32, "big") for x in words)))


def read_aggregates(market: Any, params: Any, alerts: list[str] | None = None) -> list[dict]:
    """Every batch on-chain, from the BatchSubmitted events alone (never calldata: a batch relayed
    through a contract reads the same): words checked against the contract's stored commitment,
    then unpacked. A batch that cannot be read is reported in `alerts` with its index and skipped."""
    from omniplus.contracts.rollup import _alert
    from omniplus.prover.binding import unpack_words

    out = []
    for ev in sorted(market.batch_events(alerts=alerts), key=lambda e: e.index):
        try:
            stored = bytes(market.contract.functions.aggregateCommitments(ev.index).call())
            if words_hash(ev.words) != stored:
                raise InputError("event words do not match the stored aggregate commitment")
            aggregate = unpack_words(params, ev.words)
            gas = market.w3.eth.get_transaction_receipt(ev.tx_hash)["gasUsed"]
        except (InputError, ValueError) as exc:
            _alert(alerts, f"batch {ev.index}: cannot read its aggregate ({exc}); skipped")
            continue
        out.append({"index": ev.index, "aggregate": aggregate, "payees": list(ev.payees), "gas": gas})
    return out


def current_public(w0: torch.Tensor, market: Any, params: Any, spec: QuantSpec) -> torch.Tensor:
    """What a DO derives from the chain: w₀ plus every batch so far."""
    w = w0
    for b in read_aggregates(market, params):
        w = next_public(w, b["aggregate"], len(b["payees"]), spec)
    return w
