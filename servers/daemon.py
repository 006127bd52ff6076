"""The server process: takes DOs' shares, and runs MPC rounds with its peers when told to.

Two gRPC ports, both TLS and bound to the configured addresses:
* public (server-side TLS): Submission.Submit / Submission.Status for DOs, and health;
* peer (mutual TLS, CA of the network): Peer.Exchange from the other servers, Control from
  the coordinator (certificate names in `coordinators`), and health.

Submit checks everything it can before touching storage (shape, lengths, canonical field
elements, task, sharing parameters, expiry, signature, registration, replay, duplicate) and
answers a gRPC status whose message says what was wrong; a refused submission leaves no trace.
An accepted one is on disk (sqlite, synchronous=FULL) before the reply is sent.

Logs are JSON lines on stderr. SIGTERM/SIGINT: health goes NOT_SERVING, running rounds are
aborted (recorded as interrupted, so the coordinator restarts them), the ports drain and close.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from omniplus.core.errors import ChainError, InputError, OmniplusError
from omniplus.core.log import EventLog
from omniplus.prover.field import R
from omniplus.servers import signing
from omniplus.servers.config import ServerConfig, load_config
from omniplus.servers.registry import Registry, make_registry
from omniplus.servers.rounds import BatchRequest, RoundContext, RoundEngine, load_engine
from omniplus.servers.storage import Rejected, Storage, StoredSubmission, dumps
from omniplus.servers.transport import (
    GrpcNetwork,
    Mailbox,
    PeerServicer,
    TlsFiles,
    TransportError,
    TransportLimits,
    add_peer_service,
    add_service,
    grpc_options,
    mutual_server_credentials,
    peer_common_name,
    public_server_credentials,
    status_code,
)

PROTOCOL_VERSION = 1
SERVICES = ("omniplus.v1.Submission", "omniplus.v1.Peer", "omniplus.v1.Control")


def JsonLog(server: int, stream: Any = None, level: str = "info") -> EventLog:  # noqa: N802 - a constructor
    """The daemon's event log: JSON lines tagged with the server index (omniplus.core.log)."""
    return EventLog("server", stream, level, server=server)


def _pb() -> tuple[Any, Any]:
    from omniplus.proto.gen import omniplus_pb2, omniplus_pb2_grpc

    return omniplus_pb2, omniplus_pb2_grpc


# ---------------------------------------------------------------- submission checks


