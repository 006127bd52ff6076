"""Issue 2 end to end through the CLI: every backend's proof verifies three ways (Python, snarkjs,
the exported Solidity verifier on a real anvil); tampering is rejected by all three; bad input
gets a one-line error, a non-zero exit and no output directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from omniplus.api import random_gradients
from omniplus.cli import main


def write_gradients(path: Path, params, rows: int = 2, seed: int = 1) -> Path:
    path.write_text(json.dumps(random_gradients(params, rows, scale_bits=4, seed=seed)))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def proofs(small_setup, tmp_path_factory):
    """One proof per backend for the same gradients file."""
    base = tmp_path_factory.mktemp("proofs")
    grads = write_gradients(base / "g.json", small_setup.params)
    out = {}
    for backend in ("native", "snarkjs", "circom"):
        argv = ["prove", "--backend", backend, "--setup", small_setup.path, "--gradients", grads,
                "--out", base / backend]
        assert main([str(a) for a in argv]) == 0
        out[backend] = base / backend
    return out


@pytest.mark.parametrize("backend", ["native", "snarkjs", "circom"])
def test_every_backend_verifies_three_ways(small_setup, proofs, backend, capsys) -> None:
    code, out, _ = run_cli(capsys, "verify", "--setup", small_setup.path, "--proof", proofs[backend],
                           "--onchain", "--json")
    report = json.loads(out)
    assert code == 0, report
    assert report["python"] and report["snarkjs"] and report["onchain"]
    assert 200_000 < report["verify_gas"] < 300_000  # ≈ 229k for 2 public inputs


def test_backends_agree_on_the_public_inputs(proofs) -> None:
    publics = {b: json.loads((p / "public.json").read_text()) for b, p in proofs.items()}
    assert publics["native"] == publics["snarkjs"] == publics["circom"]


@pytest.mark.parametrize("what", ["proof", "public"])
def test_tampering_is_rejected_by_all_three_verifiers(small_setup, proofs, tmp_path, what, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("proof.json", "public.json"):
        (bad / name).write_text((proofs["snarkjs"] / name).read_text())
    if what == "proof":
        proof = json.loads((bad / "proof.json").read_text())
        proof["pi_a"], proof["pi_c"] = proof["pi_c"], proof["pi_a"]  # still valid points, wrong proof
        (bad / "proof.json").write_text(json.dumps(proof))
    else:
        public = json.loads((bad / "public.json").read_text())
        public[1] = str(int(public[1]) + 1)
        (bad / "public.json").write_text(json.dumps(public))
    code, out, _ = run_cli(capsys, "verify", "--setup", small_setup.path, "--proof", bad, "--onchain",
                           "--json")
    report = json.loads(out)
    assert code == 1
    assert report["python"] is False and report["snarkjs"] is False and report["onchain"] is False


def bad_input_cases(params):
    lim = 2 ** (params.bits - 1)
    zero = [0.0] * params.dims
    return {
        "ragged": ({"scale_bits": 0, "gradients": [zero, zero[:-1]]}, "DO 1"),
        "nan": ({"scale_bits": 0, "gradients": [[math.nan] + zero[1:]]}, "DO 0, coordinate 0"),
        "range": ({"scale_bits": 0, "gradients": [zero, zero[:3] + [float(lim)] + zero[4:]]},
                  "DO 1, coordinate 3"),
        "norm": ({"scale_bits": 0, "gradients": [[float(lim - 1)] * params.dims]}, "DO 0"),
        "too_many_rows": ({"scale_bits": 0, "gradients": [zero] * (params.batch + 1)}, "rows"),
        "not_json": ("{nope", "JSON"),
    }


@pytest.mark.parametrize("case", ["ragged", "nan", "range", "norm", "too_many_rows", "not_json"])
def test_bad_gradients_give_one_line_errors_and_no_output(small_setup, tmp_path, case, capsys) -> None:
    doc, needle = bad_input_cases(small_setup.params)[case]
    grads = tmp_path / "g.json"
    grads.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "prove", "--backend", "snarkjs", "--setup", small_setup.path,
                           "--gradients", grads, "--out", out)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_missing_and_mismatched_setup(small_setup, tmp_path, capsys) -> None:
    grads = write_gradients(tmp_path / "g.json", small_setup.params)
    code, _, err = run_cli(capsys, "prove", "--setup", tmp_path / "nope", "--gradients", grads,
                           "--out", tmp_path / "o")
    assert code == 1 and "does not exist" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in small_setup.path.iterdir():
        if f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    (broken / "circuit_js").mkdir()
    (broken / "circuit_js" / "circuit.wasm").write_bytes((small_setup.wasm).read_bytes())
    (broken / "circuit.r1cs").write_bytes((broken / "circuit.r1cs").read_bytes() + b"\0")
    code, _, err = run_cli(capsys, "prove", "--setup", broken, "--gradients", grads, "--out", tmp_path / "o")
    assert code == 1 and "does not match" in err
    assert not (tmp_path / "o").exists()


def test_corrupt_proof_file(small_setup, proofs, tmp_path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "public.json").write_text((proofs["snarkjs"] / "public.json").read_text())
    (bad / "proof.json").write_text('{"pi_a": ["1", "x"]}')
    code, _, err = run_cli(capsys, "verify", "--setup", small_setup.path, "--proof", bad)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "proof" in err
