"""The coordinator's client of the servers: Control on their peer ports, health and Status on
their public ports. Kept apart from the DO client (servers/client.py): the coordinator holds a
client certificate and drives rounds; a DO holds a signing key and sends shares.

One long-lived channel per server and port (a new TLS handshake per call was most of a
discovery pass); `reset()` drops them after a server restarted so gRPC stops backing off.
Every call pins the certificate name of the server it is meant for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from omniplus.servers.config import server_name
from omniplus.servers.wire import TlsFiles, peer_channel


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

    def __init__(self, servers: Sequence[ServerRef], tls: TlsFiles, max_message_bytes: int = 64 << 20) -> None:
        self.servers = {s.id: s for s in servers}
        self.tls, self.max_message_bytes = tls, max_message_bytes
        self._peer: dict[int, grpc.Channel] = {}
        self._public: dict[int, grpc.Channel] = {}

    # channels
    def _control(self, j: int) -> Any:
        _, pbg = _pb()
        if j not in self._peer:
            self._peer[j] = peer_channel(self.servers[j].peer, server_name(j), self.tls, self.max_message_bytes)
        return pbg.ControlStub(self._peer[j])

    def _public_channel(self, j: int) -> grpc.Channel:
        if j not in self._public:
            creds = grpc.ssl_channel_credentials(root_certificates=self.tls.ca)
            opts = [("grpc.ssl_target_name_override", server_name(j))]
            self._public[j] = grpc.secure_channel(self.servers[j].public, creds, options=opts)
        return self._public[j]

    def reset(self, j: int | None = None) -> None:
        """Close cached channels (all, or server j's)."""
        for table in (self._peer, self._public):
            for k in [k for k in table if j is None or k == j]:
                table.pop(k).close()

    close = reset

    # Control
    def start_validation(self, j: int, session: str, dos: Sequence[bytes], timeout: float = 10) -> Any:
        pb, _ = _pb()
        req = pb.StartValidationRequest(session=session, do_addresses=list(dos))
        return self._control(j).StartValidation(req, timeout=timeout, wait_for_ready=True)

    def start_batch(
        self, j: int, session: str, batch_index: int, dos: Sequence[bytes], params: dict[str, Any],
        timeout: float = 10,
    ) -> Any:
        pb, _ = _pb()
        req = pb.StartBatchRequest(
            session=session, batch_index=batch_index, do_addresses=list(dos), params=json.dumps(params).encode()
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

    def status(self, j: int, chain_id: int, market: bytes, do_address: bytes, timeout: float = 5) -> Any:
        """Submission.Status of one DO on server j (raises grpc.RpcError)."""
        pb, pbg = _pb()
        req = pb.StatusRequest(chain_id=chain_id, market=market, do_address=do_address)
        return pbg.SubmissionStub(self._public_channel(j)).Status(req, timeout=timeout)
