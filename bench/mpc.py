"""`omniplus bench mpc`: the collaborative Groth16 prover against the single prover (issue 4 §8).

What runs: n servers as threads of this process over prover.mpc's in-process `LocalHub` (the
same protocol code the gRPC daemons run, without sockets: no TLS, no serialisation beyond the
codec, no network latency — loopback gRPC would add those). Each server has its own node worker
(snarkjs engine) so its CPU is separable: per-server CPU = the party thread's `time.thread_time`
(Python: QAP evaluations, coset shifts, codec, interpolation) + the CPU its node worker used
(/proc/<pid>/stat: MSMs and FFTs, both of node's threads). The single prover is snarkjs'
groth16.prove in a warm node worker on the same zkey and the same statement.

Two circuits per size:
- gradient: the gradient-validity circuit (N DOs share their witness blocks; validation on
  shares, aggregate opening, proof). Validation is reported apart from the proof. Two modes,
  side by side in one run: `wires` (the servers' MSMs run over every wire share) and `points`
  (prover/mpc/point_shares.py: each DO also shares its block's MSM contributions as points, so
  a server's MSMs cover only H and the wires it holds in the clear; the server also verifies the
  proof it made, which the fast path relies on). The DO's own cost for its point shares is
  reported per DO (`DO points s`, its node worker's CPU plus its Python thread).
- dense: bench/dense_squaring.circom, n repeated squarings of a random field element: every
  wire is a full field element, so the single prover gets no help from small scalars.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniplus.bench.common import (
    Column,
    Row,
    add_output_arguments,
    bench_cache,
    gradient_setup,
    gradient_statement,
    int_list,
    log,
    median,
    proc_cpu_s,
    ratio,
    report,
    str_list,
)
from omniplus.core import resources as paths
from omniplus.core.tools import run_tool
from omniplus.prover.mpc.net import run_parties

DEFAULT_SIZES = [10, 12, 14, 16]
DEFAULT_PARTIES = [3, 5]
CIRCUITS = ("gradient", "dense")
MODES = ("wires", "points")
DENSE_TEMPLATE = Path(__file__).resolve().parent / "dense_squaring.circom"
SCALAR_BYTES = 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int_list, default=DEFAULT_SIZES,
                   help=f"log2 of the constraint count (default {','.join(map(str, DEFAULT_SIZES))})")
    p.add_argument("--parties", type=int_list, default=DEFAULT_PARTIES,
                   help="numbers of servers n (t = (n-1)//2 corrupt tolerated; default 3,5)")
    p.add_argument("--circuits", type=str_list, default=list(CIRCUITS),
                   help="gradient,dense (default both)")
    p.add_argument("--modes", type=str_list, default=list(MODES),
                   help="gradient circuit: wires (MSMs over shares), points (DOs' point shares); default both")
    p.add_argument("--engine", choices=("snarkjs", "native"), default="snarkjs",
                   help="engine each server uses for its MSMs/FFTs (default snarkjs)")
    p.add_argument("--repeat", type=int, default=2, help="warm single-prover runs (median)")
    add_output_arguments(p)


# --- per-server accounting ----------------------------------------------------------------------
class TimedEngine:
    """Wraps a server's engine and adds up the wall time of its MSM and FFT calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.msm_s = 0.0
        self.fft_s = 0.0

    def _timed(self, kind: str, fn: Any, *a: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a)
        finally:
            setattr(self, kind, getattr(self, kind) + time.perf_counter() - t0)

    def msm_g1(self, section: int, scalars: Sequence[int], start: int = 0) -> Any:
        return self._timed("msm_s", self.inner.msm_g1, section, scalars, start)

    def msm_g2(self, section: int, scalars: Sequence[int], start: int = 0) -> Any:
        return self._timed("msm_s", self.inner.msm_g2, section, scalars, start)

    def msm_g1_at(self, section: int, indices: Sequence[int], scalars: Sequence[int]) -> Any:
        return self._timed("msm_s", self.inner.msm_g1_at, section, indices, scalars)

    def msm_g2_at(self, section: int, indices: Sequence[int], scalars: Sequence[int]) -> Any:
        return self._timed("msm_s", self.inner.msm_g2_at, section, indices, scalars)

    def fft(self, values: Sequence[int]) -> list[int]:
        return self._timed("fft_s", self.inner.fft, values)

    def ifft(self, values: Sequence[int]) -> list[int]:
        return self._timed("fft_s", self.inner.ifft, values)

    def n_points(self, section: int) -> int:
        return self.inner.n_points(section)


