"""Server-to-server messages for the MPC protocol, kept apart from the protocol itself.

The protocol (prover/mpc) talks to a `Net` (prover/mpc/net.py: `party`, `n`, `broadcast`,
`exchange`). A `Channel` here is such a Net, bound to one protocol run (session), plus the
lower-level point-to-point calls it is built from::

    send(to, round, tag, data, kind=BYTES, count=0)      # one message to one party
    recv(frm, round, tag, timeout=None) -> bytes          # blocks until that message arrives

Messages are addressed by (session, round, tag, sender); each address is used once, so a
duplicate or replayed message is refused rather than silently overwriting the first one.

Two `Network`s hand out Channels: `GrpcNetwork` (Peer.Exchange over mutual TLS; the sender is
the party named by the certificate it presented, never a field of the message) and
`InProcessHub(n).network(j)` (parties in threads of one process). Both run every message
through the same `check_message` and `Mailbox`, so the protocol sees the same bytes, limits and
errors with or without sockets. prover/mpc/net.py's `LocalHub` is the protocol's own minimal
in-process Net; these Channels are drop-in replacements for it.

Limits: a per-message byte limit (also the gRPC max message size on both ends), a bound on the
bytes buffered for messages nobody has asked for yet, a send timeout (peers that are restarting
are waited for up to it) and a receive timeout.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from omniplus.core.errors import OmniplusError
from omniplus.prover.field import Q, R

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
    max_message_bytes: int = 64 * 1024 * 1024
    max_buffered_bytes: int = 512 * 1024 * 1024
    send_timeout: float = 10.0
    recv_timeout: float = 120.0


@dataclass(frozen=True)
class TlsFiles:
    """PEM bytes of the network CA and of this party's certificate and key."""

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def load(cls, ca: str | Path, cert: str | Path, key: str | Path) -> TlsFiles:
        return cls(Path(ca).read_bytes(), Path(cert).read_bytes(), Path(key).read_bytes())


# ---------------------------------------------------------------- field-element encoding


def encode_field(values: Sequence[int]) -> bytes:
    """32-byte little-endian canonical elements (values are reduced mod r first)."""
    return b"".join((int(v) % R).to_bytes(32, "little") for v in values)


