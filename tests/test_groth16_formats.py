"""File formats against the real tools: zkey vs `snarkjs zkey export json`, r1cs, wtns, the
binary container, proof JSON; corrupt inputs give SetupError/ProofError naming the file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from toy_circuit import shared_toy, snarkjs

from omniplus.core.errors import ProofError, SetupError
from omniplus.prover.binfile import build_binfile, read_binfile
from omniplus.prover.curve import G1_GEN, G2_GEN, g1_mul, g2_mul
from omniplus.prover.field import Q, R
from omniplus.prover.proof import (
    Proof,
    g1_to_json,
    g2_to_json,
    proof_from_json,
    proof_to_json,
    public_from_json,
    read_proof_dir,
    write_proof_dir,
)
from omniplus.prover.r1cs import first_unsatisfied, read_r1cs
from omniplus.prover.wtns import read_wtns, write_wtns
from omniplus.prover.zkey import read_zkey


@pytest.fixture(scope="module")
def toy():
    return shared_toy()


def test_zkey_matches_snarkjs_export(toy, tmp_path):
    snarkjs("zkey", "export", "json", toy.zkey, tmp_path / "zk.json", cwd=tmp_path)
    d = json.loads((tmp_path / "zk.json").read_text())
    z = read_zkey(toy.zkey, check_points=True)
    assert (z.n_vars, z.n_public, z.domain_size, z.power) == (
        d["nVars"], d["nPublic"], d["domainSize"], d["power"])
    for key, attr in [("vk_alpha_1", "alpha1"), ("vk_beta_1", "beta1"), ("vk_delta_1", "delta1")]:
        assert g1_to_json(getattr(z, attr)) == d[key]
    for key, attr in [("vk_beta_2", "beta2"), ("vk_gamma_2", "gamma2"), ("vk_delta_2", "delta2")]:
        assert g2_to_json(getattr(z, attr)) == d[key]
    assert [g1_to_json(p) for p in z.ic] == d["IC"]
    assert [g1_to_json(p) for p in z.a] == d["A"]
    assert [g1_to_json(p) for p in z.b1] == d["B1"]
    assert [g2_to_json(p) for p in z.b2] == d["B2"]
    assert d["C"][: z.n_public + 1] == [None] * (z.n_public + 1)
    assert [g1_to_json(p) for p in z.c] == d["C"][z.n_public + 1:]
    assert [g1_to_json(p) for p in z.h] == d["hExps"]
    assert [{"matrix": c.matrix, "constraint": c.constraint, "signal": c.signal, "value": str(c.value)}
            for c in z.coeffs] == d["ccoefs"]
    vk = json.loads(toy.vkey_path.read_text())
    vk.pop("vk_alphabeta_12")
    assert z.vkey() == vk
    head = read_zkey(toy.zkey, points=False)
    assert head.ic == z.ic and head.a == []


def test_r1cs_and_witness(toy, tmp_path):
    r1cs = read_r1cs(toy.r1cs, with_map=True)
    assert r1cs.n_wires == len(toy.witness)
    assert (r1cs.n_pub_out, r1cs.n_pub_in, r1cs.n_prv_in) == (1, 1, toy.n)
    assert r1cs.n_constraints == 6 * toy.n + 1
    assert r1cs.wire_to_label is not None and len(r1cs.wire_to_label) == r1cs.n_wires
    assert first_unsatisfied(r1cs, toy.witness) is None
    bad = list(toy.witness)
    bad[-1] = (bad[-1] + 1) % R
    assert first_unsatisfied(r1cs, bad) is not None
    assert toy.witness[1] == 7 * sum(((3 * i + 1) % 16) ** 2 for i in range(toy.n))  # y = x·Σa²
    # wtns round trip, byte-identical to snarkjs' own file
    write_wtns(tmp_path / "w.wtns", toy.witness)
    assert read_wtns(tmp_path / "w.wtns") == toy.witness
    assert (tmp_path / "w.wtns").read_bytes() == toy.wtns.read_bytes()


def test_binfile_roundtrip_and_errors(tmp_path):
    blob = build_binfile(b"abcd", 1, [(1, b"xyz"), (2, b""), (7, bytes(100))])
    p = tmp_path / "f.bin"
    p.write_bytes(blob)
    bf = read_binfile(p, b"abcd")
    assert bytes(bf.section(1)) == b"xyz" and bytes(bf.section(2)) == b"" and len(bf.section(7)) == 100
    assert bf.section(3, required=False) is None
    with pytest.raises(SetupError, match="section 3 is missing"):
        bf.section(3)
    with pytest.raises(SetupError, match="wrong magic"):
        read_binfile(p, b"zkey")
    p.write_bytes(blob[:-10])
    with pytest.raises(SetupError, match="truncated"):
        read_binfile(p, b"abcd")
    with pytest.raises(ProofError, match="cannot read"):
        read_binfile(tmp_path / "missing", b"abcd", error=ProofError)


def _corrupt(src: Path, dst: Path, fn) -> Path:
    data = bytearray(src.read_bytes())
    dst.write_bytes(bytes(fn(data)))
    return dst


def test_corrupt_files_name_file_and_problem(toy, tmp_path):
    zk = toy.zkey
    bad = _corrupt(zk, tmp_path / "trunc.zkey", lambda d: d[: len(d) // 2])
    with pytest.raises(SetupError, match=r"trunc\.zkey.*truncated"):
        read_zkey(bad)
    bad = _corrupt(zk, tmp_path / "magic.zkey", lambda d: b"ykey" + d[4:])
    with pytest.raises(SetupError, match=r"magic\.zkey.*wrong magic"):
        read_zkey(bad)
    with pytest.raises(SetupError, match="not a Groth16 zkey|wrong magic"):
        read_zkey(toy.r1cs)

    def flip_alpha(d: bytearray) -> bytearray:
        # section 2 follows section 1 (12 + 12 + 4 bytes in); α1 sits after the 84 header bytes
        off = 12 + 12 + 4 + 12 + 84
        d[off] ^= 1
        return d

    bad = _corrupt(zk, tmp_path / "alpha.zkey", flip_alpha)
    with pytest.raises(SetupError, match=r"alpha\.zkey.*header point 1 is not on the curve"):
        read_zkey(bad)
    bad = _corrupt(toy.wtns, tmp_path / "w.wtns", lambda d: d[:-1])
    with pytest.raises(ProofError, match=r"w\.wtns"):
        read_wtns(bad)
    bad = _corrupt(toy.r1cs, tmp_path / "c.r1cs", lambda d: d[:40])
    with pytest.raises(SetupError, match=r"c\.r1cs"):
        read_r1cs(bad)


def _sample_proof() -> Proof:
    return Proof(g1_mul(G1_GEN, 3), g2_mul(G2_GEN, 5), g1_mul(G1_GEN, 7))


def test_proof_json_roundtrip_and_dir(tmp_path):
    p = _sample_proof()
    j = proof_to_json(p)
    assert j["pi_a"][2] == "1" and j["pi_b"][2] == ["1", "0"] and j["protocol"] == "groth16"
    assert j["curve"] == "bn128" and all(isinstance(v, str) for v in j["pi_a"])
    assert proof_from_json(j) == p
    out = write_proof_dir(tmp_path / "proof", p, [1, 2], {"backend": "native"})
    assert sorted(x.name for x in out.iterdir()) == ["meta.json", "proof.json", "public.json"]
    assert read_proof_dir(out) == (p, [1, 2])
    write_proof_dir(out, p, [3], None)  # replace in place
    assert read_proof_dir(out)[1] == [3]
    assert [x.name for x in tmp_path.iterdir()] == ["proof"]  # no temp dirs left behind


@pytest.mark.parametrize("mutate,field", [
    (lambda j: j["pi_a"].__setitem__(0, "0x12"), "pi_a"),
    (lambda j: j["pi_a"].__setitem__(0, str(Q)), "pi_a"),
    (lambda j: j["pi_a"].__setitem__(1, str(int(j["pi_a"][1]) + 1)), "pi_a"),
    (lambda j: j["pi_c"].pop(), "pi_c"),
    (lambda j: j["pi_b"].__setitem__(0, ["1", "2"]), "pi_b"),
    (lambda j: j["pi_b"][0].__setitem__(1, "-5"), "pi_b"),
    (lambda j: j.pop("pi_c"), "pi_c"),
    (lambda j: j.__setitem__("protocol", "plonk"), "protocol"),
])
def test_proof_json_rejects_malformed(mutate, field):
    j = proof_to_json(_sample_proof())
    mutate(j)
    with pytest.raises(ProofError, match=field):
        proof_from_json(j)


def test_proof_json_rejects_g2_outside_subgroup():
    from test_groth16_math import _twist_point_not_in_subgroup

    j = proof_to_json(Proof(G1_GEN, _twist_point_not_in_subgroup(), G1_GEN))
    with pytest.raises(ProofError, match="pi_b.*subgroup"):
        proof_from_json(j)


def test_public_json_and_bad_files(tmp_path):
    assert public_from_json(["0", "12"]) == [0, 12]
    for bad in (["01"], [str(R)], "12", [1.5], ["-1"]):
        with pytest.raises(ProofError, match="public"):
            public_from_json(bad)
    (tmp_path / "proof.json").write_text("{not json")
    (tmp_path / "public.json").write_text("[]")
    with pytest.raises(ProofError, match="proof.json.*not valid JSON"):
        read_proof_dir(tmp_path)
    struct.pack("<I", 0)  # keep struct import honest for readers adding binary cases
