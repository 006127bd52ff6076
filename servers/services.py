"""The daemon's gRPC services: Submission (DOs, public port) and Control (coordinator, peer port).

Handlers only translate between protobuf and the daemon: admission decides what is stored
(servers/admission.py), the daemon runs rounds (servers/daemon.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc

from omniplus.servers import batch_policy
from omniplus.servers.admission import StatusNonces, admit, check_status_request
from omniplus.servers.rounds import BatchRequest, RoundEngine
from omniplus.servers.storage import AlreadyStored, Rejected, dumps
from omniplus.servers.wire import peer_common_name, status_code
from omniplus.servers.workers import Gate

if TYPE_CHECKING:
    from omniplus.servers.daemon import Daemon


def _pb() -> tuple[Any, Any]:
    from omniplus.proto.gen import omniplus_pb2, omniplus_pb2_grpc

    return omniplus_pb2, omniplus_pb2_grpc


class SubmissionService:
    def __init__(self, daemon: Daemon, gate: Gate | None = None) -> None:
        self.d = daemon
        self.gate = gate or Gate(8, 8)
        self.status_nonces = StatusNonces(storage=daemon.storage)

    def Submit(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        try:
            with self.gate:
                return self._submit(request, context)
        except Rejected as exc:  # the gate refused: busy
            context.abort(status_code(exc.code), str(exc))

    def _submit(self, request: Any, context: grpc.ServicerContext) -> Any:
        pb, _ = _pb()
        d = self.d
        who = "0x" + request.do_address.hex()
        try:
            sub = admit(request, d.cfg, d.engine, d.registry, d.storage)
        except AlreadyStored as exc:
            d.log("submit_resent", do=who, reason=str(exc))
            stored = d.storage.submission(bytes(request.do_address))
            return pb.SubmitReply(payload_hash=stored.payload_hash if stored else b"", state="already stored")
        except Rejected as exc:
            d.log("submit_rejected", level="warning", do=who, code=exc.code, reason=str(exc))
            context.abort(status_code(exc.code), str(exc))
        d.log("submit_accepted", do=who, wires=len(sub.wires), payload_hash=sub.payload_hash.hex(), seq=sub.seq)
        return pb.SubmitReply(payload_hash=sub.payload_hash, state="accepted")

    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            with self.gate:
                return self._status(request, context)
        except Rejected as exc:
            context.abort(status_code(exc.code), str(exc))

    def _status(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Answer only the DO that signed the request, only about itself (never another DO's verdict)."""
        pb, _ = _pb()
        do = check_status_request(request, self.d.cfg, self.status_nonces)
        sub = self.d.storage.submission(do)
        if sub is None:
            return pb.StatusReply(state="unknown", batch_index=-1)
        return pb.StatusReply(
            state=sub.state, reason=sub.reason, batch_index=sub.batch_index, batch_tx=sub.batch_tx,
            model_version=sub.model_version, score=_score_text(self.d.storage.score(sub.do_address)),
        )