def check_submission(
    req: Any, cfg: ServerConfig, engine: RoundEngine | None, now: float | None = None
) -> tuple[list[int], bytes]:
    """Shape and binding checks that need no I/O. Returns (wires, payload hash); Rejected otherwise."""
    now = time.time() if now is None else now
    bad = "INVALID_ARGUMENT"
    if req.version != PROTOCOL_VERSION:
        raise Rejected(
            bad, f"unsupported protocol version {req.version}; this server speaks {PROTOCOL_VERSION}"
        )
    if len(req.market) != 20:
        raise Rejected(bad, f"market must be a 20-byte address, got {len(req.market)} bytes")
    if len(req.do_address) != 20:
        raise Rejected(bad, f"do_address must be 20 bytes, got {len(req.do_address)} bytes")
    task = cfg.task
    if (req.chain_id, req.market) != (task.chain_id, task.market_bytes):
        raise Rejected(
            bad,
            f"wrong task: this server serves market {task.market} on chain {task.chain_id}; "
            f"got market 0x{req.market.hex()} on chain {req.chain_id}",
        )
    if req.server_index != cfg.id:
        raise Rejected(bad, f"share for server {req.server_index} sent to server {cfg.id}")
    if (req.n_servers, req.threshold) != (cfg.n, cfg.threshold):
        raise Rejected(
            bad,
            f"sharing parameters n={req.n_servers}, t={req.threshold} do not match the network's "
            f"n={cfg.n}, t={cfg.threshold}",
        )
    wires = list(req.wires)
    m = len(wires)
    if m == 0:
        raise Rejected(bad, "empty block: no wires")
    if m > cfg.limits.max_wires:
        raise Rejected(bad, f"{m} wires exceed the limit of {cfg.limits.max_wires}")
    expected = engine.expected_wires() if engine is not None else None
    if expected is not None:
        if m != len(expected):
            raise Rejected(bad, f"wrong block length: {m} wires, the circuit's DO block has {len(expected)}")
        if wires != list(expected):
            raise Rejected(bad, "wire indices differ from the circuit's DO block (slot 0, block order)")
    if len(set(wires)) != m:
        raise Rejected(bad, "wire indices must be distinct")
    if 0 in wires:
        raise Rejected(bad, "wire 0 is the constant 1 and is never shared")
    if len(req.shares) != 32 * m:
        raise Rejected(
            bad, f"wrong share payload length: {len(req.shares)} bytes for {m} wires (want {32 * m})"
        )
    sh = req.shares
    for i in range(m):
        if int.from_bytes(sh[32 * i : 32 * i + 32], "little") >= R:
            raise Rejected(bad, f"share {i} (wire {wires[i]}) is not a canonical field element (>= r)")
    if len(req.nonce) != 32:
        raise Rejected(bad, f"nonce must be 32 bytes, got {len(req.nonce)}")
    if req.expiry <= now:
        raise Rejected(bad, "submission expired (expiry is in the past)")
    if req.expiry > now + cfg.limits.max_expiry_seconds:
        raise Rejected(bad, f"expiry more than {cfg.limits.max_expiry_seconds}s in the future")
    if len(req.signature) != 65:
        raise Rejected("UNAUTHENTICATED", f"signature must be 65 bytes, got {len(req.signature)}")
    phash = signing.payload_hash(wires, sh)
    header = signing.SubmissionHeader(
        chain_id=req.chain_id,
        market=bytes(req.market),
        do_address=bytes(req.do_address),
        server_index=req.server_index,
        n_servers=req.n_servers,
        threshold=req.threshold,
        nonce=bytes(req.nonce),
        expiry=req.expiry,
    )
    try:
        signer = signing.recover_signer(signing.submission_digest(header, phash), bytes(req.signature))
    except InputError as exc:
        raise Rejected("UNAUTHENTICATED", f"bad signature: {exc}") from None
    if signer != bytes(req.do_address):
        raise Rejected(
            "UNAUTHENTICATED",
            f"bad signature: signed by {signing.checksum(signer)}, not by do_address "
            f"{signing.checksum(bytes(req.do_address))}",
        )
    return wires, phash


# ---------------------------------------------------------------- services


