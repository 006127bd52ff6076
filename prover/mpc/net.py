"""How the MPC protocol talks, and nothing about how the bytes travel.

The protocol code sees one `Net` per party: `broadcast` (every party sends one payload to all and
receives everyone's) and `exchange` (a private payload to each peer, e.g. the sub-shares of a
dealt sharing). Tags name the step (session, round, purpose); a tag is used once per party, which
is what makes a replayed or misrouted message detectable. The gRPC servers implement this
interface over mutual TLS; `LocalHub` implements it in-process for tests and benchmarks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from omniplus.core.errors import OmniplusError


class NetError(OmniplusError):
    """A peer did not answer in time, answered twice, or sent something malformed."""


class Net(Protocol):
    party: int  # this party's Shamir point, 1..n
    n: int

    def broadcast(self, tag: str, payload: bytes) -> dict[int, bytes]:
        """Send `payload` to every party; return {party: payload} for all n parties, ours included."""
        ...

    def exchange(self, tag: str, payloads: dict[int, bytes]) -> dict[int, bytes]:
        """Send payloads[j] privately to party j; return {j: what party j sent us}, ours included."""
        ...


class LocalHub:
    """In-process message board for n parties running in threads (tests, benchmarks)."""

    def __init__(self, n: int, timeout: float = 120.0) -> None:
        self.n = n
        self.timeout = timeout
        self._cv = threading.Condition()
        self._board: dict[tuple[str, int, int], bytes] = {}
        self.failed: str | None = None
        self.bytes_sent: dict[int, int] = {j: 0 for j in range(1, n + 1)}
        self.rounds: dict[int, int] = {j: 0 for j in range(1, n + 1)}
        self._keys: dict | None = None

    def keys(self, party: int):  # type: ignore[no-untyped-def]
        """This party's signing keys (prover.mpc.audit.EcdsaKeys), made on first use."""
        with self._cv:
            if self._keys is None:
                from omniplus.prover.mpc.audit import EcdsaKeys

                self._keys = EcdsaKeys.fresh(self.n)
            return self._keys[party]

    def net(self, party: int) -> LocalNet:
        return LocalNet(self, party)

    def abort(self, why: str) -> None:
        """Wake every waiting party with an error (a party died): nobody waits for the timeout."""
        with self._cv:
            self.failed = why
            self._cv.notify_all()

    def _post(self, tag: str, src: int, dst: int, payload: bytes) -> None:
        with self._cv:
            key = (tag, src, dst)
            if key in self._board:
                raise NetError(f"party {src} sent tag {tag!r} to {dst} twice")
            self._board[key] = payload
            if src != dst:
                self.bytes_sent[src] += len(payload)
            self._cv.notify_all()

    def _collect(self, tag: str, dst: int) -> dict[int, bytes]:
        keys = [(tag, src, dst) for src in range(1, self.n + 1)]
        with self._cv:
            done = self._cv.wait_for(
                lambda: self.failed is not None or all(k in self._board for k in keys), timeout=self.timeout
            )
            if self.failed is not None:
                raise NetError(f"tag {tag!r}: the round was aborted: {self.failed}")
            if not done:
                missing = [k[1] for k in keys if k not in self._board]
                raise NetError(f"tag {tag!r}: no message from parties {missing} within {self.timeout:.0f}s")
            return {k[1]: self._board.pop(k) for k in keys}


class LocalNet:
    def __init__(self, hub: LocalHub, party: int) -> None:
        self.hub, self.party, self.n = hub, party, hub.n

    def sign(self, data: bytes) -> bytes:
        return self.hub.keys(self.party).sign(data)

    def verify(self, party: int, data: bytes, sig: bytes) -> bool:
        return self.hub.keys(self.party).verify(party, data, sig)

    def broadcast(self, tag: str, payload: bytes) -> dict[int, bytes]:
        for dst in range(1, self.n + 1):
            self.hub._post(tag, self.party, dst, payload)
        self.hub.rounds[self.party] += 1
        return self.hub._collect(tag, self.party)

    def exchange(self, tag: str, payloads: dict[int, bytes]) -> dict[int, bytes]:
        if sorted(payloads) != list(range(1, self.n + 1)):
            raise NetError(f"exchange {tag!r} needs one payload per party 1..{self.n}")
        for dst, payload in payloads.items():
            self.hub._post(tag, self.party, dst, payload)
        self.hub.rounds[self.party] += 1
        return self.hub._collect(tag, self.party)


def run_parties(n: int, body: Callable[[Net], object], timeout: float = 600.0) -> Sequence[object]:
    """Run `body(net)` for parties 1..n in threads on one LocalHub; re-raise the first failure."""
    hub = LocalHub(n, timeout=timeout)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def target(j: int) -> None:
        try:
            results[j - 1] = body(hub.net(j))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
            hub.abort(f"party {j} failed: {exc}")

    threads = [threading.Thread(target=target, args=(j,), daemon=True) for j in range(1, n + 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    if errors:
        raise next((e for e in errors if not isinstance(e, NetError)), errors[0])
    return results