class ControlService:
    """Coordinator -> server: start/abort rounds, read their state. Caller must be a coordinator."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def _caller(self, context: grpc.ServicerContext) -> str:
        from omniplus.servers.pinning import caller_fingerprint

        fp = caller_fingerprint(context)
        if fp is None or fp not in self.d.coordinator_fps:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"certificate sha256 0x{(fp or b'').hex()} ({peer_common_name(context)!r}) may not control "
                "this server (not in coordinator_certs)",
            )
        return "0x" + (fp or b"").hex()

    def _need_engine(self, context: grpc.ServicerContext) -> RoundEngine:
        if self.d.engine is None:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "this server has no round engine configured ([prover] engine)"
            )
        assert self.d.engine is not None
        return self.d.engine

    def _parties(self, request: Any) -> tuple[int, ...]:
        """The round's party set from the request (empty: every server), or Rejected with one line:
        it must hold this server, known ids only, no duplicates, and 2t+1 members (degree-2t
        openings need 2t+1 points)."""
        cfg = self.d.cfg
        asked = [int(j) for j in request.parties]
        if not asked:
            return tuple(range(1, cfg.n + 1))
        if len(set(asked)) != len(asked):
            raise Rejected("INVALID_ARGUMENT", f"parties {asked}: a server is listed twice")
        unknown = sorted(j for j in asked if not 1 <= j <= cfg.n)
        if unknown:
            raise Rejected("INVALID_ARGUMENT",
                           f"parties {asked}: unknown server id(s) {unknown} (servers are 1..{cfg.n})")
        if cfg.id not in asked:
            raise Rejected("INVALID_ARGUMENT", f"parties {sorted(asked)} do not include this server ({cfg.id})")
        if len(asked) < 2 * cfg.threshold + 1:
            raise Rejected("FAILED_PRECONDITION", f"parties {sorted(asked)}: {len(asked)} servers, a round needs "
                           f"2t+1 = {2 * cfg.threshold + 1}")
        return tuple(sorted(asked))

    def StartValidation(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        caller = self._caller(context)
        self._need_engine(context)
        dos = [bytes(a) for a in request.do_addresses]
        try:
            parties = self._parties(request)
            if self.d.storage.round(request.session) is not None:
                raise Rejected("ALREADY_EXISTS", f"session {request.session!r} already exists; start a new session")
            subs = (
                self.d.storage.submissions(dos=dos) if dos else self.d.storage.submissions(state="accepted")
            )
            if not subs:
                raise Rejected("FAILED_PRECONDITION", "nothing to validate: no stored submission is waiting")
            missing = set(dos) - {s.do_address for s in subs}
            if missing:
                raise Rejected(
                    "FAILED_PRECONDITION",
                    f"no stored submission for {sorted('0x' + m.hex() for m in missing)}",
                )
            req = dumps({"dos": [s.do_address.hex() for s in subs], "by": caller, "parties": list(parties)})
            self.d.start_round(request.session, "validate", req, subs, None, parties=parties)
        except Rejected as exc:
            context.abort(status_code(exc.code), str(exc))
        return pb.ControlAck(session=request.session, state="running")

    def StartBatch(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        caller = self._caller(context)
        self._need_engine(context)
        dos = [bytes(a) for a in request.do_addresses]
        try:
            parties = self._parties(request)
            if not dos:
                raise Rejected("INVALID_ARGUMENT", "a batch needs at least one DO")
            try:
                params = json.loads(request.params or b"{}")
            except ValueError:
                raise Rejected("INVALID_ARGUMENT", "params must be JSON") from None
            if not isinstance(params, dict):
                raise Rejected("INVALID_ARGUMENT", "params must be a JSON object")
            # Only an agreed batch is ever opened (N_min, no DO in two aggregates, identical retries,
            # model version = batch index); the agreement is on disk before the round starts.
            subs = batch_policy.agree_batch(self.d.storage, request.batch_index, dos,
                                            min_batch=self.d.cfg.task.min_batch,
                                            max_batch=getattr(self.d.engine, "batch_size", None))
            batch = BatchRequest(request.batch_index, tuple(dos), params)
            req = dumps(
                {
                    "batch_index": request.batch_index,
                    "dos": [a.hex() for a in dos],
                    "params": params,
                    "by": caller,
                    "parties": list(parties),
                }
            )
            self.d.start_round(request.session, "batch", req, subs, batch, parties=parties)
        except Rejected as exc:
            context.abort(status_code(exc.code), str(exc))
        return pb.ControlAck(session=request.session, state="running")

    def Abort(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        self._caller(context)
        state = self.d.abort_round(request.session, request.reason or "aborted by the coordinator")
        return pb.ControlAck(session=request.session, state=state)

    MAX_LISTED = 1000

    def Submissions(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """Incremental discovery: what changed after the caller's cursor (servers/discovery.py)."""
        pb, _ = _pb()
        self._caller(context)
        limit = min(request.limit or self.MAX_LISTED, self.MAX_LISTED)
        rows, cursor, more = self.d.storage.changes(int(request.since), limit)
        return pb.SubmissionsReply(
            entries=[pb.DoState(**r) for r in rows], cursor=cursor, epoch=self.d.storage.epoch, more=more
        )

    def RoundStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        self._caller(context)
        rec = self.d.storage.round(request.session)
        if rec is None:
            return pb.RoundStatusReply(session=request.session, state="unknown")
        sig = b""
        if rec.kind == "batch" and rec.state == "done":  # this server's endorsement (servers/settlement.py)
            try:
                sig = bytes.fromhex(str(json.loads(rec.result or b"{}").get("signature", "")).removeprefix("0x"))
            except (ValueError, AttributeError):
                sig = b""
        return pb.RoundStatusReply(
            session=rec.session, kind=rec.kind, state=rec.state, error=rec.error, result=rec.result,
            batch_signature=sig,
        )


def _score_text(score: int | None) -> str:
    return "" if score is None else str(score)
