"""circom backend: the circom2-compiled wasm witness calculator plus the snarkjs CLI.

It ignores the Python witness and recomputes it from the circuit inputs, so it is the
independent cross-check of the witness code (and the slowest path: two node start-ups).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from omniplus.core import resources as paths
from omniplus.core.errors import ProofError, ToolError
from omniplus.core.tools import run_tool
from omniplus.prover.backends.base import ProveJob

if TYPE_CHECKING:
    from omniplus.prover.proof import Proof


class Backend:
    """`snarkjs wtns calculate` then `snarkjs groth16 prove`, files in job.workdir."""

    name = "circom"

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout

    def prove(self, job: ProveJob) -> tuple[Proof, list[int]]:
        """Witness from job.input_json with the wasm; a failing constraint assert → ProofError."""
        from omniplus.prover.proof import read_proof_file, read_public_file

        snarkjs = paths.node_tool("snarkjs")
        work = job.workdir
        work.mkdir(parents=True, exist_ok=True)
        inputs, wtns = work / "input.json", work / "witness.wtns"
        proof_path, public_path = work / "proof.json", work / "public.json"
        inputs.write_text(json.dumps(job.input_json))
        try:
            run_tool([snarkjs, "wtns", "calculate", job.wasm, inputs, wtns], cwd=work,
                     what="snarkjs wtns calculate", timeout=self.timeout)
        except ToolError as exc:
            raise ProofError(f"the circuit rejected the inputs (witness calculation failed): {exc}") from exc
        run_tool([snarkjs, "groth16", "prove", job.zkey, wtns, proof_path, public_path], cwd=work,
                 what="snarkjs groth16 prove", timeout=self.timeout)
        return read_proof_file(proof_path), read_public_file(public_path)
