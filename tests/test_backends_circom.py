"""circom backend (wasm witness + snarkjs CLI) on the small circuit of test_backends_snarkjs."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_backends_snarkjs import Setup, build_small, snarkjs_verifies

from omniplus.core.errors import ProofError
from omniplus.prover.backends.base import ProveJob


@pytest.fixture(scope="session")
def small_circom(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return build_small(tmp_path_factory.getbasetemp())


def test_circom_backend_proof_verifies(small_circom: Setup, tmp_path: Path) -> None:
    from omniplus.prover.backends import get_backend
    from omniplus.prover.proof import proof_to_json

    inputs = small_circom.inputs(x=4, a=6, b=8)
    backend = get_backend("circom")
    assert backend.name == "circom"
    job = ProveJob(zkey=small_circom.zkey, wasm=small_circom.wasm, witness=[], input_json=inputs,
                   workdir=tmp_path)
    proof, public = backend.prove(job)
    assert public[1:] == [6, 8]
    assert public == small_circom.witness(inputs, "circom_w")[1:4]
    assert snarkjs_verifies(small_circom, proof_to_json(proof), public, "circom")


def test_circom_backend_agrees_with_snarkjs_backend(small_circom: Setup, tmp_path: Path) -> None:
    from omniplus.prover.backends.circom import Backend as Circom
    from omniplus.prover.backends.snarkjs import Backend as Snarkjs

    inputs = small_circom.inputs(x=9, a=1, b=2)
    witness = small_circom.witness(inputs, "agree")
    z, wasm = small_circom.zkey, small_circom.wasm
    _, pub_c = Circom().prove(ProveJob(z, wasm, [], inputs, tmp_path / "c"))
    _, pub_s = Snarkjs().prove(ProveJob(z, wasm, witness, inputs, tmp_path / "s"))
    assert pub_c == pub_s


def test_circom_backend_broken_constraint_is_proof_error(small_circom: Setup, tmp_path: Path) -> None:
    from omniplus.prover.backends.circom import Backend

    inputs = small_circom.inputs(x=3, xinv=5)  # x·xinv ≠ 1
    with pytest.raises(ProofError, match="witness calculation failed") as info:
        Backend().prove(ProveJob(small_circom.zkey, small_circom.wasm, [], inputs, tmp_path))
    assert "Error in template Small_0" in str(info.value)  # the tail of the wasm message
    assert not (tmp_path / "proof.json").exists()
