"""snarkjs backend and the node engine worker, against the real tools on a small circuit.

The circuit (built here with circom2 + the snarkjs CLI at power 8) has two public inputs,
one output, a chain of squarings and an inverse check that a bad input breaks.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from py_ecc.optimized_bn128 import FQ, FQ2, Z1, Z2, add, multiply, normalize

from omniplus.core import resources as paths
from omniplus.core.errors import ProofError, SetupError, ToolError
from omniplus.core.tools import run_tool
from omniplus.prover.backends.base import ProveJob
from omniplus.prover.engine import NodeWorker, R, SnarkjsEngine, worker

Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583

CIRCUIT = """pragma circom 2.1.0;
template Small(n) {
    signal input a;
    signal input b;
    signal input x;
    signal input xinv;
    signal output out;
    signal s[n + 1];
    x * xinv === 1;
    s[0] <== x;
    for (var i = 0; i < n; i++) {
        s[i + 1] <== s[i] * s[i] + a;
    }
    out <== s[n] * b + x;
}
component main {public [a, b]} = Small(6);
"""


@dataclass
class Setup:
    dir: Path
    wasm: Path
    zkey: Path
    vkey: Path

    def inputs(self, x: int = 3, a: int = 5, b: int = 7, xinv: int | None = None) -> dict:
        inv = pow(x, -1, R) if xinv is None else xinv
        return {"a": str(a), "b": str(b), "x": str(x), "xinv": str(inv)}

    def witness(self, inputs: dict, name: str = "w") -> list[int]:
        from omniplus.prover.wtns import read_wtns

        inp, wtns = self.dir / f"{name}.json", self.dir / f"{name}.wtns"
        inp.write_text(json.dumps(inputs))
        snarkjs("wtns", "calculate", self.wasm, inp, wtns, cwd=self.dir)
        return read_wtns(wtns)


def snarkjs(*args: str | Path, cwd: Path) -> str:
    return run_tool([paths.node_tool("snarkjs"), *args], cwd=cwd, what=f"snarkjs {args[0]}",
                    timeout=600).stdout.decode()


def build_small(root: Path) -> Setup:
    """circom2 compile + power-8 ptau + groth16 setup, reused within one pytest session."""
    d = root / "small_circuit"
    done = d / ".done"
    if not done.exists():
        d.mkdir(parents=True, exist_ok=True)
        (d / "small.circom").write_text(CIRCUIT)
        link = d / "node_modules"
        if not link.exists():
            link.symlink_to(paths.NODE_MODULES)
        run_tool([paths.node_tool("circom2"), "small.circom", "--r1cs", "--wasm", "-l", "node_modules",
                  "-o", "."], cwd=d, what="circom2", timeout=300)
        snarkjs("powersoftau", "new", "bn128", "8", "p0.ptau", cwd=d)
        snarkjs("powersoftau", "contribute", "p0.ptau", "p1.ptau", "-e=test entropy", "--name=t", cwd=d)
        snarkjs("powersoftau", "prepare", "phase2", "p1.ptau", "final.ptau", cwd=d)
        snarkjs("groth16", "setup", "small.r1cs", "final.ptau", "small.zkey", cwd=d)
        snarkjs("zkey", "export", "verificationkey", "small.zkey", "vkey.json", cwd=d)
        done.write_text("ok")
    return Setup(dir=d, wasm=d / "small_js" / "small.wasm", zkey=d / "small.zkey", vkey=d / "vkey.json")


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return build_small(tmp_path_factory.getbasetemp())


def snarkjs_verifies(setup: Setup, proof_json: dict, public: list[int], tag: str) -> bool:
    pp, pub = setup.dir / f"{tag}_proof.json", setup.dir / f"{tag}_public.json"
    pp.write_text(json.dumps(proof_json))
    pub.write_text(json.dumps([str(v) for v in public]))
    try:
        out = snarkjs("groth16", "verify", setup.vkey, pub, pp, cwd=setup.dir)
    except ToolError:
        return False
    return "OK" in out


# --- zkey points decoded independently of the engine (and of prover/zkey.py) ---------------

def zkey_sections(path: Path) -> dict[int, bytes]:
    data = path.read_bytes()
    assert data[:4] == b"zkey"
    (count,) = struct.unpack_from("<I", data, 8)
    out: dict[int, bytes] = {}
    p = 12
    for _ in range(count):
        stype, size = struct.unpack_from("<IQ", data, p)
        out.setdefault(stype, data[p + 12:p + 12 + size])
        p += 12 + size
    return out


def _fq(b: bytes) -> int:
    return int.from_bytes(b, "little") * pow(2**256, -1, Q) % Q


def g1_points(sec: bytes) -> list:
    pts = []
    for o in range(0, len(sec), 64):
        raw = sec[o:o + 64]
        pts.append(Z1 if not any(raw) else (FQ(_fq(raw[:32])), FQ(_fq(raw[32:])), FQ(1)))
    return pts


def g2_points(sec: bytes) -> list:
    pts = []
    for o in range(0, len(sec), 128):
        raw = sec[o:o + 128]
        if not any(raw):
            pts.append(Z2)
            continue
        v = [_fq(raw[i:i + 32]) for i in (0, 32, 64, 96)]
        pts.append((FQ2([v[0], v[1]]), FQ2([v[2], v[3]]), FQ2([1, 0])))
    return pts


def naive_msm(points: list, scalars: list[int], zero):
    acc = zero
    for p, k in zip(points, scalars, strict=True):
        acc = add(acc, multiply(p, k % R))
    return acc


def as_g1(p) -> tuple[int, int] | None:
    if p[2] == FQ(0):
        return None
    x, y = normalize(p)
    return (int(x), int(y))


def as_g2(p):
    if p[2] == FQ2([0, 0]):
        return None
    x, y = normalize(p)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


# --- tests --------------------------------------------------------------------------------

def test_snarkjs_backend_proof_verifies(small: Setup, tmp_path: Path) -> None:
    from omniplus.prover.backends import get_backend
    from omniplus.prover.proof import proof_to_json

    inputs = small.inputs()
    witness = small.witness(inputs)
    backend = get_backend("snarkjs")
    assert backend.name == "snarkjs"
    job = ProveJob(zkey=small.zkey, wasm=small.wasm, witness=witness, input_json=inputs, workdir=tmp_path)
    proof, public = backend.prove(job)
    assert public == witness[1:4]  # out, a, b: outputs before public inputs
    assert public[1:] == [5, 7]
    assert snarkjs_verifies(small, proof_to_json(proof), public, "sj")
    assert (tmp_path / "witness.wtns").exists()
    # A second statement on the cached zkey; a tampered public input must fail.
    w2 = small.witness(small.inputs(x=11, a=2, b=9), "w2")
    proof2, public2 = backend.prove(ProveJob(small.zkey, small.wasm, w2, {}, tmp_path))
    assert snarkjs_verifies(small, proof_to_json(proof2), public2, "sj2")
    assert not snarkjs_verifies(small, proof_to_json(proof2), [public2[0], public2[1] + 1, public2[2]], "bad")


def test_snarkjs_backend_rejects_wrong_witness_length(small: Setup, tmp_path: Path) -> None:
    from omniplus.prover.backends.snarkjs import Backend

    with pytest.raises(ProofError, match="witness has"):
        Backend().prove(ProveJob(small.zkey, small.wasm, [1, 2, 3], {}, tmp_path))


def test_msm_g1_matches_py_ecc(small: Setup) -> None:
    eng = SnarkjsEngine(small.zkey)
    secs = zkey_sections(small.zkey)
    rng = random.Random(1)
    for section in (5, 6, 8, 9):
        pts = g1_points(secs[section])
        assert eng.n_points(section) == len(pts)
        m = min(4, len(pts))
        scalars = [rng.randrange(R) for _ in range(m)]
        assert eng.msm_g1(section, scalars) == as_g1(naive_msm(pts[:m], scalars, Z1)), section
        start = len(pts) - 3
        scalars = [rng.randrange(R), 1, R - 1]  # full-size, one and minus one
        got = eng.msm_g1(section, scalars, start=start)
        assert got == as_g1(naive_msm(pts[start:], scalars, Z1)), section
    assert eng.msm_g1(5, []) is None
    assert eng.msm_g1(9, [0, 0]) is None
    # ints outside [0, r) are reduced, as DESIGN.md maps signed values
    pts = g1_points(secs[9])
    assert eng.msm_g1(9, [-1, R + 2]) == as_g1(naive_msm(pts[:2], [R - 1, 2], Z1))


def test_msm_g2_matches_py_ecc(small: Setup) -> None:
    eng = SnarkjsEngine(small.zkey)
    pts = g2_points(zkey_sections(small.zkey)[7])
    nz = [i for i, p in enumerate(pts) if p[2] != FQ2([0, 0])]
    start = nz[0]
    scalars = [random.Random(2).randrange(R), 3]
    got = eng.msm_g2(7, scalars, start=start)
    assert got is not None
    assert got == as_g2(naive_msm(pts[start:start + 2], scalars, Z2))


def test_msm_argument_errors_match_native_engine(small: Setup) -> None:
    eng = SnarkjsEngine(small.zkey)
    with pytest.raises(ProofError, match="no G1 points in zkey section 7"):
        eng.msm_g1(7, [1])
    with pytest.raises(ProofError, match="no G2 points"):
        eng.msm_g2(5, [1])
    with pytest.raises(ProofError, match="asked for"):
        eng.msm_g1(9, [1] * (eng.n_points(9) + 1))


def test_error_frames_become_tool_errors(small: Setup) -> None:
    w = worker()
    zid, info = w.load_zkey(small.zkey)
    with pytest.raises(ToolError, match="section 7 does not hold G1"):
        w.call("msm_g1", b"\x01" + bytes(31), zkey=zid, section=7)
    with pytest.raises(ToolError, match="cannot use"):
        w.call("msm_g1", bytes(32 * (info["points"][9] + 1)), zkey=zid, section=9)
    with pytest.raises(ToolError, match="whole number of 32-byte values"):
        w.call("msm_g1", bytes(33), zkey=zid, section=9)
    with pytest.raises(ToolError, match="unknown command"):
        w.call("no_such_command")
    with pytest.raises(ToolError, match="not a zkey file"):
        w.load_zkey(small.dir / "small.r1cs")
    with pytest.raises(SetupError, match="cannot read zkey"):
        w.load_zkey(small.dir / "missing.zkey")
    # the worker survives error frames
    assert w.ping()["pid"] == w.pid


def test_python_prover_steps_on_node_engine(small: Setup) -> None:
    """The single prover's steps (prover/groth16_prove.py) with this engine make a valid proof."""
    from omniplus.prover.groth16_prove import prove
    from omniplus.prover.proof import proof_to_json
    from omniplus.prover.zkey import read_zkey

    inputs = small.inputs(x=5, a=3, b=4)
    witness = small.witness(inputs, "steps")
    proof, public = prove(read_zkey(small.zkey), witness, engine=SnarkjsEngine(small.zkey))
    assert snarkjs_verifies(small, proof_to_json(proof), public, "steps")


