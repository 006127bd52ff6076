"""The server process: takes DOs' shares, and runs MPC rounds with its peers when told to.

Two gRPC ports, both TLS and bound to the configured addresses:
* public (server-side TLS): Submission.Submit / Submission.Status for DOs, and health;
* peer (mutual TLS, pinned certificates only, no CA): Peer.Exchange from the other servers
  (identified by the sha256 of the certificate they present, as listed for them in [[peers]]),
  Control from the coordinator (certificates in `coordinator_certs`), and health.

This module is the lifecycle (ports, storage, rounds, shutdown); what a DO's share must pass
is servers/admission.py, the gRPC handlers are servers/services.py.

Logs are JSON lines on stderr. SIGTERM/SIGINT: health goes NOT_SERVING, running rounds are
aborted (recorded as interrupted, so the coordinator restarts them), the ports drain and close.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from omniplus.core.errors import InputError, OmniplusError
from omniplus.core.log import EventLog
from omniplus.servers import batch_policy
from omniplus.servers.admission import PROTOCOL_VERSION, check_submission  # noqa: F401 - re-exported
from omniplus.servers.channel import Mailbox, TransportError, TransportLimits
from omniplus.servers.config import ServerConfig, load_config
from omniplus.servers.pinning import fingerprint_of, load_pinned, parse_fingerprint, trust_bundle
from omniplus.servers.registry import Registry, make_registry
from omniplus.servers.rounds import BatchRequest, RoundContext, RoundEngine, load_engine
from omniplus.servers.services import ControlService, SubmissionService, _pb
from omniplus.servers.storage import Rejected, Storage, StoredSubmission, dumps
from omniplus.servers.wire import (
    GrpcNetwork,
    PeerServicer,
    TlsFiles,
    add_peer_service,
    add_service,
    grpc_options,
    mutual_server_credentials,
    public_server_credentials,
)
from omniplus.servers.workers import Gate

SERVICES = ("omniplus.v1.Submission", "omniplus.v1.Peer", "omniplus.v1.Control")
PUBLIC_HANDLERS, PUBLIC_QUEUE, PUBLIC_RESERVED = 8, 32, 8  # public-port workers: see Daemon.start


def JsonLog(server: int, stream: Any = None, level: str = "info") -> EventLog:  # noqa: N802 - a constructor
    """The daemon's event log: JSON lines tagged with the server index (omniplus.core.log)."""
    return EventLog("server", stream, level, server=server)


def load_identities(cfg: ServerConfig) -> tuple[dict[int, bytes], list[bytes]]:
    """({server j: its pinned certificate PEM}, [each coordinator's pinned certificate PEM]).

    Every [[peers]] entry names its certificate file; a `fingerprint` given next to it must match,
    and our own entry must be our own certificate (else a peer would pin another key for us).
    InputError naming the file on any mismatch: a daemon never starts half-pinned."""
    own = fingerprint_of(cfg.tls.cert.read_bytes()) if cfg.tls.cert.exists() else None
    if own is None:
        raise InputError(f"[tls] cert {cfg.tls.cert} does not exist (make one: omniplus certs --name {cfg.cert_name})")
    certs: dict[int, bytes] = {}
    for p in cfg.peers:
        if p.cert is None:
            raise InputError(f"[[peers]] {p.id}: no cert")
        pin = parse_fingerprint(p.fingerprint, f"[[peers]] {p.id} fingerprint") if p.fingerprint else None
        certs[p.id] = load_pinned(p.cert, pin, f"[[peers]] {p.id} cert")
    if fingerprint_of(certs[cfg.id]) != own:
        raise InputError(f"[[peers]] {cfg.id} cert {cfg.peer(cfg.id).cert} is not this server's own [tls] cert")
    fps = [fingerprint_of(pem) for pem in certs.values()]
    if len(set(fps)) != len(fps):
        raise InputError("[[peers]]: two servers list the same certificate")
    coord = [load_pinned(c, None, "coordinator_certs") for c in cfg.coordinator_certs]
    if {fingerprint_of(c) for c in coord} & set(fps):
        raise InputError("coordinator_certs: a coordinator may not use a server's certificate")
    return certs, coord


# ---------------------------------------------------------------- the daemon


# gRPC servers share a port with SO_REUSEPORT by default: a second daemon on a taken port would
# start and receive some of the first one's calls. Off, its bind fails ("cannot bind").
NO_PORT_SHARING = ("grpc.so_reuseport", 0)


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
        self.peer_certs, coordinators = load_identities(cfg)
        self.coordinator_fps = frozenset(fingerprint_of(c) for c in coordinators)
        self.tls = TlsFiles.load(cfg.tls.cert, cfg.tls.key, roots=trust_bundle(
            [pem for j, pem in self.peer_certs.items() if j != cfg.id] + coordinators))
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
        if engine is None:
            # A paper-size zkey takes minutes to read on a loaded machine: say so before and after, so an
            # operator (and the devnet's start-up wait) sees what the daemon is doing before it serves.
            setup = cfg.prover.setup
            size = max((f.stat().st_size for f in Path(setup).glob("*.zkey")), default=None) if setup else None
            self.log("loading_engine", engine=cfg.prover.engine or None, setup=str(setup) if setup else None,
                     zkey_bytes=size)
            t0 = time.monotonic()
            engine = load_engine(cfg.prover.engine, cfg)
            self.log("engine_loaded", seconds=round(time.monotonic() - t0, 1))
        self.engine = engine
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
                from_block=cfg.task.deploy_block,
                log=self.log,
            )
        self.registry = registry
        self.mailbox = Mailbox(self.limits)
        peers = {p.id: (p.address, self.peer_certs[p.id]) for p in cfg.peers}
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
        # Health must answer while DOs flood the port: Submit/Status run through a gate of
        # PUBLIC_HANDLERS (+ PUBLIC_QUEUE waiting), so PUBLIC_RESERVED workers stay free for health.
        pub = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=PUBLIC_HANDLERS + PUBLIC_QUEUE + PUBLIC_RESERVED, thread_name_prefix="public"
            ),
            options=[*grpc_options(self.cfg.limits.max_submit_bytes), NO_PORT_SHARING],
        )
        pb, _ = _pb()
        start_registry = getattr(self.registry, "start", None)
        if start_registry is not None:
            start_registry()  # background refresh from Registered events (servers/registry.py)
        sub = SubmissionService(self, Gate(PUBLIC_HANDLERS, PUBLIC_QUEUE))
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
            options=[*grpc_options(self.limits.max_message_bytes), NO_PORT_SHARING],
        )
        by_fp = {fingerprint_of(pem): j for j, pem in self.peer_certs.items() if j != self.cfg.id}
        add_peer_service(peer, PeerServicer(self.mailbox, by_fp, self.limits, self.network.learn_peer))
        ctl = ControlService(self)
        add_service(
            peer,
            "omniplus.v1.Control",
            {
                "StartValidation": (ctl.StartValidation, pb.StartValidationRequest, pb.ControlAck),
                "StartBatch": (ctl.StartBatch, pb.StartBatchRequest, pb.ControlAck),
                "Abort": (ctl.Abort, pb.AbortRequest, pb.ControlAck),
                "RoundStatus": (ctl.RoundStatus, pb.RoundStatusRequest, pb.RoundStatusReply),
                "Submissions": (ctl.Submissions, pb.SubmissionsRequest, pb.SubmissionsReply),
            },
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, peer)
        try:  # older gRPC returns 0 on a failed bind, newer raises RuntimeError
            p1 = pub.add_secure_port(self.cfg.listen, public_server_credentials(self.tls))
            p2 = peer.add_secure_port(self.cfg.peer_listen, mutual_server_credentials(self.tls))
        except RuntimeError as exc:
            p1 = p2 = 0
            why = f": {exc}"
        else:
            why = ""
        if not p1 or not p2:
            raise OmniplusError(f"cannot bind {self.cfg.listen} / {self.cfg.peer_listen} (in use by another "
                                f"process?){why}")
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
        stop_registry = getattr(self.registry, "stop", None)
        if stop_registry is not None:
            stop_registry()
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
        parties: Sequence[int] | None = None,
    ) -> None:
        """Run a round in a worker thread among `parties` (sorted server ids; default all n)."""
        if self._stopped.is_set():
            raise Rejected("UNAVAILABLE", "server is shutting down")
        try:
            channel = self.network.channel(session, parties)
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
            channel.parties,
        )
        th = threading.Thread(
            target=self._run_round, args=(ctx, list(subs), batch), name=f"round-{session}", daemon=True
        )
        with self._rounds_lock:
            self._rounds[session] = (th, cancelled, channel)
        self.log("round_started", session=session, kind=kind, dos=len(subs), parties=list(channel.parties))
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
                self._record_screening(batch, result)
                if not result.get("screened_out"):
                    kept = result.get("dos")
                    dos = batch.do_addresses if kept is None else [bytes.fromhex(d[2:]) for d in kept]
                    self.storage.mark_batched(dos, batch.batch_index)
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
            self._note_failed_proof(ctx, batch, exc)  # counted even if the round was aborted
            if ctx.cancelled.is_set():
                return
            ctx.channel.abort(f"party {self.cfg.id} failed: {exc}")
            culprit = getattr(exc, "culprit", None)
            blame = dumps({"culprit": culprit, "reason": str(exc), "evidence": getattr(exc, "evidence", "")})
            self.storage.finish_round(
                ctx.session, "failed", result=blame if culprit else b"", error=f"{type(exc).__name__}: {exc}"
            )
            if culprit:
                self.log("peer_deviated", level="error", session=ctx.session, kind=ctx.kind, culprit=culprit,
                         reason=str(exc))
            self.log("round_failed", level="error", session=ctx.session, kind=ctx.kind, error=str(exc),
                     culprit=culprit)
        finally:
            with self._rounds_lock:
                self._rounds.pop(ctx.session, None)
            if not ctx.cancelled.is_set():
                ctx.channel.close()  # late or flooded messages for a finished round are refused, not kept

    def _note_failed_proof(self, ctx: RoundContext, batch: BatchRequest | None, exc: Exception) -> None:
        """A batch whose joint proof failed this server's own verification (ProofRejected) on its
        pinned set: count it; at MAX_FAILED_PROOFS give the set up (Storage.burn_batch) so one
        deviating server cannot hold the market at this index forever (the coordinator learns it
        from the DOs' states, servers/coordinator.py). Its aggregate was opened, so no split of it
        is tried: re-proving a subset would reveal the difference of two aggregates, i.e. single
        updates."""
        from omniplus.servers.settlement import ProofRejected

        if ctx.kind != "batch" or batch is None or not isinstance(exc, ProofRejected):
            return
        if self.storage.pinned(batch.batch_index) is None:
            return
        failures = self.storage.note_failed_proof(batch.batch_index)
        self.log("batch_proof_failed", level="error", session=ctx.session, batch=batch.batch_index,
                 failures=failures, of=batch_policy.MAX_FAILED_PROOFS)
        if failures < batch_policy.MAX_FAILED_PROOFS:
            return
        if self.storage.given_up_run() >= batch_policy.MAX_GIVEN_UP_IN_A_ROW:
            self.log("batch_not_given_up", level="error", alert=True, session=ctx.session, batch=batch.batch_index,
                     failures=failures, note="a set was already given up since the last proven batch: a server "
                     "keeps failing proofs; the set stays (the market stalls) until the committee is fixed")
            return
        burned = self.storage.burn_batch(batch.batch_index, batch_policy.burned_reason(batch.batch_index, failures))
        self.log("batch_given_up", level="error", alert=True, session=ctx.session, batch=batch.batch_index,
                 dos=["0x" + d.hex() for d in burned], failures=failures,
                 note="its DOs are never batched again; the index takes a set disjoint from every opened one")

    def _record_screening(self, batch: BatchRequest, result: Any) -> None:
        """Contribution screening (prover/mpc/screening.py): dropped DOs get their score verdict,
        kept ones their score; if fewer than N_min were left nothing was opened, so the agreement
        at this index is released (the dropped DOs are invalid now and cannot be proposed again)."""
        scr = result.get("screening") if isinstance(result, dict) else None
        if not scr:
            return
        dropped = {bytes.fromhex(d[2:]): (int(v["score"]), str(v["reason"])) for d, v in scr["dropped"].items()}
        kept = {bytes.fromhex(d[2:]): int(v) for d, v in scr.get("scores", {}).items()}
        rechecked = {bytes.fromhex(d[2:]): (False, str(why)) for d, why in scr.get("rechecked", {}).items()}
        if rechecked:  # the batch's re-check left them out (disputable reasons: they may resubmit)
            self.storage.set_verdicts(rechecked)
        self.storage.set_screened(dropped, kept)
        if result.get("screened_out"):
            self.storage.release_opened_batch(batch.batch_index, batch.do_addresses)

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

