"""The coordinator's client of the servers: Control on their peer ports, health and Status on
their public ports. Kept apart from the DO client (servers/client.py): the coordinator holds a
client certificate and drives rounds; a DO holds a signing key and sends shares.

One long-lived channel per server and port (a new TLS handshake per call was most of a
discovery pass); `reset()` drops them after a server restarted so gRPC stops backing off.
Every channel pins the certificate of the server it is meant for: its sha256 is the task's
committee entry (servers/pinning.py), read from the server's public port and then trusted alone.
The coordinator has no Submission.Status of a DO: Status answers only the DO that signs it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from omniplus.servers.pinning import pinned_certificate, pinned_channel
from omniplus.servers.wire import RECONNECT_OPTIONS, TlsFiles, grpc_options, peer_channel


@dataclass(frozen=True)
class ServerRef:
    id: int
    peer: str  # HOST:PORT of its peer port (Control, mutual TLS)
    public: str  # HOST:PORT of its public port (Submission.Status, health)


def _pb() -> tuple[Any, Any]:
    from omniplus.proto.gen import omniplus_pb2, omniplus_pb2_grpc

    return omniplus_pb2, omniplus_pb2_grpc


class ControlClient:
    """Control.* and health for a fixed list of servers (ids 1..n)."""

    def __init__(self, servers: Sequence[ServerRef], tls: TlsFiles, pins: Sequence[bytes],
                 max_message_bytes: int = 64 << 20) -> None:
        self.servers = {s.id: s for s in servers}
        if len(pins) != len(self.servers):
            raise ValueError(f"{len(pins)} certificate pins for {len(self.servers)} servers")
        self.pins = {j: bytes(p) for j, p in enumerate(pins, start=1)}
        self.tls, self.max_message_bytes = tls, max_message_bytes
        self._peer: dict[int, grpc.Channel] = {}
        self._public: dict[int, grpc.Channel] = {}

    # channels
    def _pinned(self, j: int) -> bytes:
        """Server j's certificate, read from its public port and checked against the pin
        (PinMismatch / PinUnreachable are grpc.RpcErrors: callers treat them as a failed call)."""
        return pinned_certificate(self.servers[j].public, self.pins[j])

    def _control(self, j: int) -> Any:
        _, pbg = _pb()
        if j not in self._peer:
            self._peer[j] = peer_channel(self.servers[j].peer, self._pinned(j), self.tls, self.max_message_bytes)
        return pbg.ControlStub(self._peer[j])

    def _public_channel(self, j: int) -> grpc.Channel:
        if j not in self._public:
            self._public[j] = pinned_channel(self.servers[j].public, self._pinned(j),
                                             options=grpc_options(self.max_message_bytes) + RECONNECT_OPTIONS)
        return self._public[j]

    def reset(self, j: int | None = None) -> None:
        """Close cached channels (all, or server j's)."""
        for table in (self._peer, self._public):
            for k in [k for k in table if j is None or k == j]:
                table.pop(k).close()

    close = reset

    # Control
    def start_validation(self, j: int, session: str, dos: Sequence[bytes], timeout: float = 10,
                         parties: Sequence[int] = ()) -> Any:
        """Start a validation round on server j; `parties` (empty: all servers) run it."""
        pb, _ = _pb()
        req = pb.StartValidationRequest(session=session, do_addresses=list(dos), parties=list(parties))
        return self._control(j).StartValidation(req, timeout=timeout, wait_for_ready=True)

    def start_batch(
        self, j: int, session: str, batch_index: int, dos: Sequence[bytes], params: dict[str, Any],
        timeout: float = 10, parties: Sequence[int] = (),
    ) -> Any:
        pb, _ = _pb()
        req = pb.StartBatchRequest(
            session=session, batch_index=batch_index, do_addresses=list(dos), params=json.dumps(params).encode(),
            parties=list(parties),
        )
        return self._control(j).StartBatch(req, timeout=timeout, wait_for_ready=True)

    def round_status(self, j: int, session: str, timeout: float = 5) -> Any:
        pb, _ = _pb()
        return self._control(j).RoundStatus(pb.RoundStatusRequest(session=session), timeout=timeout)

    def submissions(self, j: int, since: int, limit: int = 1000, timeout: float = 5) -> Any:
        """Control.Submissions: server j's submissions changed after cursor `since`."""
        pb, _ = _pb()
        return self._control(j).Submissions(pb.SubmissionsRequest(since=since, limit=limit), timeout=timeout)

    def abort(self, j: int, session: str, why: str, timeout: float = 5) -> Any:
        pb, _ = _pb()
        return self._control(j).Abort(pb.AbortRequest(session=session, reason=why), timeout=timeout)

    # public port
    def healthy(self, j: int, timeout: float = 2) -> bool:
        """grpc.health on server j's public port: SERVING or not (unreachable = not)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = health_pb2_grpc.HealthStub(self._public_channel(j)).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            self.reset(j)
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING
