"""The wire under the Channels: TLS credentials, gRPC options, the Peer service, GrpcNetwork.

`GrpcNetwork` delivers servers.channel Messages over Peer.Exchange with mutual TLS; the sender of
a message is the party whose pinned certificate it presented (identified by the certificate's
sha256, servers/pinning.py), never a field of the message nor a certificate name.
`add_service` registers unary handlers that parse requests themselves, so malformed bytes get a
clear INVALID_ARGUMENT instead of gRPC's opaque INTERNAL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from omniplus.core.errors import OmniplusError
from omniplus.servers.channel import Mailbox, Message, Network, TransportError, TransportLimits, check_message


@dataclass(frozen=True)
class TlsFiles:
    """This party's certificate and key (PEM) and, for a mutual-TLS port, `roots`: the pinned
    certificates of the parties it accepts calls from (its peers and coordinators), no CA."""

    cert: bytes
    key: bytes
    roots: bytes = b""

    @classmethod
    def load(cls, cert: str | Path, key: str | Path, roots: bytes = b"") -> TlsFiles:
        return cls(Path(cert).read_bytes(), Path(key).read_bytes(), roots)



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


# gRPC's reconnect back-off grows to 120 s by default: after a peer restarted, a channel could sit
# in back-off longer than send_timeout and every send to the restarted peer failed although it was
# up again. Capped at 1 s, a reconnect is tried at least once per second.
RECONNECT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def mutual_server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """The peer port: clients must present one of the pinned certificates in `tls.roots`."""
    if not tls.roots:
        raise TransportError("a mutual-TLS port needs the pinned certificates it accepts (roots)", "INVALID_ARGUMENT")
    return grpc.ssl_server_credentials(
        [(tls.key, tls.cert)], root_certificates=tls.roots, require_client_auth=True
    )


def public_server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """The public port: server-side TLS only (DOs authenticate by signature, not certificate)."""
    return grpc.ssl_server_credentials([(tls.key, tls.cert)])


def peer_channel(address: str, pinned: bytes, tls: TlsFiles, max_message_bytes: int) -> grpc.Channel:
    """A client channel to a peer port, presenting our certificate and trusting only the peer's
    pinned certificate `pinned` (PEM): server-2's address cannot be answered by server-3, nor by
    anyone with server-2's name but another key."""
    from omniplus.servers.pinning import pinned_channel

    return pinned_channel(address, pinned, client=(tls.key, tls.cert),
                          options=grpc_options(max_message_bytes) + RECONNECT_OPTIONS)


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

    def __init__(
        self, mailbox: Mailbox, peers: Mapping[bytes, int], limits: TransportLimits, on_peer_cert: Any = None
    ) -> None:
        self.mailbox, self.peers, self.limits = mailbox, dict(peers), limits  # certificate sha256 -> party
        self.on_peer_cert = on_peer_cert  # (party, PEM) of every verified peer certificate

    def Exchange(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        pb, _ = _pb()
        from omniplus.servers.pinning import caller_fingerprint

        fp = caller_fingerprint(context)
        sender = self.peers.get(fp) if fp is not None else None
        if sender is None:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"certificate sha256 0x{(fp or b'').hex()} ({peer_common_name(context)!r}) "
                "is not a server of this network",
            )
        if self.on_peer_cert is not None:
            pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
            if pem:
                self.on_peer_cert(sender, pem)
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
        peers: Mapping[int, tuple[str, bytes]],  # party -> (peer address, its pinned certificate PEM)
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
            j: peer_channel(addr, pem, tls, self.limits.max_message_bytes)
            for j, (addr, pem) in peers.items()
            if j != party
        }
        self._stubs = {j: pbg.PeerStub(ch) for j, ch in self._channels.items()}
        self.keys = tls_keys(tls, party)

    def learn_peer(self, party: int, pem: bytes) -> None:
        """Record the public key of a peer's verified TLS certificate (it signs that peer's
        protocol statements); the first certificate seen for a party is kept."""
        if party in self.keys.public_keys:
            return
        from cryptography import x509

        self.keys.public_keys[party] = x509.load_pem_x509_certificate(pem).public_key()

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


def tls_keys(tls: TlsFiles, party: int) -> Any:
    """This server's statement-signing keys: its TLS key (the identity its peers pinned)."""
    from cryptography.hazmat.primitives import serialization

    from omniplus.prover.mpc.audit import EcdsaKeys

    key = serialization.load_pem_private_key(tls.key, password=None)
    return EcdsaKeys(key, {party: key.public_key()})
