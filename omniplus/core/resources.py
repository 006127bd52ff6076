"""Where things live.

Package data (the circuit, the contracts, the prover's JavaScript, the proto files) ships inside
the installed package and is found next to the module that owns it, so a plain `pip install .`
works as well as the editable install of a checkout. The pinned npm toolchain (node_modules) is
not Python package data: it is looked up in $OMNIPLUS_NODE_MODULES, then in the checkout the
package was installed from (editable install), then in the current directory.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def package_dir(name: str) -> Path:
    """The folder of one omniplus sub-package, wherever it is installed; imports nothing."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


CIRCUITS_DIR = package_dir("omniplus.circuits")
CONTRACTS_DIR = package_dir("omniplus.contracts")
PROTO_DIR = package_dir("omniplus.proto")
JS_DIR = package_dir("omniplus.prover") / "js"
BENCH_DIR = package_dir("omniplus.bench")


def _checkout() -> Path | None:
    """The source checkout, when the package runs from one (editable install)."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "package.json").exists() and (here / "pyproject.toml").exists() else None


ROOT = _checkout() or Path.cwd()


def _node_modules() -> Path:
    env = os.environ.get("OMNIPLUS_NODE_MODULES")
    if env:
        return Path(env).resolve()
    for base in (_checkout(), Path.cwd()):
        if base is not None and (base / "node_modules").is_dir():
            return base / "node_modules"
    return ROOT / "node_modules"


NODE_MODULES = _node_modules()
NODE_BIN = NODE_MODULES / ".bin"
BENCH_RESULTS = Path(os.environ.get("OMNIPLUS_RESULTS") or ROOT / "bench" / "results")


def cache_dir() -> Path:
    """Per-user cache (development setups, compiled contracts); OMNIPLUS_CACHE overrides."""
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
        raise FileNotFoundError(f"{path} is missing: run `make install` (npm ci) or set OMNIPLUS_NODE_MODULES")
    return path


def anvil_binary() -> Path:
    """The native anvil shipped inside the npm package (its postinstall does not run here)."""
    path = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` (npm ci) or set OMNIPLUS_NODE_MODULES")
    return path