class SubmissionService:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def Submit(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        pb, _ = _pb()
        d = self.d
        who = "0x" + request.do_address.hex()
        try:
            wires, phash = check_submission(request, d.cfg, d.engine)
            try:
                payee = d.registry.payee(bytes(request.do_address))
            except ChainError as exc:
                raise Rejected("UNAVAILABLE", f"cannot check registration right now: {exc}") from None
            if payee is None:
                raise Rejected(
                    "PERMISSION_DENIED", f"DO {signing.checksum(bytes(request.do_address))} is not registered"
                )
            sub = d.storage.accept_submission(
                do_address=bytes(request.do_address),
                payee=payee,
                server_index=request.server_index,
                n_servers=request.n_servers,
                threshold=request.threshold,
                wires=wires,
                shares=bytes(request.shares),
                payload_hash=phash,
                nonce=bytes(request.nonce),
                expiry=request.expiry,
                signature=bytes(request.signature),
            )
        except Rejected as exc:
            d.log("submit_rejected", level="warning", do=who, code=exc.code, reason=str(exc))
            context.abort(status_code(exc.code), str(exc))
        d.log("submit_accepted", do=who, wires=len(wires), payload_hash=phash.hex(), seq=sub.seq)
        return pb.SubmitReply(payload_hash=phash, state="accepted")

    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        task = self.d.cfg.task
        if (request.chain_id, request.market) != (task.chain_id, task.market_bytes):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wrong task")
        sub = self.d.storage.submission(bytes(request.do_address))
        if sub is None:
            return pb.StatusReply(state="unknown", batch_index=-1)
        return pb.StatusReply(
            state=sub.state, reason=sub.reason, batch_index=sub.batch_index, batch_tx=sub.batch_tx
        )


class ControlService:
    """Coordinator -> server: start/abort rounds, read their state. Caller must be a coordinator."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def _caller(self, context: grpc.ServicerContext) -> str:
        cn = peer_common_name(context)
        if cn is None or cn not in self.d.cfg.coordinators:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"certificate {cn!r} may not control this server"
            )
        return cn or ""

    def _need_engine(self, context: grpc.ServicerContext) -> RoundEngine:
        if self.d.engine is None:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "this server has no round engine configured ([prover] engine)"
            )
        assert self.d.engine is not None
        return self.d.engine

    def StartValidation(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        caller = self._caller(context)
        self._need_engine(context)
        dos = [bytes(a) for a in request.do_addresses]
        try:
            subs = (
                self.d.storage.submissions(dos=dos) if dos else self.d.storage.submissions(state="accepted")
            )
            missing = set(dos) - {s.do_address for s in subs}
            if missing:
                raise Rejected(
                    "FAILED_PRECONDITION",
                    f"no stored submission for {sorted('0x' + m.hex() for m in missing)}",
                )
            req = dumps({"dos": [s.do_address.hex() for s in subs], "by": caller})
            self.d.start_round(request.session, "validate", req, subs, None)
        except Rejected as exc:
            context.abort(status_code(exc.code), str(exc))
        return pb.ControlAck(session=request.session, state="running")

    def StartBatch(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        caller = self._caller(context)
        self._need_engine(context)
        dos = [bytes(a) for a in request.do_addresses]
        try:
            if not dos:
                raise Rejected("INVALID_ARGUMENT", "a batch needs at least one DO")
            if len(set(dos)) != len(dos):
                raise Rejected("INVALID_ARGUMENT", "a DO appears twice in the batch")
            try:
                params = json.loads(request.params or b"{}")
            except ValueError:
                raise Rejected("INVALID_ARGUMENT", "params must be JSON") from None
            if not isinstance(params, dict):
                raise Rejected("INVALID_ARGUMENT", "params must be a JSON object")
            subs = self.d.storage.submissions(dos=dos)
            by = {s.do_address: s for s in subs}
            for a in dos:
                s = by.get(a)
                if s is None:
                    raise Rejected("FAILED_PRECONDITION", f"no stored submission for 0x{a.hex()}")
                if s.state not in ("valid", "batched"):
                    raise Rejected("FAILED_PRECONDITION", f"DO 0x{a.hex()} is {s.state}, not valid")
            batch = BatchRequest(request.batch_index, tuple(dos), params)
            req = dumps(
                {
                    "batch_index": request.batch_index,
                    "dos": [a.hex() for a in dos],
                    "params": params,
                    "by": caller,
                }
            )
            self.d.start_round(request.session, "batch", req, subs, batch)
        except Rejected as exc:
            context.abort(status_code(exc.code), str(exc))
        return pb.ControlAck(session=request.session, state="running")

    def Abort(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        self._caller(context)
        state = self.d.abort_round(request.session, request.reason or "aborted by the coordinator")
        return pb.ControlAck(session=request.session, state=state)

    def RoundStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        pb, _ = _pb()
        self._caller(context)
        rec = self.d.storage.round(request.session)
        if rec is None:
            return pb.RoundStatusReply(session=request.session, state="unknown")
        return pb.RoundStatusReply(
            session=rec.session, kind=rec.kind, state=rec.state, error=rec.error, result=rec.result
        )


# ---------------------------------------------------------------- the daemon


class Daemon:
    """One server. `start()` binds both ports; `stop()` is idempotent; `wait()` blocks until stopped."""

    def __init__(
        self,
        cfg: ServerConfig,
        *,
        engine: RoundEngine | None = None,
        registry: Registry | None = None,
        log: JsonLog | None = None,
    ) -> None:
        self.cfg = cfg
        self.log = log or JsonLog(cfg.id, level=cfg.log_level)
        self.tls = TlsFiles.load(cfg.tls.ca, cfg.tls.cert, cfg.tls.key)
        lim = cfg.limits
        self.limits = TransportLimits(
            lim.max_peer_bytes, lim.max_buffered_bytes, lim.send_timeout, lim.recv_timeout
        )
        self.storage = Storage(
            cfg.storage,
            identity={
                "server": cfg.id,
                "chain_id": cfg.task.chain_id,
                "market": cfg.task.market.lower(),
            },
        )
        self.engine = engine if engine is not None else load_engine(cfg.prover.engine, cfg)
        if registry is None:
            if cfg.task.registry == "dev-allowlist":
                self.log(
                    "dev_allowlist",
                    level="warning",
                    note="registration is checked against a fixed development allow-list, not the contract",
                )
            registry = make_registry(
                cfg.task.registry,
                rpc_url=cfg.task.rpc_url,
                market=cfg.task.market,
                allowlist=cfg.task.allowlist,
                call=cfg.task.registry_call,
            )
        self.registry = registry
        self.mailbox = Mailbox(self.limits)
        peers = {p.id: (p.address, p.cert_name) for p in cfg.peers}
        self.network = GrpcNetwork(cfg.id, peers, self.tls, self.mailbox, self.limits)
        self.health = health.HealthServicer()
        self._rounds: dict[str, tuple[threading.Thread, threading.Event, Any]] = {}
        self._rounds_lock = threading.Lock()
        self._stopped = threading.Event()
        self._public: grpc.Server | None = None
        self._peer: grpc.Server | None = None
        self.ports: tuple[int, int] = (0, 0)

    # lifecycle
    def start(self) -> None:
        pub = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="public"),
            options=grpc_options(self.cfg.limits.max_submit_bytes),
        )
        pb, _ = _pb()
        sub = SubmissionService(self)
        add_service(
            pub,
            "omniplus.v1.Submission",
            {
                "Submit": (sub.Submit, pb.SubmitRequest, pb.SubmitReply),
                "Status": (sub.Status, pb.StatusRequest, pb.StatusReply),
            },
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, pub)
        peer = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="peer"),
            options=grpc_options(self.limits.max_message_bytes),
        )
        names = {p.cert_name: p.id for p in self.cfg.peers}
        add_peer_service(peer, PeerServicer(self.mailbox, names, self.limits))
        ctl = ControlService(self)
        add_service(
            peer,
            "omniplus.v1.Control",
            {
                "StartValidation": (ctl.StartValidation, pb.StartValidationRequest, pb.ControlAck),
                "StartBatch": (ctl.StartBatch, pb.StartBatchRequest, pb.ControlAck),
                "Abort": (ctl.Abort, pb.AbortRequest, pb.ControlAck),
                "RoundStatus": (ctl.RoundStatus, pb.RoundStatusRequest, pb.RoundStatusReply),
            },
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, peer)
        p1 = pub.add_secure_port(self.cfg.listen, public_server_credentials(self.tls))
        p2 = peer.add_secure_port(self.cfg.peer_listen, mutual_server_credentials(self.tls))
        if not p1 or not p2:
            raise OmniplusError(f"cannot bind {self.cfg.listen} / {self.cfg.peer_listen}")
        pub.start()
        peer.start()
        self._public, self._peer, self.ports = pub, peer, (p1, p2)
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.log(
            "started",
            name=self.cfg.cert_name,
            listen=f"{self.cfg.listen.rpartition(':')[0]}:{p1}",
            peer_listen=f"{self.cfg.peer_listen.rpartition(':')[0]}:{p2}",
            n=self.cfg.n,
            t=self.cfg.threshold,
            engine=self.cfg.prover.engine or None,
            registry=self.cfg.task.registry,
            interrupted_rounds=self.storage.interrupted,
            **self.storage.summary(),
        )

    def stop(self, grace: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        with self._rounds_lock:
            running = list(self._rounds)
        for session in running:
            self.abort_round(session, "server shutting down", final_state="interrupted")
        events = [s.stop(grace) for s in (self._public, self._peer) if s is not None]
        for ev in events:
            ev.wait(grace + 1)
        for session in running:
            th = self._rounds.get(session)
            if th:
                th[0].join(grace)
        self.network.close()
        self.storage.close()
        self.log("stopped")

    def wait(self) -> None:
        self._stopped.wait()

    # rounds
    def start_round(
        self,
        session: str,
        kind: str,
        request: bytes,
        subs: Sequence[StoredSubmission],
        batch: BatchRequest | None,
    ) -> None:
        if self._stopped.is_set():
            raise Rejected("UNAVAILABLE", "server is shutting down")
        try:
            channel = self.network.channel(session)
        except TransportError as exc:
            raise Rejected("INVALID_ARGUMENT", str(exc)) from None
        self.storage.begin_round(session, kind, request)
        cancelled = threading.Event()
        ctx = RoundContext(
            session,
            kind,
            self.cfg.id,
            self.cfg.n,
            self.cfg.threshold,
            channel,
            self.cfg,
            self.storage,
            cancelled,
            self.log,
        )
        th = threading.Thread(
            target=self._run_round, args=(ctx, list(subs), batch), name=f"round-{session}", daemon=True
        )
        with self._rounds_lock:
            self._rounds[session] = (th, cancelled, channel)
        self.log("round_started", session=session, kind=kind, dos=len(subs))
        th.start()

    def _run_round(self, ctx: RoundContext, subs: list[StoredSubmission], batch: BatchRequest | None) -> None:
        assert self.engine is not None
        t0 = time.monotonic()
        try:
            if ctx.kind == "validate":
                verdicts = self.engine.validate(ctx, subs)
                missing = {s.do_address for s in subs} - set(verdicts)
                if missing:
                    raise OmniplusError(f"engine gave no verdict for {len(missing)} DO(s)")
                if ctx.cancelled.is_set():
                    return
                self.storage.set_verdicts({a: (v.valid, v.reason) for a, v in verdicts.items()})
                result: Any = {
                    "0x" + a.hex(): {"valid": v.valid, "reason": v.reason} for a, v in verdicts.items()
                }
            else:
                assert batch is not None
                result = self.engine.prove_batch(ctx, batch, subs)
                if ctx.cancelled.is_set():
                    return
                self.storage.mark_batched(batch.do_addresses, batch.batch_index)
            self.storage.finish_round(ctx.session, "done", result=dumps(result))
            self.log(
                "round_done",
                session=ctx.session,
                kind=ctx.kind,
                seconds=round(time.monotonic() - t0, 3),
                bytes_sent=ctx.channel.stats.bytes_sent,
                rounds=ctx.channel.stats.rounds,
            )
        except Exception as exc:  # any engine failure fails the round, never the daemon
            if ctx.cancelled.is_set():
                return
            ctx.channel.abort(f"party {self.cfg.id} failed: {exc}")
            self.storage.finish_round(ctx.session, "failed", error=f"{type(exc).__name__}: {exc}")
            self.log("round_failed", level="error", session=ctx.session, kind=ctx.kind, error=str(exc))
        finally:
            with self._rounds_lock:
                self._rounds.pop(ctx.session, None)

    def abort_round(self, session: str, why: str, final_state: str = "aborted") -> str:
        with self._rounds_lock:
            entry = self._rounds.get(session)
        rec = self.storage.round(session)
        if rec is None:
            self.mailbox.abort(session, why)  # refuse late messages for it too
            return "unknown"
        if entry is None:
            return rec.state  # already finished: an abort does not rewrite history
        _, cancelled, channel = entry
        cancelled.set()
        channel.abort(why)
        self.storage.finish_round(session, final_state, error=why)
        self.log("round_aborted", level="warning", session=session, reason=why, state=final_state)
        return final_state


def run(config_path: str | Path) -> int:
    """`omniplus server`: run until SIGTERM/SIGINT, then shut down cleanly."""
    cfg = load_config(config_path)
    daemon = Daemon(cfg)
    daemon.start()

    def on_signal(signum: int, _frame: Any) -> None:
        daemon.log("signal", signal=signal.Signals(signum).name)
        threading.Thread(target=daemon.stop, name="shutdown").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not daemon._stopped.wait(0.5):
        pass
    # stop() runs in its own thread; give it time to finish closing storage
    for th in threading.enumerate():
        if th.name == "shutdown":
            th.join(15)
    return 0

