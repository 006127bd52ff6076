"""CPU seconds of a process and every live descendant, from /proc (Linux).

Why a process tree: a server's proof may run in a long-lived node worker (prover/engine.py), whose
CPU the server's own utime/stime never shows and which is not reaped until the server exits, so
neither rusage nor /proc/<pid>/stat alone would see it. Used by the servers to report CPU per
phase of a batch round and by `omniplus bench round` to sample servers at phase boundaries.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime+stime seconds) of one process, None if it is gone or unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS  # ppid, utime, stime


def tree_cpu_s(pid: int | None = None) -> float:
    """User+system CPU seconds (all threads) of `pid` (default: this process) and its live descendants.

    Descendants that already exited count only through their parent's cutime once reaped; for the
    long-lived workers this is meant for, that is never during a round."""
    root = os.getpid() if pid is None else pid
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parents[int(entry.name)], cpu[int(entry.name)] = st
    if root not in cpu:
        return float("nan")
    children: dict[int, list[int]] = {}
    for p, pp in parents.items():
        children.setdefault(pp, []).append(p)
    total, todo = 0.0, [root]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += children.get(p, [])
    return total


class PhaseClock:
    """Wall and tree-CPU seconds per named phase: `mark(name)` closes the phase since the last mark."""

    def __init__(self) -> None:
        import time

        self._time = time.perf_counter
        self.phases: dict[str, dict[str, float]] = {}
        self._wall, self._cpu = self._time(), tree_cpu_s()

    def mark(self, name: str) -> None:
        wall, cpu = self._time(), tree_cpu_s()
        prev = self.phases.get(name, {"wall_s": 0.0, "cpu_s": 0.0})
        self.phases[name] = {"wall_s": round(prev["wall_s"] + wall - self._wall, 4),
                             "cpu_s": round(prev["cpu_s"] + cpu - self._cpu, 4)}
        self._wall, self._cpu = wall, cpu
