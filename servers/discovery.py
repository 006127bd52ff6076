"""What the coordinator knows about DOs, kept current incrementally.

* `Discovery`: one cursor per server over Control.Submissions (the server's storage numbers every
  change of a submission). A pass asks each server only for what changed since its cursor, over
  the coordinator's long-lived mutual-TLS channel: a thousand silent DOs cost nothing per pass.
  A server whose storage epoch changes (a new database) is re-listed from 0. Servers that did
  not answer this pass are left out of `states()`, so a DO counts as held by every server only
  when every server has just said so.
* `PaidBatches`: the payees of BatchSubmitted events, read from the chain once and then only from
  the block after the last one read (the chain is the truth about who is paid).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc


class Discovery:
    def __init__(self, control: Any, servers: Iterable[int], log: Callable[..., None] | None = None,
                 page: int = 1000) -> None:
        self.control, self.servers, self.page = control, list(servers), page
        self.log = log or (lambda *_a, **_k: None)
        self.cursor = {j: 0 for j in self.servers}
        self.epoch = {j: "" for j in self.servers}
        self.view: dict[str, dict[int, Any]] = {}
        self.reachable: set[int] = set()
        self.calls = 0

    def _forget(self, j: int) -> None:
        for per in self.view.values():
            per.pop(j, None)
        self.cursor[j] = 0

    def refresh(self) -> set[str]:
        """Ask every server what changed; returns the DOs whose entry changed on some server."""
        changed: set[str] = set()
        self.reachable = set()
        for j in self.servers:
            try:
                while True:
                    self.calls += 1
                    rep = self.control.submissions(j, self.cursor[j], self.page)
                    if rep.epoch != self.epoch[j]:
                        if self.epoch[j]:
                            self.log("server_storage_changed", level="warning", server=j,
                                     note="its storage epoch changed: listing it again from the start")
                        self.epoch[j] = rep.epoch
                        if self.cursor[j]:
                            self._forget(j)
                            continue
                    for e in rep.entries:
                        do = "0x" + bytes(e.do_address).hex()
                        self.view.setdefault(do, {})[j] = e
                        changed.add(do)
                    self.cursor[j] = max(self.cursor[j], int(rep.cursor))
                    if not rep.more:
                        break
            except grpc.RpcError:
                continue  # unreachable this pass: its entries do not count
            self.reachable.add(j)
        return changed

    def states(self, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, dict[int, Any]]:
        """{DO: {server: DoState}} over servers that answered the last refresh."""
        return {
            do: {j: e for j, e in per.items() if j in self.reachable}
            for do, per in self.view.items()
            if do not in exclude
        }


class PaidBatches:
    """Payees already in a batch on-chain, read incrementally from BatchSubmitted events."""

    def __init__(self, from_block: int = 0) -> None:
        self.next_block = from_block
        self.by_index: dict[int, list[str]] = {}
        self.tx: dict[int, str] = {}

    def update(self, market: Any, alerts: list[str] | None = None) -> set[str]:
        head = int(market.w3.eth.block_number)
        if head < self.next_block:
            return self.paid  # nothing new (nodes refuse a range starting past their head)
        for ev in market.batch_events(self.next_block, alerts):
            self.by_index[int(ev.index)] = [p.lower() for p in ev.payees]
            self.tx[int(ev.index)] = ev.tx_hash
        self.next_block = max(self.next_block, head + 1)
        return self.paid

    @property
    def paid(self) -> set[str]:
        return {p for payees in self.by_index.values() for p in payees}