def decode_field(data: bytes, count: int | None = None, what: str = "field elements") -> list[int]:
    """Inverse of encode_field; refuses partial elements, wrong counts and values >= r."""
    if len(data) % 32:
        raise TransportError(f"{what}: {len(data)} bytes is not a multiple of 32", "INVALID_ARGUMENT")
    out = [int.from_bytes(data[i : i + 32], "little") for i in range(0, len(data), 32)]
    if count is not None and len(out) != count:
        raise TransportError(f"{what}: expected {count} elements, got {len(out)}", "INVALID_ARGUMENT")
    for i, v in enumerate(out):
        if v >= R:
            raise TransportError(
                f"{what}: element {i} is not a canonical field element (>= r)", "INVALID_ARGUMENT"
            )
    return out


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

    def put(self, session: str, rnd: int, tag: str, sender: int, msg: Message) -> None:
        key = (session, rnd, tag, sender)
        with self._cv:
            if session in self._closed:
                raise TransportError(f"session {session!r} is closed", "FAILED_PRECONDITION")
            if session in self._aborted:
                raise TransportError(f"session {session!r} was aborted: {self._aborted[session]}", "ABORTED")
            if key in self._box or key in self._used:
                raise TransportError(
                    f"duplicate message from party {sender}: session {session!r} round {rnd} tag {tag!r}",
                    "ALREADY_EXISTS",
                )
            if self._buffered + len(msg.data) > self.limits.max_buffered_bytes:
                raise TransportError("receiver's buffer for pending messages is full", "RESOURCE_EXHAUSTED")
            self._box[key] = msg
            self._buffered += len(msg.data)
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
            self._buffered -= len(msg.data)
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

    def _drop(self, session: str) -> None:
        for key in [k for k in self._box if k[0] == session]:
            self._buffered -= len(self._box.pop(key).data)
        self._used = {k for k in self._used if k[0] != session}

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

    def channel(self, session: str) -> Channel:
        if not _NAME_RE.match(session):
            raise TransportError("session must be 1-128 characters of [A-Za-z0-9._:/@+-]", "INVALID_ARGUMENT")
        return Channel(self, session)

    @abstractmethod
    def _deliver(self, to: int, session: str, rnd: int, tag: str, msg: Message) -> None:
        """Hand one message to party `to` (raises TransportError)."""

    def _deliver_many(self, items: Sequence[tuple[int, str, int, str, Message]]) -> None:
        for it in items:
            self._deliver(*it)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sockets; the in-process network has none."""


class Channel:
    """A Net (prover/mpc/net.py) for one session, plus point-to-point send/recv by (round, tag)."""

    def __init__(self, network: Network, session: str) -> None:
        self.network = network
        self.session = session
        self.party = network.party
        self.n = network.n
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
    def broadcast(self, tag: str, payload: bytes, rnd: int = 0) -> dict[int, bytes]:
        """Send `payload` to every party; return every party's payload (ours included)."""
        self._send_many([(j, payload) for j in range(1, self.n + 1)], rnd, tag, KIND_BYTES, 0)
        self.stats.rounds += 1
        return {j: self.recv(j, rnd, tag) for j in range(1, self.n + 1)}

    def exchange(self, tag: str, payloads: Mapping[int, bytes], rnd: int = 0) -> dict[int, bytes]:
        """Send payloads[j] to party j only; return what each party sent us (ours included)."""
        if sorted(payloads) != list(range(1, self.n + 1)):
            raise TransportError(
                f"exchange {tag!r} needs one payload per party 1..{self.n}", "INVALID_ARGUMENT"
            )
        self._send_many(sorted(payloads.items()), rnd, tag, KIND_BYTES, 0)
        self.stats.rounds += 1
        return {j: self.recv(j, rnd, tag) for j in range(1, self.n + 1)}

    def abort(self, why: str) -> None:
        """Fail every pending and future recv of this session on this party."""
        self.network.mailbox.abort(self.session, why)

    def close(self) -> None:
        self.network.mailbox.close(self.session)

    def _check_party(self, j: int) -> None:
        if not 1 <= j <= self.n:
            raise TransportError(f"no party {j} (parties are 1..{self.n})", "INVALID_ARGUMENT")

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

    def _deliver(self, to: int, session: str, rnd: int, tag: str, msg: Message) -> None:
        self.hub.mailboxes[to].put(session, rnd, tag, self.party, msg)


# ---------------------------------------------------------------- gRPC


def _pb() -> tuple[Any, Any]:
    try:
        from omniplus.proto.gen import omniplus_pb2, omniplus_pb2_grpc
    except ImportError as exc:  # pragma: no cover - build step missing
        raise OmniplusError(f"gRPC stubs are missing ({exc}): run `make proto`") from None
    return omniplus_pb2, omniplus_pb2_grpc


def grpc_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Channel/server options shared by both ends: explicit message limits, keepalive."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def mutual_server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """The peer port: clients must present a certificate signed by the network CA."""
    return grpc.ssl_server_credentials(
        [(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=True
    )


def public_server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """The public port: server-side TLS only (DOs authenticate by signature, not certificate)."""
    return grpc.ssl_server_credentials([(tls.key, tls.cert)])


def peer_channel(address: str, expected_name: str, tls: TlsFiles, max_message_bytes: int) -> grpc.Channel:
    """A client channel to a peer port, presenting our certificate and requiring the peer's
    certificate to carry `expected_name` (so server-2's address cannot be answered by server-3)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )
    opts = grpc_options(max_message_bytes) + [("grpc.ssl_target_name_override", expected_name)]
    return grpc.secure_channel(address, creds, options=opts)


def peer_common_name(context: grpc.ServicerContext) -> str | None:
    """The CN of the verified client certificate, or None (no TLS / no client cert)."""
    auth = context.auth_context()
    names = auth.get("x509_common_name") or []
    return names[0].decode() if names else None


_CODES = {c.name: c for c in grpc.StatusCode}


def status_code(name: str) -> grpc.StatusCode:
    return _CODES.get(name, grpc.StatusCode.UNKNOWN)


class PeerServicer:
    """Peer.Exchange: authenticate the sender by certificate, check the message, buffer it."""

    def __init__(self, mailbox: Mailbox, names: Mapping[str, int], limits: TransportLimits) -> None:
        self.mailbox, self.names, self.limits = mailbox, dict(names), limits

    def Exchange(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        pb, _ = _pb()
        cn = peer_common_name(context)
        sender = self.names.get(cn or "")
        if sender is None:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"certificate {cn!r} is not a server of this network"
            )
        try:
            check_message(
                request.session,
                request.round,
                request.tag,
                request.kind,
                request.count,
                request.data,
                self.limits,
            )
            self.mailbox.put(
                request.session,
                request.round,
                request.tag,
                sender,
                Message(request.kind, request.count, request.data),
            )
        except TransportError as exc:
            context.abort(status_code(exc.code), str(exc))
        return pb.PeerAck()


def add_service(server: grpc.Server, service: str, methods: Mapping[str, tuple[Any, Any, Any]]) -> None:
    """Register unary methods {name: (handler, request type, reply type)} with parsing done by us:
    bytes that are not a valid request get INVALID_ARGUMENT naming the type (gRPC's own
    deserialisation failure would be an opaque INTERNAL)."""

    def wrap(handler: Any, req_type: Any) -> Any:
        def call(raw: bytes, context: grpc.ServicerContext) -> Any:
            try:
                request = req_type.FromString(raw)
            except Exception as exc:  # protobuf's DecodeError and friends
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"malformed {req_type.DESCRIPTOR.name}: {exc}"
                )
            return handler(request, context)

        return call

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            wrap(h, req), request_deserializer=None, response_serializer=rep.SerializeToString
        )
        for name, (h, req, rep) in methods.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


