"""Groth16 proofs in snarkjs' JSON format: the one format the CLI, servers and contract share.

proof.json: {"pi_a": [x, y, "1"], "pi_b": [[x.c0, x.c1], [y.c0, y.c1], ["1", "0"]],
"pi_c": [x, y, "1"], "protocol": "groth16", "curve": "bn128"} with decimal strings;
public.json: list of decimal strings. Loading is strict so a corrupt file is caught here with
the field named, not later as a mysterious pairing failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omniplus.core.errors import ProofError
from omniplus.core.jsonfile import read_json
from omniplus.prover.curve import G1Point, G2Point, g1_on_curve, g2_in_subgroup
from omniplus.prover.field import Q, R

_DEC = re.compile(r"(?:0|[1-9][0-9]*)\Z")


@dataclass(frozen=True)
class Proof:
    """A Groth16 proof (A ∈ G1, B ∈ G2, C ∈ G1) in the API point representation."""

    a: G1Point
    b: G2Point
    c: G1Point


def g1_to_json(p: G1Point) -> list[str]:
    """snarkjs' projective-looking affine form; infinity as (0, 1, 0) like ffjavascript."""
    if p is None:
        return ["0", "1", "0"]
    return [str(p[0]), str(p[1]), "1"]


def g2_to_json(p: G2Point) -> list[list[str]]:
    if p is None:
        return [["0", "0"], ["1", "0"], ["0", "0"]]
    (x0, x1), (y0, y1) = p
    return [[str(x0), str(x1)], [str(y0), str(y1)], ["1", "0"]]


def proof_to_json(p: Proof) -> dict:
    """The proof.json object."""
    return {"pi_a": g1_to_json(p.a), "pi_b": g2_to_json(p.b), "pi_c": g1_to_json(p.c),
            "protocol": "groth16", "curve": "bn128"}


def parse_dec(v: Any, name: str, modulus: int) -> int:
    """A canonical decimal string (ints accepted too) below modulus, else ProofError naming it."""
    if isinstance(v, bool):
        raise ProofError(f"{name}: expected a decimal string, got {v!r}")
    if isinstance(v, int):
        x = v
    elif isinstance(v, str) and _DEC.match(v) and len(v) <= 80:
        x = int(v)
    else:
        raise ProofError(f"{name}: expected a decimal string, got {str(v)[:40]!r}"[:120])
    if not 0 <= x < modulus:
        raise ProofError(f"{name}: value is not below the field modulus")
    return x


def g1_from_json(v: Any, name: str) -> G1Point:
    """[x, y, z] with z = "1" (or the point at infinity, z = "0"), on the curve."""
    if not isinstance(v, list) or len(v) != 3:
        raise ProofError(f"{name}: expected [x, y, z], got {str(v)[:60]}")
    x, y, z = (parse_dec(c, f"{name}[{i}]", Q) for i, c in enumerate(v))
    if z == 0:
        return None
    if z != 1:
        raise ProofError(f"{name}: z must be 1 (affine) or 0 (infinity)")
    if not g1_on_curve((x, y)):
        raise ProofError(f"{name}: point is not on the curve")
    return (x, y)


def g2_from_json(v: Any, name: str) -> G2Point:
    """[[x0, x1], [y0, y1], [z0, z1]] with z = 1 (or 0 for infinity), in the r-torsion subgroup."""
    if not isinstance(v, list) or len(v) != 3 or not all(isinstance(c, list) and len(c) == 2 for c in v):
        raise ProofError(f"{name}: expected [[x0,x1],[y0,y1],[z0,z1]], got {str(v)[:60]}")
    vals = [[parse_dec(e, f"{name}[{i}][{j}]", Q) for j, e in enumerate(c)] for i, c in enumerate(v)]
    if vals[2] == [0, 0]:
        return None
    if vals[2] != [1, 0]:
        raise ProofError(f"{name}: z must be [1, 0] (affine) or [0, 0] (infinity)")
    p = ((vals[0][0], vals[0][1]), (vals[1][0], vals[1][1]))
    if not g2_in_subgroup(p):
        raise ProofError(f"{name}: point is not on the curve or not in the order-r subgroup")
    return p


def proof_from_json(d: Any) -> Proof:
    """Parse and validate proof.json content; ProofError names the bad field."""
    if not isinstance(d, dict):
        raise ProofError("proof: expected a JSON object")
    for key in ("pi_a", "pi_b", "pi_c"):
        if key not in d:
            raise ProofError(f"proof: missing {key}")
    if d.get("protocol", "groth16") != "groth16":
        raise ProofError(f"proof.protocol: expected 'groth16', got {d.get('protocol')!r}")
    if d.get("curve", "bn128") != "bn128":
        raise ProofError(f"proof.curve: expected 'bn128', got {d.get('curve')!r}")
    return Proof(g1_from_json(d["pi_a"], "pi_a"), g2_from_json(d["pi_b"], "pi_b"),
                 g1_from_json(d["pi_c"], "pi_c"))


def public_to_json(public: Sequence[int]) -> list[str]:
    return [str(int(v)) for v in public]


def public_from_json(v: Any) -> list[int]:
    """public.json: a list of decimal strings below r."""
    if not isinstance(v, list):
        raise ProofError("public: expected a JSON list of decimal strings")
    if len(v) > 1024:
        raise ProofError(f"public: {len(v)} signals, far more than any setup has")
    return [parse_dec(x, f"public[{i}]", R) for i, x in enumerate(v)]


def write_proof_dir(path: str | os.PathLike, proof: Proof, public: Sequence[int],
                    meta: dict | None = None, *, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write proof.json, public.json, meta.json (+ extra files, e.g. witness.wtns) atomically:
    everything goes into a temp dir beside the target, which then replaces it in one rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / "proof.json").write_text(json.dumps(proof_to_json(proof), indent=1) + "\n")
        (tmp / "public.json").write_text(json.dumps(public_to_json(public), indent=1) + "\n")
        if meta is not None:
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_proof_dir(path: str | os.PathLike, n_public: int | None = None) -> tuple[Proof, list[int]]:
    """Load proof.json and public.json from a proof directory (ProofError on anything malformed).

    With n_public, public.json must hold exactly that many signals (checked here, before any
    verifier — snarkjs answers a wrong count with a stack trace)."""
    d = Path(path)
    proof, public = read_proof_file(d / "proof.json"), read_public_file(d / "public.json")
    if n_public is not None and len(public) != n_public:
        raise ProofError(f"{d / 'public.json'}: {len(public)} public signals, but the setup's circuit has "
                         f"{n_public} (rho, F)" if n_public == 2 else
                         f"{d / 'public.json'}: {len(public)} public signals, the setup expects {n_public}")
    return proof, public


def _load_json(p: Path) -> Any:
    return read_json(p, ProofError, max_bytes=1 << 20)  # a proof or public.json is a few KB


def read_proof_file(p: str | os.PathLike) -> Proof:
    try:
        return proof_from_json(_load_json(Path(p)))
    except ProofError as exc:
        raise ProofError(f"{p}: {exc}") if str(p) not in str(exc) else exc from None


def read_public_file(p: str | os.PathLike) -> list[int]:
    try:
        return public_from_json(_load_json(Path(p)))
    except ProofError as exc:
        raise ProofError(f"{p}: {exc}") if str(p) not in str(exc) else exc from None
