"""Prover backends behind one interface: native (Python), snarkjs (node engine), circom (wasm + CLI)."""

from __future__ import annotations

from omniplus.prover.backends.base import BACKEND_NAMES, ProveJob, ProverBackend, get_backend

__all__ = ["BACKEND_NAMES", "ProveJob", "ProverBackend", "get_backend"]