def add_peer_service(server: grpc.Server, servicer: PeerServicer) -> None:
    pb, _ = _pb()
    add_service(server, "omniplus.v1.Peer", {"Exchange": (servicer.Exchange, pb.PeerMessage, pb.PeerAck)})


class GrpcNetwork(Network):
    """Delivery over Peer.Exchange; one long-lived channel per peer; sends to several peers in parallel."""

    def __init__(
        self,
        party: int,
        peers: Mapping[int, tuple[str, str]],  # party -> (peer address, certificate name)
        tls: TlsFiles,
        mailbox: Mailbox,
        limits: TransportLimits | None = None,
    ) -> None:
        self.party = party
        self.n = len(peers)
        if sorted(peers) != list(range(1, self.n + 1)) or party not in peers:
            raise TransportError(f"peers must be 1..n and include this party ({party})", "INVALID_ARGUMENT")
        self.limits = limits or mailbox.limits
        self.mailbox = mailbox
        self._pb, pbg = _pb()
        self._channels = {
            j: peer_channel(addr, name, tls, self.limits.max_message_bytes)
            for j, (addr, name) in peers.items()
            if j != party
        }
        self._stubs = {j: pbg.PeerStub(ch) for j, ch in self._channels.items()}

    def _deliver(self, to: int, session: str, rnd: int, tag: str, msg: Message) -> None:
        self._deliver_many([(to, session, rnd, tag, msg)])

    def _deliver_many(self, items: Sequence[tuple[int, str, int, str, Message]]) -> None:
        futures = []
        for to, session, rnd, tag, msg in items:
            if to == self.party:
                self.mailbox.put(session, rnd, tag, self.party, msg)
                continue
            req = self._pb.PeerMessage(
                session=session, round=rnd, tag=tag, kind=msg.kind, count=msg.count, data=msg.data
            )
            fut = self._stubs[to].Exchange.future(req, timeout=self.limits.send_timeout, wait_for_ready=True)
            futures.append((to, fut))
        errors = []
        for to, fut in futures:
            try:
                fut.result()
            except grpc.RpcError as exc:
                errors.append((to, exc))
        if errors:
            to, exc = errors[0]
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            raise TransportError(f"sending to party {to} failed: {code}: {detail}", code)

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()


def serve_peer_port(
    address: str, tls: TlsFiles, servicer: PeerServicer, max_workers: int = 8
) -> tuple[grpc.Server, int]:
    """A gRPC server with only the Peer service on the mTLS port (tests and tools); returns (server, port)."""
    from concurrent import futures

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=grpc_options(servicer.limits.max_message_bytes),
    )
    add_peer_service(server, servicer)
    port = server.add_secure_port(address, mutual_server_credentials(tls))
    if port == 0:
        raise TransportError(f"cannot bind {address}", "UNAVAILABLE")
    server.start()
    return server, port