@dataclass
class Mark:
    """A server's counters at one instant (taken in its own thread)."""

    wall: float
    py_cpu: float
    node_cpu: float
    sent: int
    rounds: int


@dataclass
class Server:
    """One server's engine (and node worker, whose CPU is this server's alone)."""

    party: int
    engine: TimedEngine
    worker: Any = None
    marks: list[Mark] = field(default_factory=list)

    def mark(self, hub: Any) -> None:
        pid = self.worker.pid if self.worker is not None else None
        self.marks.append(Mark(time.perf_counter(), time.thread_time(), proc_cpu_s(pid) if pid else 0.0,
                               hub.bytes_sent[self.party], hub.rounds[self.party]))


def make_servers(n: int, zkey_path: Path, engine_kind: str, zk: Any) -> list[Server]:
    """n engines; with snarkjs each gets a private node worker with the zkey already loaded."""
    from omniplus.prover.engine import NodeWorker, SnarkjsEngine
    from omniplus.prover.groth16_prove import NativeEngine

    servers = []
    for j in range(1, n + 1):
        if engine_kind == "snarkjs":
            w = NodeWorker()
            eng: Any = SnarkjsEngine(zkey_path, node=w)
            w.fft([0, 0])  # warm: wasm curve built before the clock starts
            servers.append(Server(j, TimedEngine(eng), w))
        else:
            servers.append(Server(j, TimedEngine(NativeEngine(zk))))
    return servers


def stop_servers(servers: Sequence[Server]) -> None:
    for s in servers:
        if s.worker is not None:
            s.worker.stop()


def phase_stats(servers: Sequence[Server], a: int, b: int) -> dict[str, float]:
    """Per-server means between marks a and b, plus the phase's wall time."""
    def mean(f: Any) -> float:
        return sum(f(s.marks[a], s.marks[b]) for s in servers) / len(servers)

    return {
        "wall_s": max(s.marks[b].wall for s in servers) - min(s.marks[a].wall for s in servers),
        "py_cpu_s": mean(lambda x, y: y.py_cpu - x.py_cpu),
        "node_cpu_s": mean(lambda x, y: y.node_cpu - x.node_cpu),
        "sent_b": mean(lambda x, y: y.sent - x.sent),
        "rounds": mean(lambda x, y: y.rounds - x.rounds),
        "max_cpu_s": max((s.marks[b].py_cpu - s.marks[a].py_cpu) + (s.marks[b].node_cpu - s.marks[a].node_cpu)
                         for s in servers),
    }


# --- single prover ------------------------------------------------------------------------------
def single_prover(zkey: Path, witness: Sequence[int], repeat: int) -> dict[str, float]:
    """snarkjs groth16.prove in a private warm node worker: wall and node CPU (median of repeat).

    Also proves once on a random full-field "witness" of the same length (the proof is invalid;
    only its cost matters): what the single prover would pay if its scalars were not small."""
    from omniplus.prover.engine import NodeWorker, SnarkjsEngine
    from omniplus.prover.field import R

    w = NodeWorker()
    try:
        eng = SnarkjsEngine(zkey, node=w)
        eng.prove(witness)  # cold run: loads everything
        walls, cpus = [], []
        for _ in range(repeat):
            c0, t0 = proc_cpu_s(w.pid), time.perf_counter()
            eng.prove(witness)
            walls.append(time.perf_counter() - t0)
            cpus.append(proc_cpu_s(w.pid) - c0)
        dense = [1] + [secrets.randbelow(R) for _ in range(len(witness) - 1)]
        c0, t0 = proc_cpu_s(w.pid), time.perf_counter()
        eng.prove(dense)
        return {"single_s": median(walls), "single_cpu_s": median(cpus),
                "single_fullfield_s": time.perf_counter() - t0,
                "single_fullfield_cpu_s": proc_cpu_s(w.pid) - c0}
    finally:
        w.stop()


