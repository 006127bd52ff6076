"""snarkjs' own verifier, run as the pinned CLI: the reference every proof the network makes must pass."""

from __future__ import annotations

from pathlib import Path

from omniplus.core.errors import ProofError
from omniplus.core.resources import node_tool


def snarkjs_verify(vkey: Path, public_json: Path, proof_json: Path) -> bool:
    """`snarkjs groth16 verify` exits 0 on a valid proof and 1 on an invalid one."""
    import subprocess

    proc = subprocess.run(
        [str(node_tool("snarkjs")), "groth16", "verify", str(vkey), str(public_json), str(proof_json)],
        capture_output=True,
        timeout=300,
    )
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    if proc.returncode not in (0, 1) or ("OK" not in text and "Invalid" not in text):
        raise ProofError(f"snarkjs groth16 verify could not check the proof: {text.strip()[-300:]}")
    return proc.returncode == 0
