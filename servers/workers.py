"""A gate in front of expensive handlers, so cheap ones (health) always find a free worker.

gRPC's sync server runs every handler in one thread pool. If Submit handlers may take every
worker (a flood of submissions, a slow disk), health checks queue behind them and a healthy
server looks dead. The daemon sizes its public pool as running + queued + reserved workers and
lets Submit/Status through a `Gate` of `running` slots with at most `queued` waiters: beyond
that a request is refused at once with RESOURCE_EXHAUSTED, so the reserved workers are never
taken by them and health answers in milliseconds under any load.
"""

from __future__ import annotations

import threading

from omniplus.servers.storage import Rejected


class Gate:
    """At most `running` holders and `queued` waiters; `wait` seconds before giving up."""

    def __init__(self, running: int, queued: int, wait: float = 10.0) -> None:
        self._slots = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self.queued, self.wait = queued, wait
        self._waiting = 0
        self.refused = 0

    def __enter__(self) -> Gate:
        if self._slots.acquire(blocking=False):
            return self
        with self._lock:
            if self._waiting >= self.queued:
                self.refused += 1
                raise Rejected("RESOURCE_EXHAUSTED", "server busy: too many submissions in progress, retry later")
            self._waiting += 1
        try:
            ok = self._slots.acquire(timeout=self.wait)
        finally:
            with self._lock:
                self._waiting -= 1
        if not ok:
            with self._lock:
                self.refused += 1
            raise Rejected("RESOURCE_EXHAUSTED", f"server busy: no handler free within {self.wait:.0f}s, retry later")
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
