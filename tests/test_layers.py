"""The layer rule of docs/DESIGN.md, enforced on the code's own imports (function-local ones too).

    cli | bench  >  devnet, api, market_run  >  ml  >  servers  >  prover.mpc | contracts
                 >  prover, circuits  >  core

A module may import its own layer or any layer below; prover.mpc and contracts never import each
other; nothing under omniplus.prover imports grpc, web3 or socket; only the CLI parses argv.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from omniplus.core.resources import package_dir

ROOT = package_dir("omniplus").parent  # the checkout (editable install)
# (layer rank, package prefixes); a module belongs to the longest prefix that matches
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (7, ("omniplus.cli", "omniplus.bench", "omniplus.__main__")),
    (6, ("omniplus.devnet", "omniplus.api", "omniplus.market_run")),
    (5, ("omniplus.ml",)),
    (4, ("omniplus.servers", "omniplus.proto")),
    (3, ("omniplus.prover.mpc", "omniplus.contracts")),
    (2, ("omniplus.prover", "omniplus.circuits")),
    (1, ("omniplus.core", "omniplus")),
]
SIBLINGS_APART = ("omniplus.prover.mpc", "omniplus.contracts")
NO_NETWORK = ("grpc", "web3", "socket", "eth_account", "eth_abi")
FOLDERS = {"omniplus": "omniplus", "prover": "omniplus.prover", "circuits": "omniplus.circuits",
           "contracts": "omniplus.contracts", "servers": "omniplus.servers", "proto": "omniplus.proto",
           "ml": "omniplus.ml", "bench": "omniplus.bench"}


def layer_of(module: str) -> tuple[int, str]:
    best = (0, "")
    for rank, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best[1]):
                best = (rank, p)
    return best


def imports_of(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement, at any depth, relative ones resolved."""
    out = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names if layer_of(f"{base}.{a.name}")[1]]
    return out


def violations(module: str, source: str) -> list[str]:
    rank, own = layer_of(module)
    found = []
    for line, target in imports_of(source, module):
        if not target.startswith("omniplus"):
            top = target.split(".")[0]
            if module.startswith("omniplus.prover") and top in NO_NETWORK:
                found.append(f"{module}:{line} imports {target} (the prover never touches the network)")
            if top == "argparse" and not module.startswith(("omniplus.cli", "omniplus.bench")):
                found.append(f"{module}:{line} imports argparse (only the CLI parses argv)")
            continue
        t_rank, t_layer = layer_of(target)
        if t_rank > rank:
            found.append(f"{module}:{line} imports {target} (layer {t_layer} is above {own})")
        if {own, t_layer} == set(SIBLINGS_APART):
            found.append(f"{module}:{line} imports {target} ({own} and {t_layer} never import each other)")
    return found


def project_modules() -> list[tuple[str, Path]]:
    mods = []
    for folder, pkg in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            if "gen" in rel.parts:
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            mods.append((".".join([pkg, *parts]), path))
    return mods


def test_every_import_points_down() -> None:
    bad = [v for module, path in project_modules() for v in violations(module, path.read_text())]
    assert bad == [], "upward imports:\n" + "\n".join(bad)


def test_the_modules_are_all_seen() -> None:
    names = {m for m, _ in project_modules()}
    assert {"omniplus.prover.field", "omniplus.servers.daemon", "omniplus.cli", "omniplus.ml.model",
            "omniplus.contracts.rollup", "omniplus.prover.mpc.batch", "omniplus.devnet"} <= names


@pytest.mark.parametrize(("module", "source", "why"), [
    ("omniplus.prover.msm", "def f():\n    from omniplus.servers import daemon\n", "above"),
    ("omniplus.core.errors", "import omniplus.prover.field\n", "above"),
    ("omniplus.prover.mpc.batch", "from omniplus.contracts.rollup import RollupMarket\n", "never import"),
    ("omniplus.contracts.rollup", "from omniplus.prover.mpc import net\n", "never import"),
    ("omniplus.prover.engine", "import grpc\n", "network"),
    ("omniplus.ml.roles", "from omniplus.devnet import Devnet\n", "above"),
    ("omniplus.servers.daemon", "import argparse\n", "argv"),
    ("omniplus.servers.rounds", "from ..market_run import run_market\n", "above"),
])
def test_an_upward_import_is_caught(module: str, source: str, why: str) -> None:
    found = violations(module, source)
    assert found and why in found[0]


def test_downward_and_same_layer_imports_pass() -> None:
    assert violations("omniplus.servers.daemon", "from omniplus.prover.field import R\nimport grpc\n") == []
    assert violations("omniplus.cli.demo", "from omniplus.bench.gas import plain_session_gas\n") == []
