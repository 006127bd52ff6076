"""Where things live. The tool runs from its checkout (editable install), so the
JavaScript toolchain in node_modules and the circuit/contract sources are found
relative to the repository root."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
NODE_BIN = NODE_MODULES / ".bin"
CIRCUITS_DIR = ROOT / "circuits"
CONTRACTS_DIR = ROOT / "contracts"
PROTO_DIR = ROOT / "proto"
JS_DIR = ROOT / "prover" / "js"
BENCH_RESULTS = ROOT / "bench" / "results"


def cache_dir() -> Path:
    """Per-user cache (development powers of tau, compiled contracts); OMNIPLUS_CACHE overrides."""
    base = os.environ.get("OMNIPLUS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "omniplus"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def node_tool(name: str) -> Path:
    """A binary from the pinned npm toolchain; a clear error if `make install` has not run."""
    path = NODE_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` (npm ci) first")
    return path


def anvil_binary() -> Path:
    """The native anvil shipped inside the npm package (its postinstall does not run here)."""
    path = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` (npm ci) first")
    return path
