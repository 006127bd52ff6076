"""The --ptau ceremony path and the development key against snarkjs' own files.

Every ptau here is made by snarkjs itself at a small power (new, one contribute, prepare phase2),
then corrupted where a test needs it. Hostile files must be refused with the reason and leave
nothing behind; the honest one must give a setup that `snarkjs zkey verify` accepts.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from omniplus.circuits.build import compile_circuit
from omniplus.circuits.params import CircuitParams
from omniplus.core import resources as paths
from omniplus.core.errors import SetupError, ToolError
from omniplus.core.tools import run_tool
from omniplus.prover.ptau import check_ptau, ptau_info
from omniplus.prover.trusted_setup import SetupDir, dev_zkey, run_setup, verify_zkey
from omniplus.prover.zkey import read_zkey

PARAMS = CircuitParams(batch=2, dims=8, bits=8, norm_bound=10000)
POWER = 9  # the circuit needs 2^8; one spare power so a few more public inputs still fit


def snarkjs(*args, cwd: Path, input: bytes | None = None) -> str:
    proc = run_tool([paths.node_tool("snarkjs"), *args], cwd=cwd, what=f"snarkjs {args[0]}", timeout=600,
                    input=input)
    return proc.stdout.decode()


def sections(path: Path) -> dict[int, tuple[int, int]]:
    """section type -> (offset of its data, size), first occurrence."""
    data = path.read_bytes()
    (n,) = struct.unpack_from("<I", data, 8)
    out: dict[int, tuple[int, int]] = {}
    pos = 12
    for _ in range(n):
        t, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        out.setdefault(t, (pos, size))
        pos += size
    return out


@pytest.fixture(scope="module")
def ptaus(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ptau")
    snarkjs("powersoftau", "new", "bn128", str(POWER), "p0.ptau", cwd=d)
    snarkjs("powersoftau", "contribute", "p0.ptau", "p1.ptau", "--name=one", "-e=some entropy", cwd=d)
    snarkjs("powersoftau", "prepare", "phase2", "p1.ptau", "final.ptau", cwd=d)
    snarkjs("powersoftau", "prepare", "phase2", "p0.ptau", "zero.ptau", cwd=d)
    snarkjs("powersoftau", "new", "bls12381", "4", "bls.ptau", cwd=d)
    final = d / "final.ptau"
    secs = sections(final)
    data = bytearray(final.read_bytes())
    # tau*G1[1] replaced by tau*G1[2]: a valid curve point, but the wrong one
    s2 = secs[2][0]
    wrong = bytearray(data)
    wrong[s2 + 64:s2 + 128] = data[s2 + 128:s2 + 192]
    (d / "wrong_tau1.ptau").write_bytes(wrong)
    # a Lagrange point of the level the setup reads (section 12, level 8), moved off the curve
    s12 = secs[12][0]
    off = bytearray(data)
    p = s12 + ((1 << 8) - 1 + 5) * 64 + 32  # point 5 of level 8, low byte of y
    off[p] ^= 1
    (d / "off_curve.ptau").write_bytes(off)
    return {"final": final, "zero": d / "zero.ptau", "bls": d / "bls.ptau",
            "wrong_tau1": d / "wrong_tau1.ptau", "off_curve": d / "off_curve.ptau", "dir": d}


@pytest.fixture(scope="module")
def circuit(tmp_path_factory):
    return compile_circuit(PARAMS, tmp_path_factory.mktemp("circuit"))


@pytest.mark.parametrize("name, reason", [
    ("zero", "records no contribution"),
    ("bls", "BLS12-381"),
    ("wrong_tau1", "tau\\*G1 powers are not consistent with tau"),
    ("off_curve", "point 5 is not on the BN254 curve"),
])
def test_hostile_ptau_refused_and_nothing_written(ptaus, tmp_path, name, reason):
    out = tmp_path / "setup"
    with pytest.raises(SetupError, match=reason):
        run_setup(PARAMS, out, ptau=ptaus[name])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_honest_ceremony_ptau_passes_every_check(ptaus, circuit):
    info = check_ptau(ptaus["final"], circuit.n_constraints, 2)
    assert (info.power, info.contributions) == (POWER, 1)
    with pytest.raises(SetupError, match="needs power >= 10"):
        check_ptau(ptaus["final"], 600, 2)
    assert ptau_info(ptaus["zero"]).contributions == 0


def test_zero_contribution_refused_even_if_count_forged(ptaus, tmp_path):
    """Section 7's count is only a claim: τ = 1 itself is caught by ptau_check.js."""
    forged = bytearray(ptaus["zero"].read_bytes())
    s7 = sections(ptaus["zero"])[7][0]
    forged[s7:s7 + 4] = struct.pack("<I", 1)
    f = tmp_path / "forged.ptau"
    f.write_bytes(forged)
    with pytest.raises(SetupError, match=r"tau = 1 \(no contribution"):
        check_ptau(f, 100, 2)


