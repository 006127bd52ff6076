"""Server-to-server messages for the MPC protocol: checked messages, inbound mailboxes, Channels.

The protocol (prover/mpc) talks to a `Net` (prover/mpc/net.py: `party`, `n`, `broadcast`,
`exchange`). A `Channel` here is such a Net, bound to one protocol run (session), plus the
lower-level point-to-point calls it is built from::

    send(to, round, tag, data, kind=BYTES, count=0)      # one message to one party
    recv(frm, round, tag, timeout=None) -> bytes          # blocks until that message arrives

Messages are addressed by (session, round, tag, sender); each address is used once, so a
duplicate or replayed message is refused rather than silently overwriting the first one.

A Channel belongs to one round's party set (`parties`, sorted; default 1..n): a round that leaves
a named server out sends only to its parties, and the Mailbox refuses (PERMISSION_DENIED) that
session's messages from any other sender, dropping those that came before the round opened.

Networks hand out Channels: `InProcessHub(n).network(j)` (parties in threads of one process) here,
and `servers.wire.GrpcNetwork` (Peer.Exchange over mutual TLS). Both run every message through
the same `check_message` and `Mailbox`, so the protocol sees the same bytes, limits and errors
with or without sockets. This module knows nothing of gRPC or certificates (servers/wire.py).

Limits: a per-message byte limit, bounds on what is buffered for messages nobody has asked for
yet, a send timeout (peers that are restarting are waited for up to it) and a receive timeout.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omniplus.core.errors import OmniplusError
from omniplus.prover.field import CodecError, Q, R, fr_to_bytes, ints_from_bytes

try:  # the protocol's error type, so protocol code that catches NetError also catches ours
    from omniplus.prover.mpc.net import NetError as _Base
except ImportError:  # pragma: no cover - the protocol package is optional for the transport
    _Base = OmniplusError  # type: ignore[misc,assignment]


class TransportError(_Base):  # type: ignore[misc,valid-type]
    """A message could not be delivered or did not arrive; `code` is a gRPC status name."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


# Payload kinds (proto PayloadKind) and their element sizes in bytes.
KIND_FIELD, KIND_G1, KIND_G2, KIND_BYTES = 1, 2, 3, 4
ELEMENT_SIZE = {KIND_FIELD: 32, KIND_G1: 64, KIND_G2: 128}
KIND_NAMES = {KIND_FIELD: "field", KIND_G1: "G1", KIND_G2: "G2", KIND_BYTES: "bytes"}

_NAME_RE = re.compile(r"^[A-Za-z0-9._:/@+-]{1,128}$")


@dataclass(frozen=True)
class TransportLimits:
    """Bounds on what peers can make a party buffer. Quotas are per sender, so one flooding peer
    exhausts only its own share; every message costs MESSAGE_OVERHEAD bytes on top of its data,
    so empty messages are not free."""

    max_message_bytes: int = 64 * 1024 * 1024
    max_buffered_bytes: int = 512 * 1024 * 1024  # all senders together
    send_timeout: float = 10.0
    recv_timeout: float = 20.0  # RECV_TIMEOUT (below)
    max_pending_per_peer: int = 4096  # messages from one sender not yet taken
    max_messages_per_session: int = 4096  # messages one sender may send in one session, ever
    unopened_session_ttl: float = 60.0  # messages for a session no local round opened are dropped after this
    max_unopened_sessions_per_peer: int = 16


# How long a party waits for a peer's message before it names the peer as withholding. One value
# for the daemon, the devnet and the tests: shorter ones turned load spikes on 2 cores into false
# "withheld" verdicts; longer ones only slow the fault tests down.
RECV_TIMEOUT = 20.0

MESSAGE_OVERHEAD = 256  # accounting cost of a message's key and bookkeeping


# ---------------------------------------------------------------- field-element encoding


def encode_field(values: Sequence[int]) -> bytes:
    """32-byte little-endian canonical elements (values are reduced mod r first)."""
    return fr_to_bytes(values)


def decode_field(data: bytes, count: int | None = None, what: str = "field elements") -> list[int]:
    """Inverse of encode_field; refuses partial elements, wrong counts and values >= r."""
    try:
        return ints_from_bytes(data, R, count, what)
    except CodecError as exc:
        raise TransportError(str(exc), "INVALID_ARGUMENT") from None


