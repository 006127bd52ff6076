"""The setup's own Solidity verifier (prover/solidity_verifier.py): real proofs accepted by the
deployed contract, tampered proofs and out-of-field inputs refused, and a 350-input verifier under
EIP-170's size limit where snarkjs' unrolled template is not."""

from __future__ import annotations

import json
import random

import pytest

from omniplus.contracts.chain import Anvil
from omniplus.contracts.solc import compile_contracts
from omniplus.contracts.verifier import VERIFY_GAS, deploy_verifier, proof_calldata
from omniplus.core.errors import SetupError
from omniplus.prover.curve import G1_GEN, g1_mul
from omniplus.prover.field import R
from omniplus.prover.proof import read_proof_dir
from omniplus.prover.solidity_verifier import MAX_PUBLIC, verifier_source

EIP170 = 24_576


def test_real_proof_accepted_tampered_refused(small_setup, tmp_path) -> None:
    from omniplus.api import prove

    rng = random.Random(5)
    grads = tmp_path / "g.json"
    grads.write_text(json.dumps({"scale_bits": 0, "gradients": [[rng.randint(-9, 9) for _ in range(40)]
                                                                 for _ in range(2)]}))
    res = prove(small_setup.path, grads, "snarkjs", tmp_path / "proof")
    proof, public = read_proof_dir(res.out)
    assert "omniplus" in small_setup.verifier_sol.read_text()  # the setup exported our verifier
    with Anvil() as node:
        v = deploy_verifier(node.w3, node.keys[0], small_setup.verifier_sol)
        a, b, c = proof_calldata(proof)

        def check(pub, a=a, c=c) -> bool:
            return bool(v.functions.verifyProof(a, b, c, pub).call({"gas": VERIFY_GAS}))

        pub = [int(x) for x in public]
        assert check(pub)
        assert not check([pub[0] + 1] + pub[1:])  # another ctx
        assert not check(pub[:-1] + [pub[-1] ^ 1])  # another word
        assert not check([pub[0] + R] + pub[1:])  # same value mod r, not canonical
        assert not check(pub, a=[a[0], (a[1] + 1)])  # A off the curve
        assert not check(pub, c=[a[0], a[1]])  # C replaced by A


def _vk(n: int) -> dict:
    pt = [str(x) for x in g1_mul(G1_GEN, 7)] + ["1"]
    g2 = [["1", "2"], ["3", "4"], ["1", "0"]]
    return {"protocol": "groth16", "curve": "bn128", "nPublic": n, "vk_alpha_1": pt, "vk_beta_2": g2,
            "vk_gamma_2": g2, "vk_delta_2": g2, "IC": [pt] * (n + 1)}


def test_hundreds_of_public_inputs_fit_eip170(tmp_path) -> None:
    src = tmp_path / "Groth16Verifier.sol"
    src.write_text(verifier_source(_vk(350)))
    art = compile_contracts(src)["Groth16Verifier"]
    assert art.deployed_size < EIP170
    with Anvil() as node:  # deployable on a chain that enforces the limit
        deploy_verifier(node.w3, node.keys[0], src)


def test_bad_verification_keys_refused() -> None:
    with pytest.raises(SetupError, match="contract limit"):
        verifier_source(_vk(MAX_PUBLIC + 1))
    bad = _vk(3)
    bad["nPublic"] = 4
    with pytest.raises(SetupError, match="nPublic"):
        verifier_source(bad)
    bad = _vk(3)
    bad["IC"][2] = ["1", "x", "1"]
    with pytest.raises(SetupError, match=r"IC\[2\]"):
        verifier_source(bad)
    bad = _vk(3)
    bad["vk_alpha_1"] = [str(R * 100), "1", "1"]
    with pytest.raises(SetupError, match="base field"):
        verifier_source(bad)
