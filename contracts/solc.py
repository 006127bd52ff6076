"""Compile Solidity with the pinned solc-js (npm `solc`) through its standard-JSON API.

No compiler is downloaded: a small node helper (`compile.js`) feeds the JSON to the wasm
compiler shipped in node_modules. The EVM version is pinned explicitly (solc 0.8.37 defaults
to `osaka`, which not every chain runs). Artifacts are cached under
``cache_dir()/"solc"`` keyed by a hash of the sources, the settings and the compiler version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omniplus.core.errors import ToolError
from omniplus.core.resources import CONTRACTS_DIR, NODE_MODULES, cache_dir
from omniplus.core.tools import run_tool

EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
COMPILE_JS = Path(__file__).with_name("compile.js")


@dataclass(frozen=True)
class Artifact:
    """What deployment needs: the ABI and the creation bytecode (hex, 0x-prefixed); the runtime code
    and where solc puts immutables in it (byte ranges), so deployed code can be compared exactly."""

    name: str
    abi: list
    bytecode: str
    deployed_size: int = 0
    deployed: str = ""
    immutables: tuple[tuple[int, int], ...] = ()

    def masked_runtime(self, code: bytes | None = None) -> bytes:
        """The runtime code (or `code`, e.g. from eth_getCode) with every immutable range zeroed."""
        raw = bytearray(bytes.fromhex(self.deployed.removeprefix("0x")) if code is None else code)
        for start, length in self.immutables:
            if start + length <= len(raw):
                raw[start:start + length] = b"\0" * length
        return bytes(raw)


def _solc_version() -> str:
    pkg = NODE_MODULES / "solc" / "package.json"
    if not pkg.exists():
        raise ToolError(f"{pkg} is missing: run `make install` (npm ci) first")
    return json.loads(pkg.read_text())["version"]


def _settings() -> dict:
    return {
        "evmVersion": EVM_VERSION,
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "viaIR": False,
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object",
                                          "evm.deployedBytecode.immutableReferences"]}},
    }


def _resolve(src: str | Path) -> Path:
    path = Path(src)
    if not path.is_absolute() and not path.exists():
        path = CONTRACTS_DIR / path
    if not path.exists():
        raise ToolError(f"solc: source {src} not found")
    return path.resolve()


def compile_contracts(*sources: str | Path) -> dict[str, Artifact]:
    """Compile the given .sol files (paths, or names inside contracts/) into name -> Artifact.

    Every contract defined in the sources (and their imports) is returned. Names must be unique
    across the sources; a clash raises ToolError rather than silently picking one.
    """
    if not sources:
        sources = tuple(sorted(CONTRACTS_DIR.glob("*.sol")))
    paths = [_resolve(s) for s in sources]
    base = paths[0].parent
    contents = {str(p.relative_to(base)) if p.is_relative_to(base) else str(p): p.read_text() for p in paths}
    settings = _settings()
    version = _solc_version()
    key_src = json.dumps({"sources": contents, "settings": settings, "solc": version}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    cache = cache_dir() / "solc" / f"{key}.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        return {name: Artifact(**{**a, "immutables": tuple(tuple(r) for r in a.get("immutables", ()))})
                for name, a in data.items()}

    std_in = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in contents.items()},
        "settings": settings,
    }
    proc = run_tool(["node", COMPILE_JS, base], input=json.dumps(std_in).encode(), what="solc",
                    timeout=600)
    out = json.loads(proc.stdout)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        msg = " | ".join(e.get("formattedMessage", e.get("message", "?")).strip() for e in errors[:5])
        raise ToolError(f"solc: {msg}")
    artifacts: dict[str, Artifact] = {}
    for file_name, contracts in out.get("contracts", {}).items():
        for name, c in contracts.items():
            if name in artifacts:
                raise ToolError(f"solc: contract name {name} defined twice (again in {file_name})")
            code = c["evm"]["bytecode"]["object"]
            deployed = c["evm"]["deployedBytecode"]["object"]
            refs = c["evm"]["deployedBytecode"].get("immutableReferences", {}) or {}
            ranges = tuple(sorted((int(r["start"]), int(r["length"])) for rs in refs.values() for r in rs))
            artifacts[name] = Artifact(name=name, abi=c["abi"], bytecode="0x" + code,
                                       deployed_size=len(deployed) // 2, deployed="0x" + deployed,
                                       immutables=ranges)
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump({n: a.__dict__ for n, a in artifacts.items()}, fh)
    os.replace(tmp, cache)
    return artifacts


def market_artifacts() -> dict[str, Artifact]:
    """RollupMarket, PlainMarket and the test-only ReentrancyAttacker and Relayer (cached after the first build)."""
    return compile_contracts(
        CONTRACTS_DIR / "RollupMarket.sol",
        CONTRACTS_DIR / "PlainMarket.sol",
        CONTRACTS_DIR / "ReentrancyAttacker.sol",
        CONTRACTS_DIR / "Relayer.sol",
    )