def check_message(
    session: str, rnd: int, tag: str, kind: int, count: int, data: bytes, limits: TransportLimits
) -> None:
    """The shape every MPC message must have, checked on both networks before it is buffered."""
    if not _NAME_RE.match(session):
        raise TransportError("session must be 1-128 characters of [A-Za-z0-9._:/@+-]", "INVALID_ARGUMENT")
    if not _NAME_RE.match(tag):
        raise TransportError("tag must be 1-128 characters of [A-Za-z0-9._:/@+-]", "INVALID_ARGUMENT")
    if not 0 <= rnd < 2**32:
        raise TransportError("round out of range", "INVALID_ARGUMENT")
    if len(data) > limits.max_message_bytes:
        raise TransportError(
            f"payload of {len(data)} bytes exceeds the {limits.max_message_bytes}-byte limit",
            "RESOURCE_EXHAUSTED",
        )
    if kind not in KIND_NAMES:
        raise TransportError(f"unknown payload kind {kind}", "INVALID_ARGUMENT")
    if kind == KIND_BYTES:
        return
    size = ELEMENT_SIZE[kind]
    if len(data) != count * size:
        raise TransportError(
            f"{KIND_NAMES[kind]} payload: {len(data)} bytes for {count} elements of {size} bytes",
            "INVALID_ARGUMENT",
        )
    modulus = R if kind == KIND_FIELD else Q
    for i in range(0, len(data), 32):
        if int.from_bytes(data[i : i + 32], "little") >= modulus:
            raise TransportError(
                f"{KIND_NAMES[kind]} payload: element {i // 32} is not canonical", "INVALID_ARGUMENT"
            )


# ---------------------------------------------------------------- inbound buffer


@dataclass
class Message:
    kind: int
    count: int
    data: bytes


