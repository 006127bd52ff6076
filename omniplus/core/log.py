"""The one logger: stdlib `logging` under the name "omniplus", two formats.

- Events (servers, coordinator): one JSON object per line, `{"ts", "level", <identity>, "event",
  ...fields}`, so an operator can grep by event name and a test can parse them. `EventLog` is the
  callable the long-running processes hold: `log("round_started", round=..., dos=3)`.
- Progress (CLI, devnet, benchmarks): plain lines on stderr so stdout stays machine-readable
  (`--json`). `progress("…")` goes through the "omniplus.progress" logger.

Each EventLog gets its own logger (and handler) so several servers in one test process write to
their own streams; nothing propagates to the root logger.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from typing import Any, TextIO

ROOT_NAME = "omniplus"
_ids = itertools.count()


class JsonLinesFormatter(logging.Formatter):
    """One compact JSON object per record; `record.fields` (a dict) is merged in after `event`."""

    def format(self, record: logging.LogRecord) -> str:
        rec = {"ts": round(record.created, 3), "level": record.levelname.lower(),
               **getattr(record, "identity", {}), "event": record.getMessage(), **getattr(record, "fields", {})}
        return json.dumps(rec, default=str, separators=(",", ":"))


class _StreamHandler(logging.StreamHandler):
    """Flushes every record and resolves sys.stderr at emit time (pytest swaps it)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        super().emit(record)


class EventLog:
    """Structured events for one process role, e.g. `EventLog("server", server=2)`."""

    def __init__(self, role: str, stream: TextIO | None = None, level: str = "info", **identity: Any) -> None:
        self.identity = {"role": role, **identity} if role != "server" else dict(identity) or {"role": role}
        self.logger = logging.getLogger(f"{ROOT_NAME}.{role}.{next(_ids)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
        handler = _StreamHandler(stream)
        handler.setFormatter(JsonLinesFormatter())
        self.logger.handlers[:] = [handler]

    @property
    def debug_on(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        lvl = logging.getLevelName(level.upper())
        if not isinstance(lvl, int):
            lvl = logging.INFO
        self.logger.log(lvl, event, extra={"identity": self.identity, "fields": fields})


def _progress_logger() -> logging.Logger:
    logger = logging.getLogger(f"{ROOT_NAME}.progress")
    if not logger.handlers:
        handler = _StreamHandler(None)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def progress(msg: str) -> None:
    """A progress line for the person at the terminal (stderr; stdout stays for --json)."""
    _progress_logger().info(msg)


def elapsed_progress(prefix: str, t0: float | None = None):
    """progress() with a `[prefix  12.3s]` stamp, for long runs such as the devnet."""
    start = time.monotonic() if t0 is None else t0

    def say(msg: str) -> None:
        progress(f"[{prefix} {time.monotonic() - start:6.1f}s] {msg}")

    return say
