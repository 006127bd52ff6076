"""The development ptau is exactly what snarkjs' own prepare phase2 makes; bad ptau files are refused."""

from __future__ import annotations

import os
import struct

import pytest

from omniplus.core import resources as paths
from omniplus.core.errors import SetupError
from omniplus.core.tools import run_tool
from omniplus.prover.ptau import dev_ptau, dev_ptau_path, ptau_info, required_power, resolve_ptau


def snarkjs(*args, cwd):
    return run_tool([paths.node_tool("snarkjs"), *args], cwd=cwd, what=f"snarkjs {args[0]}", timeout=600)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIPLUS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_dev_ptau_matches_snarkjs_prepare_phase2(cache, tmp_path):
    """snarkjs recomputes sections 12-15 from our tau powers by point FFTs: the files must be identical."""
    ours = dev_ptau(5)
    assert ours == dev_ptau_path(5) and ours.parent == cache / "ptau"
    info = ptau_info(ours)
    assert (info.power, info.ceremony_power, info.prepared) == (5, 5, True)
    assert info.sections == (1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15)
    snarkjs("powersoftau", "prepare", "phase2", ours, tmp_path / "theirs.ptau", cwd=tmp_path)
    assert (tmp_path / "theirs.ptau").read_bytes() == ours.read_bytes()
    # every run draws a fresh tau
    (cache / "ptau" / "dev_5.ptau").rename(tmp_path / "first.ptau")
    assert dev_ptau(5).read_bytes() != (tmp_path / "first.ptau").read_bytes()


def test_dev_ptau_is_cached_and_corrupt_cache_rebuilt(cache):
    p = dev_ptau(3)
    stamp = p.stat().st_mtime_ns
    assert dev_ptau(3) == p and p.stat().st_mtime_ns == stamp
    with p.open("r+b") as f:
        f.truncate(100)
    assert ptau_info(dev_ptau(3)).prepared
    assert not [x for x in p.parent.iterdir() if x.name.startswith(".")]  # no temp files left


def test_required_power_matches_snarkjs_rule():
    # snarkjs: cirPower = floor(log2(nConstraints + nPublic)) + 1
    assert required_power(173, 2) == 8
    assert required_power(126, 2) == 8  # 128 -> 2^7 would leave no spare row
    assert required_power(125, 2) == 7
    assert required_power(254, 2) == 9


def test_resolve_rejects_small_unprepared_and_foreign_files(cache, tmp_path):
    small = dev_ptau(4)
    # a dev ptau was made on this machine and records no contribution: never accepted as --ptau
    # (power, curve and the cryptographic checks: tests/test_setup_ceremony.py)
    with pytest.raises(SetupError, match="records no contribution"):
        resolve_ptau(10, 2, small)
    path, info = resolve_ptau(10, 2)
    assert path == dev_ptau_path(4) and info.power == 4
    snarkjs("powersoftau", "new", "bn128", "4", tmp_path / "raw.ptau", cwd=tmp_path)
    with pytest.raises(SetupError, match="not prepared for phase 2"):
        resolve_ptau(10, 2, tmp_path / "raw.ptau")
    (tmp_path / "x.ptau").write_bytes(b"zkey" + struct.pack("<II", 1, 0))
    with pytest.raises(SetupError, match="not a powers-of-tau"):
        resolve_ptau(10, 2, tmp_path / "x.ptau")
    with pytest.raises(SetupError, match="does not exist"):
        resolve_ptau(10, 2, tmp_path / "missing.ptau")
    trunc = tmp_path / "trunc.ptau"
    trunc.write_bytes(small.read_bytes()[:-10])
    with pytest.raises(SetupError, match="truncated"):
        resolve_ptau(10, 2, trunc)
    assert os.environ["OMNIPLUS_CACHE"] == str(cache)