class Mailbox:
    """Inbound messages of one party, keyed (session, round, tag, sender); each key is used once."""

    def __init__(self, limits: TransportLimits) -> None:
        self.limits = limits
        self._cv = threading.Condition()
        self._box: dict[tuple[str, int, str, int], Message] = {}
        self._used: set[tuple[str, int, str, int]] = set()  # keys already taken, to refuse replays
        self._buffered = 0
        self._aborted: dict[str, str] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._opened: set[str] = set()
        self._members: dict[str, frozenset[int]] = {}  # session -> the parties of its round
        self._first_seen: dict[str, float] = {}  # unopened session -> when its first message came
        self._peer_msgs: dict[int, int] = {}  # sender -> pending messages
        self._peer_bytes: dict[int, int] = {}  # sender -> pending bytes (with overhead)
        self._session_msgs: dict[tuple[str, int], int] = {}  # (session, sender) -> messages ever
        self.refused: dict[int, int] = {}  # sender -> messages refused for a quota (for logs/tests)

    def open(self, session: str, parties: Sequence[int] | None = None) -> None:
        """A local round runs this session: its messages are no longer subject to the TTL. With
        `parties` (the round's party set) messages from any other sender are refused, and those
        that came before the round opened are dropped."""
        with self._cv:
            self._opened.add(session)
            self._first_seen.pop(session, None)
            if parties is not None:
                members = frozenset(parties)
                self._members[session] = members
                for key in [k for k in self._box if k[0] == session and k[3] not in members]:
                    self._release(key, self._box.pop(key))
                    self.refused[key[3]] = self.refused.get(key[3], 0) + 1

    def _expire(self, now: float) -> None:
        ttl = self.limits.unopened_session_ttl
        for session in [s for s, t in self._first_seen.items() if now - t > ttl]:
            self._drop(session)
            self._first_seen.pop(session, None)
            self._closed[session] = None

    def _refuse(self, sender: int, why: str) -> None:
        self.refused[sender] = self.refused.get(sender, 0) + 1
        raise TransportError(why, "RESOURCE_EXHAUSTED")

    def put(self, session: str, rnd: int, tag: str, sender: int, msg: Message) -> None:
        key = (session, rnd, tag, sender)
        cost = len(msg.data) + MESSAGE_OVERHEAD
        lim = self.limits
        with self._cv:
            now = time.monotonic()
            self._expire(now)
            if session in self._closed:
                raise TransportError(f"session {session!r} is closed", "FAILED_PRECONDITION")
            if session in self._aborted:
                raise TransportError(f"session {session!r} was aborted: {self._aborted[session]}", "ABORTED")
            members = self._members.get(session)
            if members is not None and sender not in members:
                self.refused[sender] = self.refused.get(sender, 0) + 1
                raise TransportError(
                    f"party {sender} is not in the party set {sorted(members)} of session {session!r}",
                    "PERMISSION_DENIED",
                )
            if key in self._box or key in self._used:
                raise TransportError(
                    f"duplicate message from party {sender}: session {session!r} round {rnd} tag {tag!r}",
                    "ALREADY_EXISTS",
                )
            if self._session_msgs.get((session, sender), 0) >= lim.max_messages_per_session:
                self._refuse(sender, f"party {sender} exceeded {lim.max_messages_per_session} messages in {session!r}")
            if self._peer_msgs.get(sender, 0) >= lim.max_pending_per_peer:
                self._refuse(sender, f"party {sender} has {lim.max_pending_per_peer} messages pending here")
            share = max(lim.max_buffered_bytes // 4, lim.max_message_bytes + MESSAGE_OVERHEAD)
            if self._peer_bytes.get(sender, 0) + cost > share:
                self._refuse(sender, f"party {sender}'s share of the receiver's buffer is full")
            if self._buffered + cost > lim.max_buffered_bytes:
                self._refuse(sender, "receiver's buffer for pending messages is full")
            if session not in self._opened and session not in self._first_seen:
                mine = sum(1 for s2 in self._first_seen if (s2, sender) in self._session_msgs)
                if mine >= lim.max_unopened_sessions_per_peer:
                    self._refuse(sender, f"party {sender} has {mine} sessions pending that no round opened")
                self._first_seen[session] = now
            self._box[key] = msg
            self._buffered += cost
            self._peer_msgs[sender] = self._peer_msgs.get(sender, 0) + 1
            self._peer_bytes[sender] = self._peer_bytes.get(sender, 0) + cost
            self._session_msgs[(session, sender)] = self._session_msgs.get((session, sender), 0) + 1
            self._cv.notify_all()

    def take(self, session: str, rnd: int, tag: str, sender: int, timeout: float) -> Message:
        key = (session, rnd, tag, sender)
        deadline = time.monotonic() + timeout
        with self._cv:
            while key not in self._box:
                if session in self._aborted:
                    raise TransportError(
                        f"session {session!r} was aborted: {self._aborted[session]}", "ABORTED"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(
                        f"no message from party {sender} within {timeout:g}s "
                        f"(session {session!r} round {rnd} tag {tag!r})",
                        "DEADLINE_EXCEEDED",
                    )
                self._cv.wait(left)
            msg = self._box.pop(key)
            self._used.add(key)
            self._release(key, msg)
            return msg

    def abort(self, session: str, why: str) -> None:
        """Wake everyone waiting on this session with an error; later messages are refused."""
        with self._cv:
            self._aborted[session] = why
            self._drop(session)
            self._cv.notify_all()

    def close(self, session: str) -> None:
        """Forget a finished session; late messages for it are refused."""
        with self._cv:
            self._drop(session)
            self._aborted.pop(session, None)
            self._closed[session] = None
            while len(self._closed) > 10_000:
                self._closed.popitem(last=False)
            self._cv.notify_all()

    def _release(self, key: tuple[str, int, str, int], msg: Message) -> None:
        cost = len(msg.data) + MESSAGE_OVERHEAD
        self._buffered -= cost
        self._peer_msgs[key[3]] -= 1
        self._peer_bytes[key[3]] -= cost

    def _drop(self, session: str) -> None:
        for key in [k for k in self._box if k[0] == session]:
            self._release(key, self._box.pop(key))
        self._used = {k for k in self._used if k[0] != session}
        for k in [k for k in self._session_msgs if k[0] == session]:
            del self._session_msgs[k]
        self._opened.discard(session)
        self._members.pop(session, None)

    @property
    def buffered_bytes(self) -> int:
        with self._cv:
            return self._buffered


# ---------------------------------------------------------------- channels and networks


@dataclass
class ChannelStats:
    bytes_sent: int = 0
    messages_sent: int = 0
    rounds: int = 0  # broadcast/exchange calls (communication rounds as the protocol sees them)
    per_peer: dict[int, int] = field(default_factory=dict)


class Network(ABC):
    """One party's view of the network: hands out a Channel per protocol run."""

    party: int
    n: int
    mailbox: Mailbox
    limits: TransportLimits
    keys: Any = None  # prover.mpc.audit.EcdsaKeys: signs this party's protocol statements

    def channel(self, session: str, parties: Sequence[int] | None = None) -> Channel:
        """A Channel for one session among `parties` (sorted Shamir points; default 1..n): sends go
        to those parties only, and the mailbox refuses this session's messages from anyone else."""
        if not _NAME_RE.match(session):
            raise TransportError("session must be 1-128 characters of [A-Za-z0-9._:/@+-]", "INVALID_ARGUMENT")
        members = round_parties(parties, self.n, self.party)
        self.mailbox.open(session, members)
        return Channel(self, session, members)

    @abstractmethod
    def _deliver(self, to: int, session: str, rnd: int, tag: str, msg: Message) -> None:
        """Hand one message to party `to` (raises TransportError)."""

    def _deliver_many(self, items: Sequence[tuple[int, str, int, str, Message]]) -> None:
        for it in items:
            self._deliver(*it)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets; the in-process network has none."""


def round_parties(parties: Sequence[int] | None, n: int, party: int) -> tuple[int, ...]:
    """A round's party set, sorted: distinct ids of 1..n that include `party` (default all 1..n)."""
    if parties is None or len(parties) == 0:
        return tuple(range(1, n + 1))
    out = tuple(sorted(int(j) for j in parties))
    if len(set(out)) != len(out):
        raise TransportError(f"party set {list(parties)} lists a server twice", "INVALID_ARGUMENT")
    if any(not 1 <= j <= n for j in out):
        raise TransportError(f"party set {list(parties)} has ids outside 1..{n}", "INVALID_ARGUMENT")
    if party not in out:
        raise TransportError(f"party set {list(out)} does not include this server ({party})", "INVALID_ARGUMENT")
    return out


class Channel:
    """A Net (prover/mpc/net.py) for one session, plus point-to-point send/recv by (round, tag).

    `parties` is the round's party set (sorted; all 1..n unless the round leaves servers out):
    broadcasts and exchanges reach exactly those, and only they are waited for."""

    def __init__(self, network: Network, session: str, parties: Sequence[int] | None = None) -> None:
        self.network = network
        self.session = session
        self.party = network.party
        self.n = network.n
        self.parties = round_parties(parties, network.n, network.party)
        self.stats = ChannelStats()

    # point to point
    def send(self, to: int, rnd: int, tag: str, data: bytes, kind: int = KIND_BYTES, count: int = 0) -> None:
        self._send_many([(to, data)], rnd, tag, kind, count)

    def recv(self, frm: int, rnd: int, tag: str, timeout: float | None = None) -> bytes:
        return self.recv_message(frm, rnd, tag, timeout).data

    def recv_message(self, frm: int, rnd: int, tag: str, timeout: float | None = None) -> Message:
        self._check_party(frm)
        t = self.network.limits.recv_timeout if timeout is None else timeout
        return self.network.mailbox.take(self.session, rnd, tag, frm, t)

    # typed helpers: lengths and canonical form are checked by the transport on both ends
    def send_field(self, to: int, rnd: int, tag: str, values: Sequence[int]) -> None:
        self.send(to, rnd, tag, encode_field(values), KIND_FIELD, len(values))

    def recv_field(self, frm: int, rnd: int, tag: str, count: int | None = None) -> list[int]:
        msg = self.recv_message(frm, rnd, tag)
        if msg.kind != KIND_FIELD:
            raise TransportError(f"expected field elements from party {frm}, got {KIND_NAMES[msg.kind]}")
        return decode_field(msg.data, count, f"party {frm} tag {tag!r}")

    # prover.mpc.net.Net
    def sign(self, data: bytes) -> bytes:
        """This party's signature on a protocol statement (prover/mpc/audit.py)."""
        if self.network.keys is None:
            return b""
        return self.network.keys.sign(data)

    def verify(self, party: int, data: bytes, sig: bytes) -> bool:
        if self.network.keys is None:
            return True
        return self.network.keys.verify(party, data, sig)

    def _collect(self, rnd: int, tag: str) -> dict[int, bytes]:
        """Everyone's message for (rnd, tag); a party that stays silent past the timeout is named."""
        out = {}
        for j in self.parties:
            try:
                out[j] = self.recv(j, rnd, tag)
            except TransportError as exc:
                if exc.code != "DEADLINE_EXCEEDED" or j == self.party:
                    raise
                from omniplus.prover.mpc.audit import Deviation

                raise Deviation(j, f"withheld its message: {exc}") from None
        return out

    def broadcast(self, tag: str, payload: bytes, rnd: int = 0) -> dict[int, bytes]:
        """Send `payload` to every party of the round; return every party's payload (ours included)."""
        self._send_many([(j, payload) for j in self.parties], rnd, tag, KIND_BYTES, 0)
        self.stats.rounds += 1
        return self._collect(rnd, tag)

    def exchange(self, tag: str, payloads: Mapping[int, bytes], rnd: int = 0) -> dict[int, bytes]:
        """Send payloads[j] to party j only; return what each party sent us (ours included)."""
        if tuple(sorted(payloads)) != self.parties:
            raise TransportError(
                f"exchange {tag!r} needs one payload per party of {list(self.parties)}", "INVALID_ARGUMENT"
            )
        self._send_many(sorted(payloads.items()), rnd, tag, KIND_BYTES, 0)
        self.stats.rounds += 1
        return self._collect(rnd, tag)

    def abort(self, why: str) -> None:
        """Fail every pending and future recv of this session on this party."""
        self.network.mailbox.abort(self.session, why)

    def close(self) -> None:
        self.network.mailbox.close(self.session)

    def _check_party(self, j: int) -> None:
        if j not in self.parties:
            if not 1 <= j <= self.n:
                raise TransportError(f"no party {j} (parties are 1..{self.n})", "INVALID_ARGUMENT")
            raise TransportError(f"party {j} is not in this round's party set {list(self.parties)}",
                                 "INVALID_ARGUMENT")

    def _send_many(
        self, items: Sequence[tuple[int, bytes]], rnd: int, tag: str, kind: int, count: int
    ) -> None:
        lim = self.network.limits
        out = []
        for to, data in items:
            self._check_party(to)
            check_message(self.session, rnd, tag, kind, count, data, lim)
            out.append((to, self.session, rnd, tag, Message(kind, count, bytes(data))))
        self.network._deliver_many(out)
        for to, data in items:
            if to != self.party:
                self.stats.bytes_sent += len(data)
                self.stats.messages_sent += 1
                self.stats.per_peer[to] = self.stats.per_peer.get(to, 0) + len(data)


# ---------------------------------------------------------------- in-process


class InProcessHub:
    """n parties in one process: delivery is a call into the receiver's Mailbox (no sockets),
    through the same checks and limits as the gRPC network."""

    def __init__(self, n: int, limits: TransportLimits | None = None) -> None:
        self.n = n
        self.limits = limits or TransportLimits()
        self.mailboxes = {j: Mailbox(self.limits) for j in range(1, n + 1)}
        from omniplus.prover.mpc.audit import EcdsaKeys

        self.keys = EcdsaKeys.fresh(n)

    def network(self, party: int) -> InProcessNetwork:
        return InProcessNetwork(self, party)

    def abort(self, session: str, why: str) -> None:
        for mb in self.mailboxes.values():
            mb.abort(session, why)


class InProcessNetwork(Network):
    def __init__(self, hub: InProcessHub, party: int) -> None:
        self.hub, self.party, self.n = hub, party, hub.n
        self.mailbox = hub.mailboxes[party]
        self.limits = hub.limits
        self.keys = hub.keys[party]

    def _deliver(self, to: int, session: str, rnd: int, tag: str, msg: Message) -> None:
        self.hub.mailboxes[to].put(session, rnd, tag, self.party, msg)
