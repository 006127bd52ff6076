"""Every file the tool reads gives one clear OmniplusError for any content, never another exception.

Each reader gets a table of hostile files: oversized integers (10^400, 5,000 digits: beyond Python's
4,300-digit int() limit), non-UTF-8, invalid JSON, wrong types, nesting, wrong lengths, NaN/inf,
truncated binary files, wrong magic. The CLI tests run `omniplus prove|verify` in a subprocess:
exit 1, one `error:` line, no traceback.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from omniplus.circuits.params import CircuitParams
from omniplus.core.errors import OmniplusError
from omniplus.prover.binfile import build_binfile

BIG = "1" + "0" * 400  # 10^400 as a JSON integer
HUGE = "7" * 5000  # a 5,000-digit integer
DEEP = "[" * 100_000 + "]" * 100_000

# raw bytes common to every JSON reader
JSON_HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "non_utf8": b'{"a": "\xff\xfe"}',
    "latin1": '{"scale_bits": 4, "gradients": [["é"]]}'.encode("latin-1"),
    "invalid_json": b'{"scale_bits": 4, "gradients": [[1, 2,]]',
    "truncated": b'{"scale_bits": 4, "gradients": [[1, 2',
    "deep": DEEP.encode(),
    "top_list": b"[1, 2, 3]",
    "top_string": b'"hello"',
    "null": b"null",
    "int_10e400": f'{{"scale_bits": 4, "gradients": [[{BIG}, 1]]}}'.encode(),
    "int_5000_digits": f'{{"scale_bits": 4, "gradients": [[{HUGE}]]}}'.encode(),
    "neg_5000_digits": f'{{"scale_bits": -{HUGE}, "gradients": []}}'.encode(),
    "float_1e400": b'{"scale_bits": 4, "gradients": [[1e400, 1]]}',
    "nan": b'{"scale_bits": 4, "gradients": [[NaN, 1]]}',
    "infinity": b'{"scale_bits": 4, "gradients": [[-Infinity, 1]]}',
}

GRADIENTS_HOSTILE: dict[str, bytes] = {
    **JSON_HOSTILE,
    "string_value": b'{"scale_bits": 4, "gradients": [["0.5", 1]]}',
    "bool_value": b'{"scale_bits": 4, "gradients": [[true, 1]]}',
    "nested_lists": b'{"scale_bits": 4, "gradients": [[[0.5], 1]]}',
    "null_value": b'{"scale_bits": 4, "gradients": [[null, 1]]}',
    "rows_not_list": b'{"scale_bits": 4, "gradients": {"0": [1]}}',
    "row_not_list": b'{"scale_bits": 4, "gradients": [1, 2]}',
    "scale_string": b'{"scale_bits": "4", "gradients": [[1, 1]]}',
    "scale_float": b'{"scale_bits": 4.0, "gradients": [[1, 1]]}',
    "scale_huge": f'{{"scale_bits": {BIG}, "gradients": [[1, 1]]}}'.encode(),
    "missing_key": b'{"gradients": [[1, 1]]}',
    "short_row": b'{"scale_bits": 4, "gradients": [[1]]}',
    "long_row": b'{"scale_bits": 4, "gradients": [[1, 2, 3]]}',
    "too_many_rows": b'{"scale_bits": 4, "gradients": [[1, 1], [1, 1], [1, 1]]}',
    "out_of_range": b'{"scale_bits": 4, "gradients": [[1e30, 1]]}',
    "big_int_in_range_of_float": b'{"scale_bits": 4, "gradients": [[' + b"9" * 150 + b', 1]]}',
    "over_norm": b'{"scale_bits": 4, "gradients": [[7.9, 7.9]]}',
}

GOOD_PROOF = {"pi_a": ["1", "2", "1"], "pi_b": [["0", "0"], ["1", "0"], ["0", "0"]],
              "pi_c": ["1", "2", "1"], "protocol": "groth16", "curve": "bn128"}


def _proof(**kw) -> bytes:
    return json.dumps({**GOOD_PROOF, **kw}).encode()


PROOF_HOSTILE: dict[str, bytes] = {
    **JSON_HOSTILE,
    "a_big_int": _proof().replace(b'"pi_a": ["1"', f'"pi_a": [{BIG}'.encode()),
    "a_huge_string": _proof(pi_a=[HUGE, "2", "1"]),
    "a_negative": _proof(pi_a=["-1", "2", "1"]),
    "a_hex": _proof(pi_a=["0x1", "2", "1"]),
    "a_float": _proof(pi_a=[1.5, "2", "1"]),
    "a_nested": _proof(pi_a=[["1"], "2", "1"]),
    "a_short": _proof(pi_a=["1", "2"]),
    "a_off_curve": _proof(pi_a=["1", "3", "1"]),
    "a_z_2": _proof(pi_a=["1", "2", "2"]),
    "b_wrong_shape": _proof(pi_b=["1", "2", "3"]),
    "b_off_curve": _proof(pi_b=[["1", "2"], ["3", "4"], ["1", "0"]]),
    "missing_c": json.dumps({"pi_a": ["1", "2", "1"], "pi_b": GOOD_PROOF["pi_b"]}).encode(),
    "wrong_curve": _proof(curve="bls12381"),
    "null_protocol": _proof(protocol=None),
}

PUBLIC_HOSTILE: dict[str, bytes] = {
    **{k: v for k, v in JSON_HOSTILE.items() if k != "top_list"},  # [1, 2, 3] is a valid public.json
    "object": b'{"0": "1"}',
    "number_too_big": json.dumps([str(2**256), "1"]).encode(),
    "big_int": f"[{BIG}, 1]".encode(),
    "huge_string": json.dumps([HUGE, "1"]).encode(),
    "nested": b'[["1"], "2"]',
    "bool": b"[true, false]",
    "float": b"[1.0, 2]",
    "too_many": json.dumps([str(i) for i in range(5000)]).encode(),
}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _assert_clear(exc: BaseException, path: Path | None = None) -> None:
    msg = str(exc)
    assert isinstance(exc, OmniplusError), f"{type(exc).__name__}: {msg[:200]}"
    assert msg and "\n" not in msg and len(msg) < 600, msg[:700]
    if path is not None:
        assert str(path) in msg, msg


def _expect_clear(fn, *args, path: Path | None = None) -> None:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 — the point: nothing but an OmniplusError may escape
        _assert_clear(exc, path)
    else:
        raise AssertionError("hostile input accepted")


# ---------------------------------------------------------------- gradients (prover/quantize.py)
GRAD_PARAMS = CircuitParams(batch=2, dims=2, bits=8, norm_bound=1000)


@pytest.mark.parametrize("case", sorted(GRADIENTS_HOSTILE))
def test_gradients_file(tmp_path, case):
    from omniplus.prover.quantize import load_gradients, quantize

    path = _write(tmp_path, "grad.json", GRADIENTS_HOSTILE[case])

    def load_and_quantize():
        f, rows = load_gradients(path)
        return quantize(rows, f, GRAD_PARAMS)

    _expect_clear(load_and_quantize)


def test_quantize_python_values_never_overflow():
    from omniplus.prover.quantize import quantize

    for bad in ([10**400, 1], [float("nan"), 1], [float("inf"), 1], [[1], 1], ["1", 1], [None, 1]):
        _expect_clear(quantize, [bad], 4, GRAD_PARAMS)


def test_gradients_load_errors_name_the_file(tmp_path):
    from omniplus.prover.quantize import load_gradients

    for case in ("non_utf8", "int_5000_digits", "int_10e400", "nan", "deep", "string_value"):
        path = _write(tmp_path, f"{case}.json", GRADIENTS_HOSTILE[case])
        _expect_clear(load_gradients, path, path=path)


# ---------------------------------------------------------------- proof.json / public.json
@pytest.mark.parametrize("case", sorted(PROOF_HOSTILE))
def test_proof_file(tmp_path, case):
    from omniplus.prover.proof import read_proof_file

    path = _write(tmp_path, "proof.json", PROOF_HOSTILE[case])
    _expect_clear(read_proof_file, path, path=path)


@pytest.mark.parametrize("case", sorted(PUBLIC_HOSTILE))
def test_public_file(tmp_path, case):
    from omniplus.prover.proof import read_public_file

    path = _write(tmp_path, "public.json", PUBLIC_HOSTILE[case])
    _expect_clear(read_public_file, path, path=path)


def test_public_count_checked(tmp_path):
    from omniplus.prover.proof import read_proof_dir

    _write(tmp_path, "proof.json", _proof())
    _write(tmp_path, "public.json", b'["1", "2", "3"]')
    with pytest.raises(OmniplusError, match="3 public signals"):
        read_proof_dir(tmp_path, n_public=2)
    assert len(read_proof_dir(tmp_path)[1]) == 3


# ---------------------------------------------------------------- setup files
@pytest.mark.parametrize("case", sorted(JSON_HOSTILE) + ["params_huge_dims", "params_k65",
                                                                          "params_str_digits"])
def test_params_json(tmp_path, case):
    from omniplus.prover.trusted_setup import FILES, SetupDir

    for rel in FILES.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    good = CircuitParams(batch=2, dims=8, bits=8, norm_bound=100).to_json()
    data = {"params_huge_dims": json.dumps({**good, "dims": 2**40}).encode(),
            "params_k65": json.dumps({**good, "bits": 65}).encode(),
            "params_str_digits": json.dumps({**good, "norm_bound": HUGE}).encode()}.get(case, JSON_HOSTILE.get(case))
    (tmp_path / FILES["params"]).write_bytes(data)
    _expect_clear(SetupDir.load, tmp_path)


@pytest.mark.parametrize("case", sorted(JSON_HOSTILE))
def test_verification_key(tmp_path, case):
    from omniplus.core.errors import SetupError
    from omniplus.core.jsonfile import read_json
    from omniplus.prover.groth16_verify import parse_vkey

    path = _write(tmp_path, "verification_key.json", JSON_HOSTILE[case])

    def load():
        return parse_vkey(read_json(path, SetupError, what="verification key"))

    _expect_clear(load)


# ---------------------------------------------------------------- binary files (.r1cs .wtns .zkey)
def _mutations(good: bytes, magic: bytes) -> dict[str, bytes]:
    n = len(good)
    out = {f"truncated_{k}": good[:k] for k in sorted({0, 3, 4, 11, 12, 20, 23, 24, 40, 64, n // 2, n - 1}) if k < n}
    out["wrong_magic"] = b"XXXX" + good[4:]
    out["other_magic"] = (b"zkey" if magic != b"zkey" else b"r1cs") + good[4:]
    out["version_99"] = good[:4] + struct.pack("<I", 99) + good[8:]
    out["sections_1e9"] = good[:8] + struct.pack("<I", 10**9) + good[12:]
    out["section_size_2e63"] = good[:16] + struct.pack("<Q", 2**63) + good[24:]
    out["trailing_bytes"] = good + b"\0" * 7
    out["zero_sections"] = good[:8] + struct.pack("<I", 0)
    out["random"] = bytes((i * 131 + 7) % 256 for i in range(4096))
    out["text"] = b"hello, this is not a binary file\n" * 10
    # the header section (first one) with every size field set to 2^32 − 1
    out["header_all_ff"] = good[:24] + b"\xff" * min(64, n - 24) + good[24 + min(64, n - 24):]
    return out


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    from omniplus.circuits.build import compile_circuit
    from omniplus.prover.wtns import write_wtns

    d = tmp_path_factory.mktemp("bin")
    c = compile_circuit(CircuitParams(batch=1, dims=2, bits=4, norm_bound=10), d)
    write_wtns(d / "w.wtns", [1, 2, 3, 4])
    return {"r1cs": c.r1cs.read_bytes(), "wtns": (d / "w.wtns").read_bytes()}


def _zkey_bytes() -> bytes:
    """A syntactically plausible zkey container (protocol section and a short header section)."""
    return build_binfile(b"zkey", 1, [(1, struct.pack("<I", 1)), (2, b"\x20\0\0\0" + b"\x01" * 500)])


@pytest.mark.parametrize("kind", ["r1cs", "wtns", "zkey"])
def test_binary_files(tmp_path, binaries, kind):
    from omniplus.prover.r1cs import read_r1cs
    from omniplus.prover.wtns import read_wtns
    from omniplus.prover.zkey import read_zkey

    reader = {"r1cs": read_r1cs, "wtns": read_wtns, "zkey": read_zkey}[kind]
    good = binaries.get(kind) or _zkey_bytes()
    cases = _mutations(good, kind.encode())
    if kind == "zkey":
        cases["real_header_short"] = good
    for name, data in cases.items():
        path = _write(tmp_path, f"{name}.{kind}", data)
        try:
            reader(path)
        except Exception as exc:  # noqa: BLE001
            _assert_clear(exc, path)
        else:
            raise AssertionError(f"{kind} {name}: accepted")
    assert reader is not read_zkey or True


@pytest.mark.parametrize("kind", ["r1cs", "wtns"])
def test_binary_byte_flips(tmp_path, binaries, kind):
    """Every single-byte corruption of the headers either still parses or fails clearly."""
    from omniplus.prover.r1cs import read_r1cs
    from omniplus.prover.wtns import read_wtns

    reader = {"r1cs": read_r1cs, "wtns": read_wtns}[kind]
    good = binaries[kind]
    for i in range(min(len(good), 160)):
        for v in (0x00, 0xFF, good[i] ^ 0x80):
            data = good[:i] + bytes([v]) + good[i + 1:]
            path = _write(tmp_path, f"flip.{kind}", data)
            try:
                reader(path)
            except Exception as exc:  # noqa: BLE001
                _assert_clear(exc, path)


# ---------------------------------------------------------------- server TOML config
TOML_HOSTILE: dict[str, bytes] = {
    "non_utf8": b'name = "\xff"\n',
    "invalid": b"name = \n",
    "empty": b"",
    "wrong_types": b'index = "one"\nlisten = 5\n',
    "big_int": f"index = {'9' * 30}\n".encode(),
    "nested": b"[index]\nx = 1\n",
    "nan": b"index = nan\n",
    "array": b"index = [1, 2]\n",
}


@pytest.mark.parametrize("case", sorted(TOML_HOSTILE))
def test_server_config(tmp_path, case):
    from omniplus.servers.config import load_config

    path = _write(tmp_path, "server.toml", TOML_HOSTILE[case])
    _expect_clear(load_config, path, path=path)


# ---------------------------------------------------------------- `omniplus do` update file
@pytest.mark.parametrize("case", sorted(JSON_HOSTILE) + ["q_strings", "q_nested"])
def test_do_update_file(tmp_path, case):
    import argparse

    from omniplus.cli.do import _row

    data = {"q_strings": b'{"q": ["1", "2"]}', "q_nested": b'{"q": [[1], 2]}'}.get(case, JSON_HOSTILE.get(case))
    path = _write(tmp_path, "update.json", data)
    args = argparse.Namespace(update=path, gradients=None, row=0)
    _expect_clear(_row, args, GRAD_PARAMS, path=path)


# ---------------------------------------------------------------- the CLI, end to end
def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "omniplus", *argv], capture_output=True, text=True, timeout=300)


def _assert_cli_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr[-2000:]
    for n in needles:
        assert n in errors[0], errors[0]


@pytest.mark.parametrize("case", ["int_10e400", "int_5000_digits", "non_utf8", "nan", "deep", "string_value"])
def test_cli_prove_hostile_gradients(small_setup, tmp_path, case):
    grad = _write(tmp_path, "grad.json", GRADIENTS_HOSTILE[case])
    out = tmp_path / "proof"
    proc = _cli("prove", "--backend", "native", "--setup", str(small_setup.path), "--gradients", str(grad),
                "--out", str(out))
    _assert_cli_error(proc, str(grad))
    assert not out.exists()


@pytest.mark.parametrize("case", ["three_signals", "one_signal", "non_utf8", "big_int", "proof_5000_digits"])
def test_cli_verify_hostile_proof_dir(small_setup, tmp_path, case):
    d = tmp_path / "proof"
    d.mkdir()
    (d / "proof.json").write_bytes(_proof())
    (d / "public.json").write_bytes(b'["1", "2"]')
    if case == "three_signals":  # one more than the circuit's [ctx, W_0..W_(M-1), S_0..S_(K-1)]
        n = small_setup.params.n_public + 1
        (d / "public.json").write_text(json.dumps([str(i + 1) for i in range(n)]))
        needle = f"{n} public signals"
    elif case == "one_signal":
        (d / "public.json").write_bytes(b'["1"]')
        needle = "1 public signals"
    elif case == "proof_5000_digits":
        (d / "proof.json").write_bytes(PROOF_HOSTILE["a_huge_string"])
        needle = "proof.json"
    else:
        (d / "public.json").write_bytes(PUBLIC_HOSTILE[case])
        needle = "public.json"
    proc = _cli("verify", "--setup", str(small_setup.path), "--proof", str(d))
    _assert_cli_error(proc, needle)
    assert "snarkjs" not in proc.stderr  # refused before snarkjs ran


def test_cli_verify_hostile_vkey(small_setup, tmp_path):
    setup = tmp_path / "setup"
    shutil.copytree(small_setup.path, setup)
    (setup / "verification_key.json").write_bytes(JSON_HOSTILE["int_5000_digits"])
    d = tmp_path / "proof"
    d.mkdir()
    (d / "proof.json").write_bytes(_proof())
    (d / "public.json").write_bytes(b'["1", "2"]')
    _assert_cli_error(_cli("verify", "--setup", str(setup), "--proof", str(d)), "verification_key.json")


def test_deep_nesting_with_a_raised_recursion_limit(tmp_path):
    """json's C scanner overflows the C stack (segfault) on deep nesting once some library has
    raised the recursion limit; the depth is checked before parsing, without recursion."""
    from omniplus.prover.quantize import load_gradients

    path = _write(tmp_path, "deep.json", ("[" * 1_000_000 + "]" * 1_000_000).encode())
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10**6)
    try:
        _expect_clear(load_gradients, path, path=path)
    finally:
        sys.setrecursionlimit(old)