def test_fft_roundtrip_and_naive_dft() -> None:
    w = worker()
    rng = random.Random(3)
    root28 = pow(5, (R - 1) >> 28, R)
    for log_n in range(0, 6):
        n = 1 << log_n
        v = [rng.randrange(R) for _ in range(n)]
        f = w.fft(v)
        om = pow(root28, 1 << (28 - log_n), R)
        assert f == [sum(v[i] * pow(om, i * k, R) for i in range(n)) % R for k in range(n)], n
        assert w.fft(f, inverse=True) == v
    big = [rng.randrange(R) for _ in range(1 << 12)]
    assert w.fft(w.fft(big), inverse=True) == big
    with pytest.raises(ToolError, match="not a power of two"):
        w.fft([1, 2, 3])


def test_rewritten_zkey_is_reloaded(small: Setup, tmp_path: Path) -> None:
    import shutil

    z = tmp_path / "copy.zkey"
    shutil.copy(small.zkey, z)
    eng = SnarkjsEngine(z)
    first = eng.msm_g1(5, [1])
    old_id = eng._id
    data = bytearray(z.read_bytes())
    sec5 = zkey_sections(z)[5]
    at = bytes(data).index(sec5)
    data[at:at + 64], data[at + 64:at + 128] = data[at + 64:at + 128], data[at:at + 64]  # swap points 0, 1
    z.write_bytes(bytes(data))
    os.utime(z, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert eng.msm_g1(5, [0, 1]) == first
    assert eng._id != old_id


def test_killed_worker_is_restarted(small: Setup) -> None:
    w = NodeWorker()
    try:
        eng = SnarkjsEngine(small.zkey, node=w)
        before = eng.msm_g1(5, [1, 2, 3])
        pid = w.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 10
        while w.pid is not None and time.time() < deadline:
            time.sleep(0.05)
        assert w.ping()["pid"] != pid
        assert eng.msm_g1(5, [1, 2, 3]) == before  # the zkey was loaded again transparently
    finally:
        w.stop()
    assert w.pid is None


def test_worker_stops_cleanly() -> None:
    w = NodeWorker()
    w.ping()
    proc = w._proc
    w.stop()
    assert proc is not None and proc.returncode == 0


def test_worker_dying_mid_call_is_tool_error_with_stderr(tmp_path: Path) -> None:
    script = tmp_path / "dies.js"
    script.write_text('process.stdin.once("data", () => { console.error("boom: out of memory"); '
                      'process.exit(3); });\n')
    w = NodeWorker(script=script)
    try:
        with pytest.raises(ToolError, match="died during ping: boom: out of memory"):
            w.ping()
        assert w.pid is None
        with pytest.raises(ToolError, match="died during ping"):  # restarted, died again
            w.ping()
    finally:
        w.stop()


def test_stray_stdout_is_detected(tmp_path: Path) -> None:
    script = tmp_path / "chatty.js"
    script.write_text('process.stdin.once("data", () => { '
                      'process.stdout.write("hello from a library\\n"); });\n')
    w = NodeWorker(script=script)
    try:
        with pytest.raises(ToolError, match="framing lost"):
            w.ping()
    finally:
        w.stop()
