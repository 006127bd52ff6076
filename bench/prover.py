"""`omniplus bench prover`: setup and proving time per backend, peak memory, and the ratios
native/snarkjs and snarkjs-backend/`snarkjs groth16 prove` (issue 2 §8).

How it measures, and why:
- Each backend proves in a fresh Python child process (`child_main`), so the kernel's wait4
  rusage gives that run's own peak RSS: the Python prover itself for native, and the larger of
  Python and the node processes it started and reaped for snarkjs (long-lived worker) and
  circom (wasm witness + CLI). No process's earlier history leaks into another's number.
- `snarkjs groth16 prove` runs directly on the very witness the backends used (a .wtns written
  from the Python witness), in the same run, right after the snarkjs backend, so the ratio
  compares like with like on the same machine state.
- The snarkjs backend's time is a warm proof (worker running, zkey loaded) — the state a server
  is in; its first, cold proof is reported too. The direct CLI always pays node start-up and
  the zkey read, which is the point of comparing the two.
- Every proof is checked with the Python verifier; a row says whether all of them verified.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omniplus.bench.common import (
    Column,
    Row,
    add_output_arguments,
    gradient_params,
    gradient_setup,
    gradient_statement,
    int_list,
    log,
    median,
    ratio,
    report,
    run_measured,
    str_list,
)
from omniplus.core import resources as paths

DEFAULT_SIZES = [10, 12, 14, 16]
# Largest default size for the pure-Python prover. Measured on this 2-core machine under load 4-8:
# 2^12 3.2 s, 2^14 3.8 s, 2^16 21.8 s (the gradient witness is mostly bits, which its Pippenger
# MSMs exploit), so the whole default sweep includes it; larger --sizes run it too.
DEFAULT_NATIVE_MAX = 16
BACKENDS = ("native", "snarkjs", "circom")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int_list, default=None,
                   help=f"log2 of the constraint count, e.g. 10,12 (default {DEFAULT_SIZES})")
    p.add_argument("--backends", type=str_list, default=list(BACKENDS),
                   help="comma-separated subset of native,snarkjs,circom (default all)")
    p.add_argument("--native-max", type=int, default=None,
                   help=f"largest size the native prover runs at (default {DEFAULT_NATIVE_MAX}, "
                        "or the largest of --sizes when given)")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed proofs per node-based prover (median reported; native runs once)")
    p.add_argument("--no-direct", action="store_true", help="skip `snarkjs groth16 prove` run directly")
    add_output_arguments(p)


# --- the child process ---------------------------------------------------------------------------
def child_main(job_path: str) -> int:
    """Prove with one backend as the job file says; print timings and the proof as JSON.

    Runs in its own process so its peak memory is its own (see the module doc)."""
    from omniplus.prover.backends import ProveJob, get_backend
    from omniplus.prover.proof import proof_to_json

    job = json.loads(Path(job_path).read_text())
    name = job["backend"]
    witness = [int(v) for v in job["witness"]]
    backend: Any = get_backend(name)
    out: dict[str, Any] = {"backend": name, "times": []}

    def one(i: int) -> tuple[Any, list[int]]:
        work = Path(job["workdir"]) / f"{name}-{i}"
        pj = ProveJob(zkey=Path(job["zkey"]), wasm=Path(job["wasm"]), witness=witness,
                      input_json=job["input_json"], workdir=work)
        return backend.prove(pj)

    if name == "native":
        t0 = time.perf_counter()
        backend.zkey(job["zkey"])  # parse once; the backend caches it like a long-lived server
        out["parse_s"] = time.perf_counter() - t0
    elif name == "snarkjs":
        t0 = time.perf_counter()
        one(0)  # cold: node start-up, wasm curve build, zkey load into the worker
        out["cold_s"] = time.perf_counter() - t0
    reps = 1 if name == "native" else int(job["repeat"])
    proof = public = None
    for i in range(1, reps + 1):
        t0 = time.perf_counter()
        proof, public = one(i)
        out["times"].append(time.perf_counter() - t0)
    if name == "native":
        out["steps"] = dict(backend.timings)
    if name == "snarkjs":
        from omniplus.bench.common import proc_peak_mb
        from omniplus.prover.engine import worker

        w = worker()
        if w.pid is not None:
            out["node_peak_mb"] = proc_peak_mb(w.pid)
        w.stop()  # reaped here, so wait4 in the parent counts the worker's peak too
    out["proof"] = proof_to_json(proof)
    out["public"] = [str(x) for x in public]
    print(json.dumps(out))
    return 0


def _run_child(job: dict, work: Path) -> tuple[dict, float, float]:
    """Run child_main in a fresh interpreter; (its JSON, peak MB, CPU s) or ToolError-like exit."""
    job_path = work / f"job-{job['backend']}.json"
    job_path.write_text(json.dumps(job))
    code = "import sys; from bench.prover import child_main; sys.exit(child_main(sys.argv[1]))"
    env = dict(os.environ, PYTHONPATH=str(paths.ROOT))
    run = run_measured([sys.executable, "-c", code, str(job_path)], cwd=paths.ROOT, env=env)
    if run.returncode != 0:
        tail = run.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{job['backend']} prover failed (exit {run.returncode}): " + " | ".join(tail))
    return json.loads(run.stdout.decode().strip().splitlines()[-1]), run.peak_mb, run.cpu_s


def _verified(vkey: dict, proof_json: dict, public: list[str]) -> bool:
    from omniplus.prover.groth16_verify import verify
    from omniplus.prover.proof import proof_from_json

    return verify(vkey, proof_from_json(proof_json), [int(x) for x in public])


# --- one size ------------------------------------------------------------------------------------
def measure_size(power: int, backends: list[str], run_native: bool, repeat: int, direct: bool) -> Row:
    """Set up (or reuse) the 2^power circuit and prove it with every requested prover."""
    from omniplus.prover.witness import circuit_inputs, full_witness
    from omniplus.prover.wtns import write_wtns

    setup, setup_s, cached = gradient_setup(power)
    p = setup.params
    rows, pub = gradient_statement(setup)
    witness = full_witness(setup, rows, pub)
    vkey = json.loads(setup.vkey.read_text())
    row: Row = {
        "power": power, "constraints": setup.manifest["n_constraints"], "wires": len(witness),
        "N": p.batch, "d": p.dims, "k": p.bits, "B": p.norm_bound,
        "setup_s": round(setup_s, 2), "setup_cached": cached,
    }
    ok = True
    with tempfile.TemporaryDirectory(prefix="omniplus-bench-prover-") as tmp:
        work = Path(tmp)
        job = {"zkey": str(setup.zkey), "wasm": str(setup.wasm), "witness": [str(v) for v in witness],
               "input_json": circuit_inputs(p, rows, pub), "repeat": repeat, "workdir": str(work)}
        order = [b for b in ("snarkjs", "direct", "circom", "native")
                 if b in backends or (b == "direct" and direct)]
        for name in order:
            if name == "native" and not run_native:
                row["native_s"] = None
                continue
            if name == "direct":
                wtns = work / "witness.wtns"
                write_wtns(wtns, witness)
                snarkjs = paths.node_tool("snarkjs")
                walls, peaks, cpus = [], [], []
                for i in range(repeat):
                    proof_path = work / f"direct-proof-{i}.json"
                    public_path = work / f"direct-public-{i}.json"
                    run = run_measured([snarkjs, "groth16", "prove", setup.zkey, wtns, proof_path,
                                        public_path], cwd=work)
                    if run.returncode != 0:
                        raise RuntimeError(f"snarkjs groth16 prove failed: {run.stderr.decode()[-300:]}")
                    walls.append(run.wall_s)
                    peaks.append(run.peak_mb)
                    cpus.append(run.cpu_s)
                ok &= _verified(vkey, json.loads(proof_path.read_text()), json.loads(public_path.read_text()))
                row.update(direct_s=median(walls), direct_cpu_s=median(cpus), direct_mb=max(peaks))
                log(f"[prove] 2^{power} snarkjs groth16 prove (CLI): {row['direct_s']:.2f}s")
                continue
            log(f"[prove] 2^{power} {name} ...")
            out, peak, cpu = _run_child({**job, "backend": name}, work)
            ok &= _verified(vkey, out["proof"], out["public"])
            row[f"{name}_s"] = median(out["times"])
            row[f"{name}_mb"] = peak
            if name == "snarkjs":
                row["snarkjs_cold_s"] = out.get("cold_s")
                row["snarkjs_node_mb"] = out.get("node_peak_mb")
            if name == "native":
                row["native_parse_s"] = out.get("parse_s")
                for k, v in out.get("steps", {}).items():
                    row[f"native_{k}_s"] = v
            log(f"[prove] 2^{power} {name}: {row[f'{name}_s']:.2f}s, peak {peak:.0f} MB")
    row["native_over_snarkjs"] = ratio(row.get("native_s"), row.get("snarkjs_s"))
    row["snarkjs_over_direct"] = ratio(row.get("snarkjs_s"), row.get("direct_s"))
    row["circom_over_direct"] = ratio(row.get("circom_s"), row.get("direct_s"))
    row["all_verified"] = ok
    row["load1"] = round(os.getloadavg()[0], 2)  # the machine is shared: context for the times
    return row


COLUMNS = [
    Column("power", "2^"), Column("constraints", "constraints"), Column("N", "N"), Column("d", "d"),
    Column("k", "k"), Column("B", "B"),
    Column("setup_s", "setup s", "{:.1f}"),
    Column("native_s", "native s", "{:.2f}"), Column("snarkjs_s", "snarkjs s", "{:.3f}"),
    Column("circom_s", "circom s", "{:.2f}"), Column("direct_s", "CLI s", "{:.2f}"),
    Column("native_mb", "native MB", "{:.0f}"), Column("snarkjs_mb", "snarkjs MB", "{:.0f}"),
    Column("circom_mb", "circom MB", "{:.0f}"), Column("direct_mb", "CLI MB", "{:.0f}"),
    Column("native_over_snarkjs", "native/snarkjs", "{:.1f}x"),
    Column("snarkjs_over_direct", "snarkjs/CLI", "{:.2f}x"),
    Column("all_verified", "verified"), Column("load1", "load"),
]


def _draw(rows: list[Row]):
    def draw(fig: Any) -> None:
        ax1, ax2 = fig.subplots(1, 2)
        xs = [r["constraints"] for r in rows]
        for key, label in (("native_s", "native (Python)"), ("snarkjs_s", "snarkjs backend (warm worker)"),
                           ("circom_s", "circom backend (wasm + CLI)"), ("direct_s", "snarkjs groth16 prove"),
                           ("setup_s", "setup")):
            pts = [(x, r[key]) for x, r in zip(xs, rows, strict=True) if r.get(key)]
            if pts:
                ax1.plot(*zip(*pts, strict=True), marker="o", label=label)
        ax1.set(xscale="log", yscale="log", xlabel="constraints", ylabel="seconds",
                title="Groth16 setup and proving time")
        ax1.legend(fontsize=8)
        for key, label in (("native_mb", "native"), ("snarkjs_mb", "snarkjs backend"),
                           ("circom_mb", "circom backend"), ("direct_mb", "snarkjs CLI")):
            pts = [(x, r[key]) for x, r in zip(xs, rows, strict=True) if r.get(key)]
            if pts:
                ax2.plot(*zip(*pts, strict=True), marker="o", label=label)
        ax2.set(xscale="log", xlabel="constraints", ylabel="peak RSS (MB)", title="Peak memory")
        ax2.legend(fontsize=8)

    return draw


def native_limit(sizes: list[int] | None, native_max: int | None) -> int:
    """Largest size native runs at: --native-max, else every size of an explicit --sizes, else
    DEFAULT_NATIVE_MAX (the default sweep reaches 2^16, hours for the pure-Python prover)."""
    if native_max is not None:
        return native_max
    return max(sizes) if sizes else DEFAULT_NATIVE_MAX


def run(args: argparse.Namespace) -> int:
    sizes = args.sizes or DEFAULT_SIZES
    native_max = native_limit(args.sizes, args.native_max)
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown:
        log(f"unknown backend(s) {unknown}: choose from {', '.join(BACKENDS)}")
        return 2
    for s in sizes:
        gradient_params(s)  # fail fast on a size the circuit cannot reach
    rows = []
    for s in sizes:
        rows.append(measure_size(s, args.backends, "native" in args.backends and s <= native_max,
                                 max(1, args.repeat), not args.no_direct))
    notes = [
        "gradient-validity circuit; (N, d, k, B) chosen so nConstraints + 2 < 2^size (domain 2^size)",
        f"times are wall seconds of one proof; node-based provers: median of {args.repeat} "
        "(snarkjs backend warm: worker running, zkey loaded); native: one run, zkey parsed beforehand",
        "CLI = `snarkjs groth16 prove zkey wtns` run directly on the same witness, in the same run",
        "peak memory = ru_maxrss from wait4 of a fresh child per prover: the Python prover for native; "
        "the larger of Python and the node processes it reaped for snarkjs/circom; node itself for CLI",
        "setup = compile + dev ptau + groth16 setup + 1 contribution + exports, as recorded when the "
        "cached setup under ~/.cache/omniplus/bench was made",
        "load = 1-minute load average after the row (2 cores): above 2, other jobs shared the CPUs",
    ]
    if "native" in args.backends:
        skipped = any(s > native_max for s in sizes)
        notes.append(f"native (pure Python) runs up to 2^{native_max}" + (
            "; skipped ('-') above it (--native-max to change)" if skipped else ""))
    if any(not r["all_verified"] for r in rows):
        notes.append("WARNING: some proof did not verify (see 'verified')")
    return report(args, "prover", rows, COLUMNS, notes, _draw(rows))


if __name__ == "__main__":  # python -m bench.prover ...
    ap = argparse.ArgumentParser(prog="python -m bench.prover")
    add_arguments(ap)
    sys.exit(run(ap.parse_args()))
