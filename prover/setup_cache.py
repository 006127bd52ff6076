"""The one cache of development setups, shared by the devnet, the demo and the benchmarks.

A setup is reused only when it was made for the same statement *and* the same circuit source, so
a change to the circuit (or to the parameters' derived widths) makes a new entry instead of
silently proving against a stale zkey. Entries live under cache_dir()/"setups"; a lock file per
entry serialises concurrent makers, and run_setup writes atomically, so a crash leaves no
half-made directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from omniplus.circuits.build import circuit_source
from omniplus.circuits.params import CircuitParams
from omniplus.core.errors import SetupError
from omniplus.core.resources import cache_dir

Say = Callable[[str], None]


def cache_key(params: CircuitParams) -> str:
    digest = hashlib.sha256(circuit_source(params).encode()).hexdigest()[:12]
    return f"N{params.batch}-d{params.dims}-k{params.bits}-B{params.norm_bound}-{digest}"


def cache_path(params: CircuitParams) -> Path:
    return cache_dir() / "setups" / cache_key(params)


def cached_setup(params: CircuitParams, progress: Say | None = None) -> tuple[object, bool]:
    """(SetupDir, was it cached) for `params`: made once with the development setup, then reused."""
    from omniplus.prover.trusted_setup import SetupDir, run_setup

    out = cache_path(params)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return SetupDir.load(out), True
        except SetupError:
            if out.exists():
                shutil.rmtree(out)
        if progress:
            progress(f"running the trusted setup for {params.describe()} (cached in {out})")
        step = (lambda label, dt: progress(f"  setup: {label} {dt:.1f}s")) if progress else None
        return run_setup(params, out, progress=step), False