def test_ceremony_setup_verifies_with_snarkjs(ptaus, tmp_path):
    s = run_setup(PARAMS, tmp_path / "cer", ptau=ptaus["final"], contributors=("alice", "bob"))
    m = json.loads(s.params_file.read_text())
    assert m["development"] is False and m["ptau"]["development"] is False
    assert m["ptau"]["power"] == POWER and len(m["ptau"]["sha256"]) == 64
    assert "snarkjs zkey verify (zkey against r1cs and ptau)" in m["timings_s"]
    out = snarkjs("zkey", "verify", s.r1cs, ptaus["final"], s.zkey, cwd=tmp_path)
    assert "ZKey Ok!" in out
    # a swapped-in foreign zkey is caught by the same check
    dev = tmp_path / "dev.zkey"
    dev_zkey(s.r1cs, dev)
    with pytest.raises(SetupError, match="does not verify against"):
        verify_zkey(s.r1cs, ptaus["final"], dev, tmp_path)
    assert SetupDir.load(s.path).params == PARAMS


def test_dev_zkey_has_snarkjs_structure(ptaus, circuit, tmp_path):
    """Same sections, sizes, header fields, coefficient records and zero pattern as `groth16 setup`."""
    theirs = tmp_path / "theirs.zkey"
    ours = tmp_path / "ours.zkey"
    snarkjs("groth16", "setup", circuit.r1cs, ptaus["final"], theirs, cwd=tmp_path)
    stats = dev_zkey(circuit.r1cs, ours)
    assert stats["n_vars"] == circuit.n_wires and stats["power"] == 8
    st, so = sections(theirs), sections(ours)
    assert list(st) == list(so) == [1, 2, 4, 3, 9, 8, 5, 6, 7, 10]
    assert {t: s for t, (_, s) in st.items()} == {t: s for t, (_, s) in so.items()}
    dt, do = theirs.read_bytes(), ours.read_bytes()
    for t in (1, 4):  # protocol id and the coefficient records are fixed by the r1cs
        (pt, sz), (po, _) = st[t], so[t]
        assert dt[pt:pt + sz] == do[po:po + sz]
    assert dt[st[2][0]:st[2][0] + 84] == do[so[2][0]:so[2][0] + 84]  # q, r, nVars, nPublic, domain
    zt, zo = read_zkey(theirs), read_zkey(ours, check_points=True)
    for name in ("ic", "a", "b1", "b2", "c", "h"):
        assert [p is None for p in getattr(zt, name)] == [p is None for p in getattr(zo, name)], name
    assert zo.alpha1 != zt.alpha1 and zo.gamma2 != zt.gamma2  # fresh toxic waste, not the ptau's
    # fresh toxic waste every run
    again = tmp_path / "again.zkey"
    dev_zkey(circuit.r1cs, again)
    assert read_zkey(again, points=False).alpha1 != zo.alpha1


def test_dev_setup_cannot_pass_zkey_verify(ptaus, circuit, tmp_path):
    """Documented in docs/DESIGN.md: a key not derived from the ptau is refused by snarkjs."""
    z = tmp_path / "dev.zkey"
    dev_zkey(circuit.r1cs, z)
    with pytest.raises(SetupError, match="does not verify against"):
        verify_zkey(circuit.r1cs, ptaus["final"], z, tmp_path)


def test_dev_zkey_refuses_a_broken_r1cs(circuit, tmp_path):
    bad = tmp_path / "bad.r1cs"
    data = circuit.r1cs.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ToolError, match="zkey_dev.js failed.*runs past the end"):
        dev_zkey(bad, tmp_path / "x.zkey")


def test_default_contributors_dev_none_ceremony_dev(ptaus, tmp_path):
    """A development key needs no phase-2 contribution (delta is fresh); a ceremony key does (delta = 1)."""
    s = run_setup(PARAMS, tmp_path / "dev")
    assert s.contributions() == [] and s.manifest["development"] is True
    work = tmp_path / "w"
    work.mkdir()
    from omniplus.prover.binding import BindingContext, public_inputs
    from omniplus.prover.witness import full_witness
    from omniplus.prover.wtns import write_wtns

    ctx = BindingContext(chain_id=31337, market="0x" + "5f" * 20, task_id=1, batch_index=4,
                         payees=("0x" + "aa" * 20, "0x" + "bb" * 20))
    rows = [[3, -7, 0, 12, -60, 70, 1, -1], [0, 5, 5, 5, -5, 0, 0, 2]]
    pub = public_inputs(PARAMS, ctx, rows)
    write_wtns(work / "w.wtns", full_witness(s, rows, *pub[1:]))
    snarkjs("groth16", "prove", s.zkey, "w.wtns", "proof.json", "public.json", cwd=work)
    assert "OK" in snarkjs("groth16", "verify", s.vkey, "public.json", "proof.json", cwd=work)
    with pytest.raises(SetupError, match="needs at least one phase-2 contributor"):
        run_setup(PARAMS, tmp_path / "cer", ptau=ptaus["final"], contributors=())
    assert not (tmp_path / "cer").exists()
