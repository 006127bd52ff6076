"""Running the pinned external tools (node scripts, circom2, snarkjs, anvil) with clear errors."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from omniplus.core.errors import ToolError


def run_tool(cmd: Sequence[str | Path], *, cwd: Path | None = None, what: str | None = None,
             timeout: float | None = None, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure raise ToolError with the last lines of its output."""
    argv = [str(c) for c in cmd]
    label = what or Path(argv[0]).name
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, input=input)
    except FileNotFoundError as exc:
        raise ToolError(f"{label}: {exc.filename} not found (run `make install`)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{label}: timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or b"").decode(errors="replace").strip().splitlines()[-8:]
        raise ToolError(f"{label} failed (exit {proc.returncode}): " + " | ".join(tail))
    return proc
