"""A full setup with the dev ptau: snarkjs proves our Python witness and verifies; setup dirs self-check."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest

from omniplus.circuits.params import CircuitParams
from omniplus.cli import setup as setup_cmd
from omniplus.core import resources as paths
from omniplus.core.errors import OmniplusError, SetupError, ToolError
from omniplus.core.tools import run_tool
from omniplus.prover.binding import BindingContext, public_inputs
from omniplus.prover.ptau import dev_ptau
from omniplus.prover.trusted_setup import FILES, SetupDir, contribute, run_setup
from omniplus.prover.witness import full_witness
from omniplus.prover.wtns import write_wtns

PARAMS = CircuitParams(batch=2, dims=8, bits=8, norm_bound=10000)
ROWS = [[3, -7, 0, 12, -60, 70, 1, -1], [0, 5, 5, 5, -5, 0, 0, 2]]
CTX = BindingContext(chain_id=31337, market="0x" + "5f" * 20, task_id=1, batch_index=4,
                     payees=("0x" + "aa" * 20, "0x" + "bb" * 20))


def cli_main(argv: list[str]) -> int:
    """The `omniplus` dispatch for this verb alone (other verbs' modules are not needed here)."""
    parser = argparse.ArgumentParser(prog="omniplus")
    setup_cmd.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OmniplusError as exc:
        print(f"omniplus {args.verb}: error: {exc}", file=sys.stderr)
        return 1


def snarkjs(*args, cwd: Path) -> str:
    proc = run_tool([paths.node_tool("snarkjs"), *args], cwd=cwd, what=f"snarkjs {args[0]}", timeout=600)
    return proc.stdout.decode()


def prove_and_verify(setup: SetupDir, work: Path) -> tuple[bool, list[int]]:
    work.mkdir(parents=True, exist_ok=True)
    _words, pub = public_inputs(setup.params, CTX, ROWS)
    write_wtns(work / "w.wtns", full_witness(setup, ROWS, pub))
    snarkjs("groth16", "prove", setup.zkey, "w.wtns", "proof.json", "public.json", cwd=work)
    public = [int(x) for x in json.loads((work / "public.json").read_text())]
    assert public == pub
    try:
        out = snarkjs("groth16", "verify", setup.vkey, "public.json", "proof.json", cwd=work)
    except ToolError:
        return False, public
    return "OK" in out, public


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> SetupDir:
    out = tmp_path_factory.mktemp("setup")  # exists and is empty, as callers may pass
    steps: list[str] = []
    s = run_setup(PARAMS, out, contributors=("alice", "bob"), progress=lambda label, t: steps.append(label))
    assert steps[0].startswith("compile") and any("bob" in x for x in steps)
    return s


def test_setup_directory_contents(setup):
    for rel in FILES.values():
        assert (setup.path / rel).is_file()
    names = [c["name"] for c in setup.contributions()]
    assert names == ["alice", "bob"]
    assert all(len(c["hash"]) == 128 for c in setup.contributions())
    m = json.loads(setup.params_file.read_text())
    assert CircuitParams.from_json(m) == PARAMS
    assert m["n_constraints"] == PARAMS.expected_constraints(2) and m["ptau"]["development"]
    assert m["development"] is True and m["n_public"] == json.loads(setup.vkey.read_text())["nPublic"]
    assert "contract Groth16Verifier" in setup.verifier_sol.read_text()
    assert json.loads(setup.vkey.read_text())["nPublic"] >= 2
    assert not [p for p in setup.path.parent.iterdir() if p.name.startswith(f".{setup.path.name}.tmp")]


def test_python_witness_proof_verifies_with_snarkjs(setup, tmp_path):
    ok, _ = prove_and_verify(setup, tmp_path)
    assert ok


def test_load_names_missing_and_mismatched_files(setup, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(setup.path, copy)
    assert SetupDir.load(copy).params == PARAMS
    (copy / "circuit.sym").unlink()
    with pytest.raises(SetupError, match="circuit.sym is missing"):
        SetupDir.load(copy)
    shutil.copy(setup.sym, copy / "circuit.sym")
    (copy / "circuit.r1cs").write_bytes((copy / "circuit.r1cs").read_bytes() + b"\0")
    with pytest.raises(SetupError, match=r"circuit.r1cs does not match params.json"):
        SetupDir.load(copy)
    with pytest.raises(SetupError, match="does not exist"):
        SetupDir.load(tmp_path / "nowhere")


def test_failed_setup_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIPLUS_CACHE", str(tmp_path / "cache"))
    small = dev_ptau(4)  # made on this machine, so no contribution is recorded: refused as --ptau
    out = tmp_path / "s"
    with pytest.raises(SetupError, match="records no contribution"):
        run_setup(PARAMS, out, ptau=small)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(SetupError, match="not an empty directory"):
        run_setup(PARAMS, tmp_path / "full")
    with pytest.raises(SetupError, match="contributor name"):
        run_setup(PARAMS, tmp_path / "bad", contributors=("no spaces",))


def test_contribute_appends_and_rekeys(setup, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(setup.path, copy)
    old_vkey = setup.vkey.read_text()
    h = contribute(copy, "carol", entropy="some text")
    s = SetupDir.load(copy)
    assert [c["name"] for c in s.contributions()] == ["alice", "bob", "carol"]
    assert s.contributions()[-1]["hash"] == h
    assert s.vkey.read_text() != old_vkey
    assert not [p for p in copy.iterdir() if p.name.startswith(".contribute-")]
    ok, _ = prove_and_verify(s, tmp_path / "p")
    assert ok
    # the CLI verb does the same
    assert cli_main(["setup", "contribute", "--setup", str(copy), "--name", "dave"]) == 0
    assert [c["name"] for c in SetupDir.load(copy).contributions()][-1] == "dave"


def test_cli_setup_reports_missing_options(capsys):
    assert cli_main(["setup", "--dims", "8"]) == 1
    assert "missing --batch, --bits, --norm-bound, --out" in capsys.readouterr().err
    assert cli_main(["setup", "--dims", "8", "--batch", "2", "--bits", "1", "--norm-bound", "5",
                     "--out", "/tmp/never"]) == 1
    assert "bits (k) = 1 is outside [2, 64]" in capsys.readouterr().err


def test_cli_help(capsys):
    for argv in (["setup", "--help"], ["setup", "contribute", "--help"]):
        with pytest.raises(SystemExit) as exc:
            cli_main(argv)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--norm-bound" in out and "--entropy" in out and "DEVELOPMENT" in out
