"""Native prover and Python verifier against snarkjs on the toy circuit (real setup)."""

from __future__ import annotations

import json
import random

import pytest
from toy_circuit import shared_toy, snarkjs

from omniplus.core.errors import ProofError
from omniplus.prover.backends import ProveJob, get_backend
from omniplus.prover.curve import G1_GEN, g1_add
from omniplus.prover.field import R
from omniplus.prover.groth16_prove import NativeEngine, h_scalars, odd_evaluations, prove, qap_evaluations
from omniplus.prover.groth16_verify import verify
from omniplus.prover.ntt import naive_dft
from omniplus.prover.proof import Proof, read_proof_dir, write_proof_dir
from omniplus.prover.shamir import reconstruct, share
from omniplus.prover.zkey import read_zkey


@pytest.fixture(scope="module")
def toy():
    return shared_toy()


@pytest.fixture(scope="module")
def zkey(toy):
    return read_zkey(toy.zkey)


@pytest.fixture(scope="module")
def native(toy, zkey):
    return prove(zkey, toy.witness, rng=random.Random(1))


def test_native_proof_verifies_with_snarkjs_and_python(toy, native, tmp_path):
    proof, public = native
    assert public == toy.witness[1:3]
    assert verify(toy.vkey, proof, public)
    out = write_proof_dir(tmp_path / "p", proof, public, {})
    res = snarkjs("groth16", "verify", toy.vkey_path, out / "public.json", out / "proof.json", cwd=tmp_path)
    assert "OK" in res


def test_snarkjs_proof_verifies_with_python(toy, tmp_path):
    snarkjs("groth16", "prove", toy.zkey, toy.wtns, tmp_path / "proof.json", tmp_path / "public.json",
            cwd=tmp_path)
    proof, public = read_proof_dir(tmp_path)
    assert public == toy.witness[1:3]
    assert verify(toy.vkey, proof, public)


def test_tampered_proof_or_public_rejected(toy, native):
    proof, public = native
    vk = toy.vkey
    assert not verify(vk, proof, [public[0], (public[1] + 1) % R])
    assert not verify(vk, proof, [public[0]])  # wrong length
    assert not verify(vk, proof, [public[0], public[1] + R])  # not reduced
    assert not verify(vk, Proof(g1_add(proof.a, G1_GEN), proof.b, proof.c), public)
    assert not verify(vk, Proof(proof.a, proof.b, (proof.c[0], proof.c[1] + 1)), public)  # off curve
    assert not verify(vk, Proof(None, proof.b, proof.c), public)
    assert not verify(vk, "not a proof", public)  # type: ignore[arg-type]


def test_malformed_vkey_raises(toy, native):
    proof, public = native
    vk = dict(toy.vkey)
    vk["IC"] = vk["IC"][:1] + [["1", "3", "1"]] + vk["IC"][2:]
    with pytest.raises(ProofError, match="IC\\[1\\]"):
        verify(vk, proof, public)
    with pytest.raises(ProofError, match="vk_delta_2"):
        verify({k: v for k, v in toy.vkey.items() if k != "vk_delta_2"}, proof, public)


def test_h_scalars_are_the_quotient_on_the_odd_coset(zkey, toy):
    """Interpolating a, b, c and evaluating on ω_2n^(2k+1) by brute force gives the same scalars."""
    a, b, c = qap_evaluations(zkey, toy.witness)
    eng = NativeEngine(zkey)
    n = zkey.domain_size
    from omniplus.prover.field import ROOTS, inv

    w2n = ROOTS[zkey.power + 1]
    w_inv = inv(ROOTS[zkey.power])
    for vals in (a, b):
        coeffs = [x * inv(n) % R for x in naive_dft(vals, w_inv)]
        want = [sum(cf * pow(w2n, (2 * k + 1) * i, R) for i, cf in enumerate(coeffs)) % R for k in range(n)]
        assert odd_evaluations(vals, eng) == want
    h = h_scalars(a, b, c, eng)
    assert len(h) == n and any(h)


def test_prover_steps_work_on_shares(zkey, toy):
    """The linear steps commute with sharing: A opened from shares equals A from the witness."""
    from omniplus.prover.groth16_prove import commit_a

    rng = random.Random(3)
    eng = NativeEngine(zkey)
    shares = [share(v, 1, 3, rng) for v in toy.witness]
    r_sh = share(12345, 1, 3, rng)
    a_sh = {j: qap_evaluations(zkey, [s[j - 1] for s in shares])[0] for j in (1, 2)}
    a_clear = qap_evaluations(zkey, toy.witness)[0]
    assert [reconstruct({1: a_sh[1][k], 2: a_sh[2][k]}) for k in range(len(a_clear))] == a_clear
    from omniplus.prover.curve import g1_mul
    from omniplus.prover.shamir import lagrange_at_zero

    pts = {j: commit_a(zkey, eng, [s[j - 1] for s in shares], r_sh[j - 1]) for j in (1, 3)}
    lam = lagrange_at_zero([1, 3])
    opened = g1_add(g1_mul(pts[1], lam[0]), g1_mul(pts[3], lam[1]))
    assert opened == commit_a(zkey, eng, toy.witness, 12345)


def test_native_backend_and_bad_witness(toy, tmp_path):
    be = get_backend("native")
    assert be.name == "native"
    job = ProveJob(zkey=toy.zkey, wasm=toy.wasm, witness=toy.witness, input_json=toy.input, workdir=tmp_path)
    proof, public = be.prove(job)
    assert verify(toy.vkey, proof, public)
    with pytest.raises(ProofError, match="witness has"):
        be.prove(ProveJob(toy.zkey, toy.wasm, toy.witness[:-1], toy.input, tmp_path))
    bad = list(toy.witness)
    bad[-1] += 1  # unsatisfied: the proof is made but does not verify
    proof, public = be.prove(ProveJob(toy.zkey, toy.wasm, bad, toy.input, tmp_path))
    assert not verify(toy.vkey, proof, public)
    json.dumps(be.timings)
