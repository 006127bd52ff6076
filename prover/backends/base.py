"""The interface every prover backend implements.

A backend turns one statement (a zkey plus the witness or the circuit inputs) into a
snarkjs-format Groth16 proof. native and snarkjs start from the Python witness; circom
recomputes the witness with the circom2-compiled wasm, so it doubles as a cross-check.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from omniplus.core.errors import InputError

if TYPE_CHECKING:
    from omniplus.prover.proof import Proof

BACKEND_NAMES = ("native", "snarkjs", "circom")


@dataclass
class ProveJob:
    zkey: Path  # final .zkey of the setup
    wasm: Path  # circom2 witness generator (circuit_js/circuit.wasm)
    witness: list[int]  # full witness computed in Python (wire 0 = 1)
    input_json: dict  # circom input signals, decimal strings
    workdir: Path  # scratch space the backend may write to


class ProverBackend(Protocol):
    name: str

    def prove(self, job: ProveJob) -> tuple[Proof, list[int]]:
        """Return the proof and the public signals (snarkjs order: outputs, then public inputs)."""
        ...


def get_backend(name: str) -> ProverBackend:
    """Instantiate a backend by name; modules are imported lazily so one backend's tools are optional."""
    if name not in BACKEND_NAMES:
        raise InputError(f"unknown prover backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    module = importlib.import_module(f"omniplus.prover.backends.{name}")
    return module.Backend()
