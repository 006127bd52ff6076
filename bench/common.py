"""Shared plumbing for the benchmarks: measuring child processes, tables, CSV, PNG and --json.

Why here: every benchmark reports the same way (a printed table with notes, a CSV and a PNG
under bench/results/ or --out, or the raw rows as JSON), and measures processes the same way
(wall clock with perf_counter; CPU and peak RSS of a child from the kernel via wait4, which
covers the child and every descendant it waited for).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omniplus.core import resources as paths
from omniplus.core.log import progress as log  # noqa: F401 - re-exported for the bench modules

Row = dict[str, Any]


# --- arguments ---------------------------------------------------------------------------------
def int_list(text: str) -> list[int]:
    """'10,12,14' → [10, 12, 14] (argparse type)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for the CSV and PNG (default {paths.BENCH_RESULTS})")


# --- measuring -----------------------------------------------------------------------------------
@dataclass
class ChildRun:
    """One finished child process: wall seconds, CPU seconds (user+sys), peak RSS in MB."""

    wall_s: float
    cpu_s: float
    peak_mb: float
    returncode: int
    stdout: bytes
    stderr: bytes


def run_measured(argv: Sequence[str | os.PathLike], *, cwd: Path | None = None,
                 env: dict[str, str] | None = None, timeout: float = 7200) -> ChildRun:
    """Run a command and read its rusage with os.wait4 (this child only, not earlier ones).

    ru_maxrss from wait4 is the largest of the child and its waited-for descendants, so a
    Python child that starts node and reaps it reports whichever peaked higher."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env, stdout=out, stderr=err)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return ChildRun(wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime, peak_mb=ru.ru_maxrss / 1024,
                    returncode=proc.returncode, stdout=stdout, stderr=stderr)


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user+sys, all threads) a running process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)


def proc_peak_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(num: float | None, den: float | None) -> float | None:
    """num/den from measured numbers; None when either side was not measured."""
    if num is None or den is None or not den or math.isnan(num) or math.isnan(den):
        return None
    return num / den


# --- reporting -----------------------------------------------------------------------------------
@dataclass
class Column:
    key: str
    title: str
    fmt: str = "{}"  # applied to non-None values

    def cell(self, row: Row) -> str:
        v = row.get(self.key)
        if v is None:
            return "-"
        try:
            return self.fmt.format(v)
        except (ValueError, TypeError):
            return str(v)


def format_table(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """Right-aligned text table; '-' for values that were not measured."""
    header = [c.title for c in columns]
    body = [[c.cell(r) for c in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Row]) -> Path:
    """All keys of all rows, in first-seen order (the CSV keeps every measured field)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return path


def write_png(path: Path, draw: Callable[[Any], None]) -> Path | None:
    """Draw with matplotlib's Agg backend (no display here); None if matplotlib is unusable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not importable: no PNG written")
        return None
    fig = plt.figure(figsize=(9, 5.5))
    try:
        draw(fig)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def report(args: argparse.Namespace, name: str, rows: list[Row], columns: Sequence[Column],
           notes: Sequence[str], draw: Callable[[Any], None] | None = None) -> int:
    """Write CSV (+PNG) to --out or bench/results/, then print the JSON rows or the table."""
    out_dir = Path(args.out) if getattr(args, "out", None) else paths.BENCH_RESULTS
    csv_path = write_csv(out_dir / f"{name}.csv", rows)
    png_path = write_png(out_dir / f"{name}.png", draw) if draw and rows else None
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, columns))
        for note in notes:
            print(f"  * {note}")
        print(f"  CSV: {csv_path}" + (f"   PNG: {png_path}" if png_path else ""))
    return 0


# --- the gradient-validity circuit at a target size --------------------------------------------
GRAD_BATCH, GRAD_BITS = 4, 8


def gradient_params(power: int):
    """(N, d, k, B) whose circuit has just under 2^power constraints (domain exactly 2^power).

    N = 4 DOs, k = 8 bits, B = d·2^(2k−4) (RMS a quarter of the range); d is the largest that
    keeps nConstraints + 2 public inputs below 2^power, so snarkjs picks a 2^power domain."""
    from omniplus.circuits.params import CircuitParams

    def make(d: int) -> CircuitParams:
        return CircuitParams(GRAD_BATCH, d, GRAD_BITS, d << (2 * GRAD_BITS - 4))

    lo, hi = 1, 1 << 20
    if make(1).expected_constraints() > (1 << power) - 3:
        raise ValueError(f"2^{power} is too small for the gradient circuit with N={GRAD_BATCH}")
    while lo < hi:  # largest d with expected_constraints <= 2^power - 3
        mid = (lo + hi + 1) // 2
        if make(mid).expected_constraints() <= (1 << power) - 3:
            lo = mid
        else:
            hi = mid - 1
    return make(lo).check()


def bench_cache(*parts: str) -> Path:
    path = paths.cache_dir().joinpath("bench", *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def gradient_setup(power: int) -> tuple[Any, float, bool]:
    """The cached setup for gradient_params(power): (SetupDir, setup seconds, was cached).

    Setup seconds are the step timings recorded in params.json when the setup was made, so a
    cached setup still reports what it cost."""
    from omniplus.prover.setup_cache import cached_setup

    p = gradient_params(power)
    setup, cached = cached_setup(p, lambda m: log(f"[setup] 2^{power}: {m}"))
    seconds = sum(float(v) for v in setup.manifest.get("timings_s", {}).values())
    return setup, seconds, cached


def gradient_statement(setup: Any, seed: int = 1) -> tuple[list[list[int]], list[int]]:
    """Seeded in-bound updates for every slot and their public inputs [ctx, W…, S…] (default context)."""
    import random

    from omniplus.prover.binding import BindingContext, public_inputs

    p = setup.params
    rng = random.Random(seed)
    lim = 1 << (p.bits - 2)
    rows = [[rng.randrange(-lim, lim) for _ in range(p.dims)] for _ in range(p.batch)]
    for r in rows:
        assert sum(x * x for x in r) <= p.norm_bound
    return rows, public_inputs(p, BindingContext(), rows)[1]