# --- the two circuits ---------------------------------------------------------------------------
def dense_setup(power: int) -> tuple[dict[str, Path], float, int]:
    """Cached setup of the squaring circuit with 2^power − 2 constraints (domain 2^power).

    Same ingredients as prover/trusted_setup.py (circom2 --O2, the development ptau of the
    needed power, `snarkjs groth16 setup`, one contribution) through the snarkjs CLI, since
    run_setup only builds the gradient circuit."""
    from omniplus.circuits.build import r1cs_header
    from omniplus.prover.ptau import resolve_ptau

    n = (1 << power) - 2
    out = bench_cache("dense", f"squarings_{n}")
    files = {"r1cs": out / "circuit.r1cs", "wasm": out / "circuit_js" / "circuit.wasm",
             "zkey": out / "circuit_final.zkey", "vkey": out / "verification_key.json"}
    meta_path = out / "setup.json"
    if meta_path.exists() and all(f.exists() for f in files.values()):
        meta = json.loads(meta_path.read_text())
        return files, float(meta["setup_s"]), int(meta["n_constraints"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log(f"[setup] dense 2^{power}: {n} squarings → {out}")
    snarkjs = paths.node_tool("snarkjs")
    t0 = time.perf_counter()
    (out / "circuit.circom").write_text(DENSE_TEMPLATE.read_text() + f"\ncomponent main = Squarings({n});\n")
    link = out / "node_modules"
    link.symlink_to(paths.NODE_MODULES)
    try:
        run_tool([paths.node_tool("circom2"), "circuit.circom", "--r1cs", "--wasm", "--O2",
                  "-l", "node_modules", "-o", "."], cwd=out, what="circom2", timeout=3600)
    finally:
        link.unlink(missing_ok=True)
    n_constraints = r1cs_header(files["r1cs"])["n_constraints"]
    ptau, _ = resolve_ptau(n_constraints, 1)
    run_tool([snarkjs, "groth16", "setup", files["r1cs"], ptau, out / "c0.zkey"], cwd=out,
             what="snarkjs groth16 setup", timeout=7200)
    run_tool([snarkjs, "zkey", "contribute", out / "c0.zkey", files["zkey"], "--name=bench"], cwd=out,
             what="snarkjs zkey contribute", input=(secrets.token_hex(32) + "\n").encode(), timeout=7200)
    (out / "c0.zkey").unlink()
    run_tool([snarkjs, "zkey", "export", "verificationkey", files["zkey"], files["vkey"]], cwd=out,
             what="snarkjs zkey export verificationkey")
    seconds = time.perf_counter() - t0
    meta_path.write_text(json.dumps({"setup_s": seconds, "n_constraints": n_constraints}))
    log(f"[setup] dense 2^{power}: {n_constraints} constraints in {seconds:.1f}s")
    return files, seconds, n_constraints


def dense_witness(files: dict[str, Path], work: Path) -> list[int]:
    """The circuit's own wasm computes the witness for a random x (all wires dense)."""
    from omniplus.prover.field import R
    from omniplus.prover.wtns import read_wtns

    (work / "input.json").write_text(json.dumps({"x": str(secrets.randbelow(R))}))
    run_tool([paths.node_tool("snarkjs"), "wtns", "calculate", files["wasm"], work / "input.json",
              work / "w.wtns"], cwd=work, what="snarkjs wtns calculate")
    return read_wtns(work / "w.wtns")


def check_proof(vkey_path: Path, proof: Any, public: list[int]) -> bool:
    from omniplus.prover.groth16_verify import verify

    return verify(json.loads(vkey_path.read_text()), proof, public)


def do_point_shares(setup: Any, layout: Any, zk: Any, blocks: Sequence[Sequence[int]], t: int, n: int,
                    engine_kind: str) -> tuple[list[dict[int, bytes]], float]:
    """Every DO's point shares, made as a DO makes them; returns (shares, mean CPU s per DO)."""
    from omniplus.prover.engine import NodeWorker, SnarkjsEngine
    from omniplus.prover.groth16_prove import NativeEngine
    from omniplus.prover.mpc.point_shares import make_point_shares

    worker = NodeWorker() if engine_kind == "snarkjs" else None
    try:
        eng: Any = SnarkjsEngine(setup.zkey, node=worker) if worker else NativeEngine(zk)
        if worker:
            worker.fft([0, 0])
        c0 = time.thread_time() + (proc_cpu_s(worker.pid) if worker else 0.0)
        out = [make_point_shares(eng, layout, zk.n_public, b, t, n) for b in blocks]
        c1 = time.thread_time() + (proc_cpu_s(worker.pid) if worker else 0.0)
    finally:
        if worker:
            worker.stop()
    return out, (c1 - c0) / max(1, len(blocks))


def bench_gradient(power: int, n: int, engine_kind: str, repeat: int, mode: str = "wires") -> Row:
    """N DOs submit shared blocks; servers validate on shares, open the aggregate and prove."""
    from omniplus.prover.binding import BindingContext
    from omniplus.prover.mpc.batch import make_block, prove_batch_party, share_block
    from omniplus.prover.mpc.layout import load_layout
    from omniplus.prover.mpc.randomness import Rng
    from omniplus.prover.mpc.validation import validate_blocks
    from omniplus.prover.witness import full_witness
    from omniplus.prover.zkey import read_zkey

    t = (n - 1) // 2
    setup, _, _ = gradient_setup(power)
    layout = load_layout(setup)
    zk = read_zkey(setup.zkey)
    rows, _pub = gradient_statement(setup)
    dos = [f"do{i}" for i in range(len(rows))]
    payees = ["0x" + f"{i + 1:02x}" * 20 for i in range(len(rows))]
    shares: dict[int, dict[str, list[int]]] = {j: {} for j in range(1, n + 1)}
    blocks = [make_block(setup, layout, row) for row in rows]
    for do, block in zip(dos, blocks, strict=True):
        for j, s in share_block(block, t, n).items():
            shares[j][do] = s
    points: dict[int, dict[str, bytes]] | None = None
    do_points_cpu = None
    if mode == "points":
        made, do_points_cpu = do_point_shares(setup, layout, zk, blocks, t, n, engine_kind)
        points = {j: {do: m[j] for do, m in zip(dos, made, strict=True)} for j in range(1, n + 1)}
    servers = make_servers(n, setup.zkey, engine_kind, zk)
    ctx = BindingContext.for_batch(chain_id=31337, market="0x" + "00" * 20, task_id=0, batch_index=0,
                                   payees=payees)

    def body(net: Any) -> Any:
        srv = servers[net.party - 1]
        rng = Rng()
        srv.mark(net.hub)
        verdicts = validate_blocks(net, t, layout.block, shares[net.party], rng, round_id="bench/validate")
        srv.mark(net.hub)
        ok = [do for do in dos if verdicts[do] is None]
        outcome = prove_batch_party(net, t, setup, zk, layout, srv.engine,
                                    [shares[net.party][do] for do in ok],
                                    [payees[dos.index(do)] for do in ok], ctx, rng, "bench",
                                    point_shares=None if points is None else [points[net.party][do] for do in ok])
        srv.mark(net.hub)
        return outcome

    log(f"[mpc] gradient 2^{power}, n={n}, {mode}: {len(dos)} DOs, block {layout.block_size} wires")
    try:
        outcomes = run_parties(n, body, timeout=7200)
    finally:
        stop_servers(servers)
    o = outcomes[0]
    verified = all(x.proof == o.proof for x in outcomes) and check_proof(setup.vkey, o.proof, o.public)
    if mode == "points":
        verified = verified and o.fast is True
    single = single_prover(setup.zkey, full_witness(setup, rows, o.public), repeat)
    row = _row("gradient", power, n, t, setup.manifest["n_constraints"], len(dos), layout.block_size,
               servers, single, verified, prove_marks=(1, 2))
    row["mode"] = mode
    if do_points_cpu is not None:
        row["do_points_cpu_s"] = do_points_cpu
    val = phase_stats(servers, 0, 1)
    row.update(validate_wall_s=val["wall_s"], validate_cpu_s=val["py_cpu_s"] + val["node_cpu_s"],
               validate_sent_b=val["sent_b"], validate_rounds=val["rounds"])
    sent_total = row["prove_sent_b"] + val["sent_b"]
    row["sent_per_server_per_do_b"] = sent_total / len(dos)
    row["per_do_b"] = row["block_b"] + row["sent_per_server_per_do_b"]
    row["per_do_over_block"] = ratio(row["per_do_b"], row["block_b"])
    return row


def bench_dense(power: int, n: int, engine_kind: str, repeat: int, work: Path) -> Row:
    """One dealer shares the whole dense witness (public wires stay constants); servers prove."""
    from omniplus.prover.field import R
    from omniplus.prover.mpc.groth16 import joint_randomness, prove_party
    from omniplus.prover.mpc.randomness import Rng, poly_shares
    from omniplus.prover.zkey import read_zkey

    t = (n - 1) // 2
    files, _, n_constraints = dense_setup(power)
    zk = read_zkey(files["zkey"])
    witness = dense_witness(files, work)
    n_pub = zk.n_public
    private = witness[n_pub + 1:]
    dealt = poly_shares([v % R for v in private], t, n, Rng())
    servers = make_servers(n, files["zkey"], engine_kind, zk)

    def body(net: Any) -> Any:
        srv = servers[net.party - 1]
        w = list(witness[: n_pub + 1]) + dealt[net.party]
        srv.mark(net.hub)
        srv.mark(net.hub)  # no validation phase: keep the mark indices of the gradient run
        rnd = joint_randomness(net, t, Rng(), "dense/blind")
        proof = prove_party(net, t, zk, srv.engine, w, rnd, "dense/prove")
        srv.mark(net.hub)
        return proof

    log(f"[mpc] dense 2^{power}, n={n}: {n_constraints} constraints, {len(private)} shared wires")
    try:
        proofs = run_parties(n, body, timeout=7200)
    finally:
        stop_servers(servers)
    verified = all(p == proofs[0] for p in proofs) and check_proof(files["vkey"], proofs[0],
                                                                    witness[1: n_pub + 1])
    single = single_prover(files["zkey"], witness, repeat)
    row = _row("dense", power, n, t, n_constraints, 1, len(private), servers, single, verified,
               prove_marks=(1, 2))
    row["sent_per_server_per_do_b"] = row["prove_sent_b"]
    row["per_do_b"] = row["block_b"] + row["prove_sent_b"]
    row["per_do_over_block"] = ratio(row["per_do_b"], row["block_b"])
    return row


def _row(circuit: str, power: int, n: int, t: int, constraints: int, dos: int, block_wires: int,
         servers: Sequence[Server], single: dict[str, float], verified: bool,
         prove_marks: tuple[int, int]) -> Row:
    ps = phase_stats(servers, *prove_marks)
    cpu = ps["py_cpu_s"] + ps["node_cpu_s"]
    return {
        "circuit": circuit, "mode": "wires", "power": power, "constraints": constraints, "n": n, "t": t, "dos": dos,
        "wall_s": ps["wall_s"], "server_cpu_s": cpu, "server_max_cpu_s": ps["max_cpu_s"],
        "server_py_cpu_s": ps["py_cpu_s"], "server_node_cpu_s": ps["node_cpu_s"],
        "server_msm_s": sum(s.engine.msm_s for s in servers) / len(servers),
        "server_fft_s": sum(s.engine.fft_s for s in servers) / len(servers),
        "prove_sent_b": ps["sent_b"], "rounds": ps["rounds"],
        **single,
        "cpu_over_single_cpu": ratio(cpu, single["single_cpu_s"]),
        "cpu_over_single_wall": ratio(cpu, single["single_s"]),
        "block_wires": block_wires, "block_b": block_wires * SCALAR_BYTES,
        "verified": verified, "load1": round(os.getloadavg()[0], 2),
    }


COLUMNS = [
    Column("circuit", "circuit"), Column("mode", "mode"), Column("power", "2^"), Column("constraints", "constraints"),
    Column("n", "n"), Column("t", "t"),
    Column("wall_s", "MPC wall s", "{:.2f}"), Column("server_cpu_s", "CPU/server s", "{:.2f}"),
    Column("server_py_cpu_s", "py s", "{:.2f}"), Column("server_node_cpu_s", "node s", "{:.2f}"),
    Column("single_s", "single s", "{:.2f}"), Column("single_cpu_s", "single CPU s", "{:.2f}"),
    Column("single_fullfield_cpu_s", "single CPU full-field s", "{:.2f}"),
    Column("cpu_over_single_cpu", "CPU/single CPU", "{:.2f}x"),
    Column("prove_sent_b", "sent/server B", "{:.0f}"), Column("rounds", "rounds", "{:.0f}"),
    Column("do_points_cpu_s", "DO points s", "{:.2f}"),
    Column("validate_cpu_s", "validate CPU s", "{:.2f}"), Column("validate_rounds", "val. rounds", "{:.0f}"),
    Column("per_do_over_block", "B per DO / block×32", "{:.3f}"),
    Column("verified", "verified"), Column("load1", "load"),
]


def _draw(rows: list[Row]):
    def draw(fig: Any) -> None:
        ax1, ax2 = fig.subplots(1, 2)
        for circuit, marker in (("gradient", "o"), ("dense", "s")):
            for n in sorted({r["n"] for r in rows}):
                for mode in MODES:
                    pts = [r for r in rows if r["circuit"] == circuit and r["n"] == n and r["mode"] == mode]
                    name = circuit if circuit == "dense" else f"{circuit} ({mode})"
                    if pts:
                        ax1.plot([r["constraints"] for r in pts], [r["server_cpu_s"] for r in pts],
                                 marker=marker, label=f"{name}: CPU per server, n={n}")
                        ax2.plot([r["constraints"] for r in pts], [r["cpu_over_single_cpu"] for r in pts],
                                 marker=marker, label=f"{name}, n={n}")
            single: dict[int, list[float]] = {}  # measured once per row: average per size
            for r in rows:
                if r["circuit"] == circuit:
                    single.setdefault(r["constraints"], []).append(r["single_cpu_s"])
            if single:
                xs = sorted(single)
                ax1.plot(xs, [sum(single[x]) / len(single[x]) for x in xs], marker=marker,
                         linestyle="--", color="black", label=f"{circuit}: single prover CPU")
        ax1.set(xscale="log", yscale="log", xlabel="constraints", ylabel="CPU seconds",
                title="Collaborative proof: CPU per server vs single prover")
        ax1.legend(fontsize=7)
        ax2.axhline(1.3, color="grey", linestyle=":", label="1.3x target (dense, 2^16)")
        ax2.axhline(1.5, color="black", linestyle=":", label="1.5x target (gradient, points, 2^16)")
        ax2.set(xscale="log", xlabel="constraints", ylabel="per-server CPU / single-prover CPU",
                title="Overhead ratio")
        ax2.legend(fontsize=7)

    return draw


def notes_for(rows: list[Row], engine: str) -> list[str]:
    notes = [
        "servers are threads in one process over prover.mpc LocalHub (in-process transport): no TLS, "
        "no sockets; loopback gRPC with mTLS would add encryption and framing cost per message",
        f"engine per server: {engine}" + (" (a private node worker each)" if engine == "snarkjs" else "")
        + "; CPU/server = party thread time.thread_time (py) + its node worker's CPU from /proc (node)",
        "MPC wall s is on this 2-core machine shared by all n servers (and other jobs): it is not the "
        "wall time of n separate machines; CPU/server is the comparable number",
        "single = snarkjs groth16.prove in a warm node worker (2 threads: CPU > wall); 'single CPU "
        "full-field' = the same prover on a random field-element witness (proof invalid; cost only)",
        "sent/server = bytes one server sent to the others during the proof (aggregate opening, joint "
        "randomness, 2 opening rounds); rounds = broadcast/exchange steps per server (constant in size)",
        "B per DO / block×32: (share of the block one server receives + its server-to-server bytes / #DOs)"
        " over block wires × 32 bytes",
    ]
    for circuit in CIRCUITS:
        seen = {(r["power"], r["rounds"]) for r in rows if r["circuit"] == circuit}
        if len({p for p, _ in seen}) > 1:
            counts = sorted({k for _, k in seen})
            notes.append(f"{circuit}: proof rounds per server {counts} across sizes "
                         f"{sorted({p for p, _ in seen})}: " + ("constant" if len(counts) == 1 else "NOT constant"))
    grad = [r for r in rows if r["circuit"] == "gradient" and r["mode"] == "wires"]
    if grad:
        r = max(grad, key=lambda x: (x["power"], x["n"]))
        notes.append(
            f"where the time goes (gradient, 2^{r['power']}, n={r['n']}): per server "
            f"{r['server_py_cpu_s']:.2f}s Python (QAP evaluations over the shared witness, coset "
            f"shifts, codec) + {r['server_node_cpu_s']:.2f}s node (MSMs {r['server_msm_s']:.2f}s wall, "
            f"FFTs {r['server_fft_s']:.2f}s wall). The single prover's MSM scalars are the witness: "
            "mostly 0/1 range bits and small integers, which snarkjs multiplies almost for free "
            f"({r['single_cpu_s']:.2f}s CPU); each server's shares are uniform 254-bit field elements, so "
            f"its MSMs cost what a full-field witness costs the single prover "
            f"({r['single_fullfield_cpu_s']:.2f}s CPU). The ratio to that full-field cost is "
            f"{ratio(r['server_cpu_s'], r['single_fullfield_cpu_s']) or 0:.2f}x — the MPC overhead proper"
        )
    pts = [r for r in rows if r["circuit"] == "gradient" and r["mode"] == "points"]
    if pts:
        r = max(pts, key=lambda x: (x["power"], -x["n"]))
        notes.append(
            f"points mode (gradient, 2^{r['power']}, n={r['n']}): each DO computes its block's A, B1, B2, L "
            f"sums for every slot on its clear (mostly 0/1) values and shares the points "
            f"({r.get('do_points_cpu_s', 0):.2f}s CPU per DO); a server's MSMs are then H plus the sparse "
            f"clear wires, and it verifies its proof (node) before trusting it: {r['server_cpu_s']:.2f}s CPU "
            f"per server = {r['cpu_over_single_cpu'] or 0:.2f}x the single prover's {r['single_cpu_s']:.2f}s, "
            f"of which {r['server_py_cpu_s']:.2f}s Python (QAP evaluations over the shares, coset shifts, "
            "codec) and the rest node (H MSM, FFTs, sparse MSMs, verification)")
        loads = sorted({r["load1"] for r in rows})
        if loads and loads[-1] > 2.5:
            notes.append(f"load average up to {loads[-1]:.1f} on 2 cores during this run: absolute seconds are "
                         "inflated and noisy; compare the ratios of rows measured side by side")
    if any(not r["verified"] for r in rows):
        notes.append("WARNING: some joint proof did not verify")
    return notes


def run(args: argparse.Namespace) -> int:
    bad = [c for c in args.circuits if c not in CIRCUITS] + [m for m in args.modes if m not in MODES]
    if bad or any(n < 3 for n in args.parties) or not args.modes:
        log(f"circuits must be among {CIRCUITS}, modes among {MODES}, and every n ≥ 3 (n ≥ 2t+1 with t ≥ 1)")
        return 2
    rows: list[Row] = []
    import tempfile

    with tempfile.TemporaryDirectory(prefix="omniplus-bench-mpc-") as tmp:
        for power in args.sizes:
            for circuit in args.circuits:
                for n in args.parties:
                    modes = args.modes if circuit == "gradient" else ["wires"]
                    for mode in modes:
                        if circuit == "gradient":
                            row = bench_gradient(power, n, args.engine, max(1, args.repeat), mode)
                        else:
                            row = bench_dense(power, n, args.engine, max(1, args.repeat), Path(tmp))
                        log(f"[mpc] {circuit} 2^{power} n={n} {mode}: wall {row['wall_s']:.2f}s, CPU/server "
                            f"{row['server_cpu_s']:.2f}s, single CPU {row['single_cpu_s']:.2f}s, "
                            f"load {row['load1']}")
                        rows.append(row)
    return report(args, "mpc", rows, COLUMNS, notes_for(rows, args.engine), _draw(rows))


if __name__ == "__main__":  # python -m bench.mpc ...
    ap = argparse.ArgumentParser(prog="python -m bench.mpc")
    add_arguments(ap)
    sys.exit(run(ap.parse_args()))
