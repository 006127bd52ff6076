"""snarkjs backend: snarkjs' own Groth16 prover, run in the long-lived node worker.

Why not the CLI: each `snarkjs groth16 prove` pays node start-up, module loading and the
wasm curve build (≈0.5 s), and re-reads the zkey; the worker pays that once per process
and keeps the zkey in memory. The same worker serves the collaborative prover's MSMs and
FFTs on shares (see prover/engine.py), which this class also exposes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omniplus.core.errors import ProofError
from omniplus.prover.backends.base import ProveJob
from omniplus.prover.engine import G1, G2, SnarkjsEngine

if TYPE_CHECKING:
    from omniplus.prover.proof import Proof


class Backend:
    """Proves from the Python witness with snarkjs' groth16.prove in the node worker."""

    name = "snarkjs"

    def __init__(self) -> None:
        self._engines: dict[str, SnarkjsEngine] = {}

    def engine(self, zkey: str | os.PathLike) -> SnarkjsEngine:
        """The engine bound to one zkey (loaded into the worker once, then kept)."""
        key = str(Path(zkey).resolve())
        if key not in self._engines:
            self._engines[key] = SnarkjsEngine(key)
        return self._engines[key]

    def prove(self, job: ProveJob) -> tuple[Proof, list[int]]:
        """Write the witness beside the job (for the proof directory), then prove in node."""
        from omniplus.prover.proof import proof_from_json
        from omniplus.prover.wtns import write_wtns

        eng = self.engine(job.zkey)
        if len(job.witness) != eng.n_vars:
            raise ProofError(f"witness has {len(job.witness)} values, the zkey expects {eng.n_vars}")
        job.workdir.mkdir(parents=True, exist_ok=True)
        write_wtns(job.workdir / "witness.wtns", job.witness)
        proof_json, public = eng.prove(job.witness)
        return proof_from_json(proof_json), public

    # The engine primitives, by zkey path (DESIGN.md: native and snarkjs backends expose them).
    def msm_g1(self, zkey: str | os.PathLike, section: int, scalars: Sequence[int],
               start: int = 0) -> G1 | None:
        return self.engine(zkey).msm_g1(section, scalars, start)

    def msm_g2(self, zkey: str | os.PathLike, section: int, scalars: Sequence[int],
               start: int = 0) -> G2 | None:
        return self.engine(zkey).msm_g2(section, scalars, start)

    def fft(self, values: Sequence[int]) -> list[int]:
        from omniplus.prover.engine import worker

        return worker().fft(values)

    def ifft(self, values: Sequence[int]) -> list[int]:
        from omniplus.prover.engine import worker

        return worker().fft(values, inverse=True)
