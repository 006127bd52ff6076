"""How the MPC protocol talks, and nothing about how the bytes travel.

The protocol code sees one `Net` per party: `broadcast` (every party sends one payload to all and
receives everyone's) and `exchange` (a private payload to each peer, e.g. the sub-shares of a
dealt sharing). Tags name the step (session, round, purpose); a tag is used once per party, which
is what makes a replayed or misrouted message detectable. `parties` is the round's party set:
all of 1..n, or a subset of at least 2t+1 once a server is left out (the DOs' shares stay at
1..n). The gRPC servers implement this interface over mutual TLS; `LocalHub` implements it
in-process for tests and benchmarks.
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
    n: int  # the committee size (DO shares are at points 1..n)
    parties: tuple[int, ...]  # the sorted Shamir points of this round (default 1..n; see all_parties)

    def broadcast(self, tag: str, payload: bytes) -> dict[int, bytes]:
        """Send `payload` to every party of the round; return {party: payload} for all, ours included."""
        ...

    def exchange(self, tag: str, payloads: dict[int, bytes]) -> dict[int, bytes]:
        """Send payloads[j] privately to party j; return {j: what party j sent us}, ours included."""
        ...


def parties_of(net: object) -> tuple[int, ...]:
    """The Shamir points taking part in this round: `net.parties`, or 1..n for a Net without it.

    A round may run on a subset of the committee (a server named as deviating is left out,
    servers/coordinator.py); the DOs' shares stay at points 1..n and every opening interpolates
    over whatever points are present."""
    parties = getattr(net, "parties", None)
    if parties is None:
        return tuple(range(1, int(net.n) + 1))  # type: ignore[attr-defined]
    return tuple(parties)


def check_parties(parties: Sequence[int], n: int, party: int | None = None) -> tuple[int, ...]:
    """A round's party set, sorted; NetError unless it is distinct points of 1..n (with `party`)."""
    out = tuple(sorted(int(j) for j in parties))
    if len(set(out)) != len(out):
        raise NetError(f"party set {list(parties)} lists a party twice")
    if any(not 1 <= j <= n for j in out):
        raise NetError(f"party set {list(parties)} has ids outside 1..{n}")
    if party is not None and party not in out:
        raise NetError(f"party set {list(out)} does not include party {party}")
    return out


def need_parties(net: object, t: int, what: str) -> tuple[int, ...]:
    """The round's parties, or NetError if fewer than 2t+1 (degree-2t openings need 2t+1 points)."""
    parties = parties_of(net)
    if len(parties) < 2 * t + 1:
        raise NetError(f"{what} need 2t+1 parties (have {len(parties)}: {list(parties)}, t={t})")
    return parties


class LocalHub:
    """In-process message board for n parties running in threads (tests, benchmarks)."""

    def __init__(self, n: int, timeout: float = 120.0, parties: Sequence[int] | None = None) -> None:
        self.n = n
        self.parties = check_parties(range(1, n + 1) if parties is None else parties, n)
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
        keys = [(tag, src, dst) for src in self.parties]
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
        if party not in hub.parties:
            raise NetError(f"party {party} is not in this round's party set {list(hub.parties)}")
        self.hub, self.party, self.n, self.parties = hub, party, hub.n, hub.parties

    def sign(self, data: bytes) -> bytes:
        return self.hub.keys(self.party).sign(data)

    def verify(self, party: int, data: bytes, sig: bytes) -> bool:
        return self.hub.keys(self.party).verify(party, data, sig)

    def broadcast(self, tag: str, payload: bytes) -> dict[int, bytes]:
        for dst in self.parties:
            self.hub._post(tag, self.party, dst, payload)
        self.hub.rounds[self.party] += 1
        return self.hub._collect(tag, self.party)

    def exchange(self, tag: str, payloads: dict[int, bytes]) -> dict[int, bytes]:
        if tuple(sorted(payloads)) != self.parties:
            raise NetError(f"exchange {tag!r} needs one payload per party of {list(self.parties)}")
        for dst, payload in payloads.items():
            self.hub._post(tag, self.party, dst, payload)
        self.hub.rounds[self.party] += 1
        return self.hub._collect(tag, self.party)


def run_parties(n: int, body: Callable[[Net], object], timeout: float = 600.0,
                parties: Sequence[int] | None = None) -> Sequence[object]:
    """Run `body(net)` for parties 1..n (or only `parties`, a subset of the committee) in threads on
    one LocalHub; results in party order (index j-1 for party j; None for parties left out);
    re-raise the first failure."""
    hub = LocalHub(n, timeout=timeout, parties=parties)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def target(j: int) -> None:
        try:
            results[j - 1] = body(hub.net(j))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
            hub.abort(f"party {j} failed: {exc}")

    threads = [threading.Thread(target=target, args=(j,), daemon=True) for j in hub.parties]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    if errors:
        raise next((e for e in errors if not isinstance(e, NetError)), errors[0])
    return results
