"""The coordinator: turns stored submissions into paid batches by driving the servers' Control RPCs.

One pass (`Coordinator.step`):
1. discover: DOs registered on RollupMarket (Registered events) and what every server holds for
   each (Submission.Status). A DO is a candidate only once *every* server holds its share, since
   the MPC needs the same DO list on every party.
2. validate: StartValidation for the candidates on all servers, poll RoundStatus, require every
   server's verdict to agree; rejected DOs keep their reason (the servers tell the DO too).
3. batch: before proving, check the task still takes a batch (batches left, deadline); then
   N_min..N valid DOs not yet paid on-chain whose signed model version is the batch index (the
   chain's BatchSubmitted payees are the truth), or exactly the set of an earlier attempt at this
   index (servers refuse any other: servers/batch_policy.py). Never a batch below N_min. If t+1
   servers gave the earlier set up (its proof failed three times: batch_policy.MAX_FAILED_PROOFS)
   the index takes a fresh set, with an alert (`batch_given_up`).
4. verify locally (prover.groth16_verify, [ctx, W…] rebuilt from our own context and the payees the
   servers report) before anything goes on-chain; a failing proof is logged and never sent.
5. collect t+1 committee signatures (RoundStatus.batch_signature), eth_call submitBatch, and only
   then broadcast it with an explicit gas limit (servers/settlement.py); tx and gas are recorded.

At start the coordinator refuses a non-canonical task (contracts/canonical.py): market code,
verifier code against its own setup, N, N_min, d, k, B, M, w, c and the committee.

Failure handling: a round whose server is unreachable, failed, aborted or interrupted (restarted
mid-round) is aborted on every server, so nobody waits for a receive timeout; the coordinator
waits until all servers answer health checks again and retries under a new session. Server
state (shares, verdicts) is on disk, so a restarted server resumes with nothing lost.

State (`state.json` in the state directory, rewritten atomically) records batches, attempts and
rejections; logs are JSON lines on stderr.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from omniplus.core.errors import ChainError, InputError, OmniplusError, ProofError
from omniplus.core.log import EventLog
from omniplus.servers.batch_policy import BURNED_PREFIX
from omniplus.servers.control import ControlClient, ServerRef
from omniplus.servers.discovery import Discovery, PaidBatches

# Round states the daemon reports that end an attempt without a result.
DEAD_STATES = ("failed", "aborted", "interrupted", "unknown")


class RoundFailed(OmniplusError):
    """An MPC round did not complete on every server; `retry` says whether a new session may help."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class CoordinatorConfig:
    servers: tuple[ServerRef, ...]
    cert: Path
    key: Path
    rpc_url: str
    market: str
    chain_id: int
    setup: Path
    tx_key: str  # pays the gas of submitBatch (anyone may submit a batch)
    state: Path
    batch_wait: float = 2.0  # submit a partial batch after this long without new candidates
    poll: float = 0.3
    round_timeout: float = 600.0
    server_down_grace: float = 1.0  # a server unreachable this long ends the attempt
    recover_timeout: float = 300.0  # how long to wait for servers to come back
    max_attempts: int = 3
    threshold: int = 1
    min_batch: int = 2  # N_min, checked against the task at start
    committee: tuple[tuple[str, str], ...] = ()  # (signer, fingerprint) per server, if configured

    @property
    def n(self) -> int:
        return len(self.servers)


def load_coordinator_config(path: str | Path) -> CoordinatorConfig:
    """Read the coordinator TOML (paths relative to the file); InputError on anything missing."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"coordinator config {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"coordinator config {p}: {exc}") from None
    base = p.resolve().parent

    def path_of(v: Any, what: str) -> Path:
        if not isinstance(v, str):
            raise InputError(f"coordinator config: {what} must be a path string")
        q = Path(v).expanduser()
        return q if q.is_absolute() else base / q

    try:
        tls, task = data["tls"], data["task"]
        servers = tuple(ServerRef(int(s["id"]), str(s["peer"]), str(s["public"])) for s in data["servers"])
        committee = tuple((str(s["signer"]), str(s["fingerprint"])) for s in sorted(data["servers"],
                          key=lambda s: int(s["id"])) if "signer" in s and "fingerprint" in s)
        key = data.get("key")
        if key is None and "keyfile" in data:
            key = path_of(data["keyfile"], "keyfile").read_text().strip()
        if not key:
            raise KeyError("key or keyfile")
        opts: dict[str, Any] = {}
        for name, typ in (
            ("batch_wait", float),
            ("poll", float),
            ("round_timeout", float),
            ("server_down_grace", float),
            ("recover_timeout", float),
            ("max_attempts", int),
            ("threshold", int),
        ):
            if name in data:
                v = data[name]
                if isinstance(v, bool) or not isinstance(v, int | float) or (typ is int and not isinstance(v, int)):
                    raise InputError(
                        f"coordinator config {p}: {name} must be a{'n integer' if typ is int else ' number'}"
                    )
                if v <= 0:
                    raise InputError(f"coordinator config {p}: {name} must be positive")
                opts[name] = typ(v)
        cfg = CoordinatorConfig(
            servers=servers,
            cert=path_of(tls["cert"], "[tls] cert"),
            key=path_of(tls["key"], "[tls] key"),
            rpc_url=str(task["rpc_url"]),
            market=str(task["market"]),
            chain_id=int(task.get("chain_id", 31337)),
            setup=path_of(data["setup"], "setup"),
            tx_key=str(key),
            state=path_of(data.get("state", "coordinator-state"), "state"),
            min_batch=int(task.get("min_batch", 2)),
            committee=committee if len(committee) == len(servers) else (),
            **opts,
        )
    except KeyError as exc:
        raise InputError(f"coordinator config {p}: missing {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"coordinator config {p}: {exc}") from None
    if sorted(s.id for s in cfg.servers) != list(range(1, cfg.n + 1)):
        raise InputError("coordinator config: [[servers]] ids must be 1..n")
    if cfg.n < 2 * cfg.threshold + 1:
        raise InputError(f"coordinator config: need n >= 2t+1 servers (n={cfg.n}, t={cfg.threshold})")
    return cfg


def JsonLines(stream: Any = None) -> EventLog:  # noqa: N802 - a constructor
    """The coordinator's event log: JSON lines tagged role=coordinator (omniplus.core.log)."""
    return EventLog("coordinator", stream)


@dataclass
class Batch:
    """One batch as the coordinator tracks it (persisted in state.json)."""

    index: int
    dos: list[str]
    payees: list[str]
    # proving | submitting (verified and signed, receipt not seen) | submitted | failed
    # | screened (fewer than N_min left after contribution screening: nothing opened, the index stays free)
    # | given_up (t+1 servers gave the set up after repeated failed proofs: the index takes a fresh set)
    status: str = "proving"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    tx: str = ""
    gas_used: int = 0
    proof: dict[str, Any] = field(default_factory=dict)
    public: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    scores: list[str] = field(default_factory=list)  # the servers' opened contribution scores, payee order
    verified_locally: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # wall per coordinator phase
    cpu_s: dict[str, float] = field(default_factory=dict)  # this process's CPU per coordinator phase
    server_phases: dict[str, Any] = field(default_factory=dict)  # server id -> {phase: {wall_s, cpu_s}}
    signatures: list[str] = field(default_factory=list)  # the committee signatures relayed (hex)
    # contribution screening as every server reported it (prover/mpc/screening.py): min_score, rounds,
    # dropped {DO: {score, reason}}, scores {kept DO: score}
    screening: dict[str, Any] = field(default_factory=dict)


class Coordinator:
    """Drives validation and batch rounds; see the module docstring for the loop."""

    def __init__(self, cfg: CoordinatorConfig, log: Callable[..., None] | None = None) -> None:
        from omniplus.contracts.chain import connect
        from omniplus.contracts.rollup import RollupMarket
        from omniplus.prover.trusted_setup import SetupDir
        from omniplus.servers.transport import TlsFiles

        self.cfg = cfg
        self.log = log or JsonLines()
        self.setup = SetupDir.load(cfg.setup)
        self.vkey = json.loads(self.setup.vkey.read_text())
        self.tls = TlsFiles.load(cfg.cert, cfg.key)
        self.w3 = connect(cfg.rpc_url)
        if self.w3.eth.chain_id != cfg.chain_id:
            raise InputError(f"RPC {cfg.rpc_url} is chain {self.w3.eth.chain_id}, config says {cfg.chain_id}")
        self.market = RollupMarket.at(self.w3, cfg.market)
        self.facts = self._check_task()
        self.committee = self.facts.committee
        cfg.state.mkdir(parents=True, exist_ok=True)
        self.state_path = cfg.state / "state.json"
        self.state: dict[str, Any] = {"batches": [], "rejected": {}, "valid": [], "events": []}
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        # the servers' certificates are pinned to the task's on-chain committee, not to any CA
        self.control = ControlClient(cfg.servers, self.tls, self.committee.fingerprints)
        self.discovery = Discovery(self.control, [s.id for s in cfg.servers], self.log)
        self.paid_batches = PaidBatches(self.facts.deploy_block)
        self._last_candidates: set[str] = set()
        self.model_versions: dict[str, int] = {}
        self.given_up: set[str] = set()  # DOs of sets t+1 servers gave up (batch_policy.burn)
        self._cannot_exclude: set[int] = set()  # named servers we warned about (n = 2t+1)
        self._idle_since = time.monotonic()
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(2, cfg.n), thread_name_prefix="coord")

    def _check_task(self) -> Any:
        """Refuse a non-canonical market, verifier or parameters before anything is shared."""
        from omniplus.contracts.canonical import check_task
        from omniplus.contracts.rollup import Committee

        expected = None
        if self.cfg.committee:
            expected = Committee(tuple(s for s, _ in self.cfg.committee),
                                 tuple(bytes.fromhex(f.removeprefix("0x")) for _, f in self.cfg.committee),
                                 self.cfg.threshold + 1)
        return check_task(self.w3, self.cfg.market, self.setup, min_batch=self.cfg.min_batch, committee=expected,
                          n_servers=self.cfg.n, threshold=self.cfg.threshold + 1)

    # ------------------------------------------------------------------ plumbing
    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, default=str))
        os.replace(tmp, self.state_path)

    def close(self) -> None:
        self.control.close()

    def healthy(self, j: int) -> bool:
        """grpc.health on server j's public port (its certificate name pinned)."""
        return self.control.healthy(j)

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Block until every server answers SERVING (a restarted server is back)."""
        deadline = time.monotonic() + (self.cfg.recover_timeout if timeout is None else timeout)
        down: list[int] = []
        while not self.stopping.is_set():
            down = [j for j in self.participants() if not self.healthy(j)]
            if self.state.get("pending_aborts"):
                self.retry_aborts()
            if not down:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        raise RoundFailed(f"servers {down} did not come back", retry=False)

    # ------------------------------------------------------------------ participants
    def participants(self) -> list[int]:
        """The servers that run the next round: all of them minus those *named* as deviating
        (t+1 accusers, collect_blame), as long as at least 2t+1 remain (degree-2t openings need
        2t+1 points); otherwise all. `server_excluded` (alert) is logged once per server when it is
        first left out; at n = 2t+1 a warning says once that it cannot be."""
        all_ids = [s.id for s in self.cfg.servers]
        named = sorted(int(j) for j in self.state.get("named", {}))
        rest = [j for j in all_ids if j not in named]
        if not named:
            return all_ids
        t = self.cfg.threshold
        if len(rest) >= 2 * t + 1:
            excluded = self.state.setdefault("excluded", {})
            for j in named:
                if str(j) not in excluded:
                    excluded[str(j)] = {"ts": round(time.time(), 3), "parties": rest}
                    self.log("server_excluded", level="error", alert=True, server=j, parties=rest,
                             note=f"named as deviating: every later round runs on servers {rest} only")
                    self._save()
            return rest
        warned = self._cannot_exclude
        for j in named:
            if j not in warned:
                warned.add(j)
                why = ("n = 2t+1" if self.cfg.n == 2 * t + 1 else
                       f"only {len(rest)} servers would remain, fewer than 2t+1 = {2 * t + 1}")
                self.log("server_not_excluded", level="warning", server=j,
                         note=f"server {j} named but cannot be excluded: {why}")
        return all_ids

    def _parties_arg(self, parties: Sequence[int]) -> list[int]:
        """What StartValidation/StartBatch get: empty (every server) unless a server is left out."""
        return [] if len(parties) == self.cfg.n else list(parties)

    # ------------------------------------------------------------------ discovery
    def paid(self) -> set[str]:
        """DO payees already in a batch on-chain (the contract is the source of truth), read
        incrementally from BatchSubmitted events (from the block after the last one read)."""
        alerts: list[str] = []
        paid = self.paid_batches.update(self.market, alerts)
        for a in alerts:
            self.log("alert", level="error", what=a)
        return paid

    def registered(self) -> list[str]:
        return [a.lower() for a in self.market.registered_dos(self.facts.deploy_block)]

    def classify(self) -> tuple[list[str], list[str], dict[str, str]]:
        """(to validate, valid and unpaid, rejected with reasons) over DOs every server holds;
        `self.model_versions` keeps each DO's signed model version (all servers must agree).

        Incremental (servers/discovery.py): each server is asked only for what changed since the
        last pass, and the chain only for blocks not yet read. Servers store registered DOs only,
        so the servers' lists are the candidates; the chain says who is paid."""
        paid = self.paid()
        self.discovery.refresh()
        states = self.discovery.states(exclude=paid)
        dos = sorted(states)
        # judged by the round's participants only: an excluded server never validates, so its
        # rows stay 'accepted' and must not hold a DO back
        parties = set(self.participants())
        todo, valid, rejected = [], [], {}
        for do in dos:
            per = {j: r for j, r in states[do].items() if j in parties}
            if len(per) < len(parties) or any(r.state == "unknown" for r in per.values()):
                continue  # not every server holds a share (yet), or a server is down
            kinds = {r.state for r in per.values()}
            versions = {int(getattr(r, "model_version", 0)) for r in per.values()}
            if len(versions) == 1:
                self.model_versions[do] = versions.pop()
            if gave_up(per.values(), self.cfg.threshold):
                self.given_up.add(do)
            if "invalid" in kinds:
                rejected[do] = next(r.reason for r in per.values() if r.state == "invalid")
            elif kinds <= {"valid", "batched"}:
                valid.append(do)
            else:
                todo.append(do)
        return todo, valid, rejected

    # ------------------------------------------------------------------ rounds
    def run_round(
        self, kind: str, dos: Sequence[str], batch_index: int = 0, params: dict[str, Any] | None = None
    ) -> tuple[str, dict[int, dict[str, Any]]]:
        """Start one round on every participant (participants(): a named server is left out while
        2t+1 remain) and wait for it; {server: result JSON} over the participants.

        Any server failing, restarting or unreachable ends the attempt: the session is aborted
        on every server (so peers stop waiting at once) and RoundFailed is raised. The round is
        recorded in state.json (`inflight`) while it runs, so a restarted coordinator aborts what
        it left running. Servers are polled in parallel, each call bounded by the grace, so a hung
        server (stopped process, stalled host) is declared down `server_down_grace` after it last
        answered, and is sent the abort too (retried until it answers: `pending_aborts`)."""
        session = f"{kind}-{batch_index}-{secrets.token_hex(4)}"
        addrs = [bytes.fromhex(d[2:]) for d in dos]
        started: list[int] = []
        parties = self.participants()
        self.log("round_start", kind=kind, session=session, dos=list(dos), batch=batch_index, parties=parties)
        inflight = self.state.setdefault("inflight", [])
        inflight.append({"session": session, "kind": kind, "batch": batch_index, "ts": round(time.time(), 3)})
        self._save()
        try:
            return self._run_round(session, kind, addrs, started, batch_index, params, parties)
        finally:
            self.state["inflight"] = [r for r in self.state.get("inflight", []) if r["session"] != session]
            self._save()

    def _run_round(
        self, session: str, kind: str, addrs: list[bytes], started: list[int], batch_index: int,
        params: dict[str, Any] | None, parties: Sequence[int],
    ) -> tuple[str, dict[int, dict[str, Any]]]:
        all_ids = list(parties)
        arg = self._parties_arg(parties)
        try:
            for j in all_ids:
                if kind == "validate":
                    self.control.start_validation(j, session, addrs, timeout=self.start_timeout, parties=arg)
                else:
                    self.control.start_batch(j, session, batch_index, addrs, params or {},
                                             timeout=self.start_timeout, parties=arg)
                started.append(j)
        except grpc.RpcError as exc:
            # the refusing server may have started it before its reply was lost: abort there too
            self.abort(session, all_ids, f"server {j} refused to start: {exc.details()}")
            raise RoundFailed(
                f"{kind} {session}: server {j} did not start the round: {exc.code().name}: {exc.details()}",
                retry=exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED),
            ) from None
        deadline = time.monotonic() + self.cfg.round_timeout
        last_ok = {j: time.monotonic() for j in all_ids}
        while True:
            done: dict[int, dict[str, Any]] = {}
            for j, rep in self.poll_round(session, all_ids).items():
                if isinstance(rep, grpc.RpcError):
                    if time.monotonic() - last_ok[j] >= self.cfg.server_down_grace:
                        why = f"server {j} unreachable during the round ({rep.code().name})"
                        self.abort(session, all_ids, why)
                        raise RoundFailed(f"{kind} {session}: {why}") from None
                    continue
                last_ok[j] = time.monotonic()
                if rep.state in DEAD_STATES:
                    why = f"server {j} reports the round {rep.state}: {rep.error}"
                    named = self.collect_blame(session, kind, parties=all_ids)
                    self.abort(session, started, why)
                    if named:
                        why += f" (server(s) {named} named as deviating)"
                    raise RoundFailed(f"{kind} {session}: {why}")
                if rep.state == "done":
                    done[j] = json.loads(rep.result or b"{}")
            if len(done) == len(all_ids):
                self.log("round_done", kind=kind, session=session, parties=all_ids)
                return session, done
            if time.monotonic() > deadline or self.stopping.is_set():
                self.abort(session, started, "coordinator timeout")
                raise RoundFailed(f"{kind} {session}: not done after {self.cfg.round_timeout:.0f}s")
            time.sleep(self.cfg.poll)

    @property
    def call_timeout(self) -> float:
        """Deadline of one status/abort call: never longer than the grace a server gets."""
        return max(0.2, min(5.0, self.cfg.server_down_grace))

    @property
    def start_timeout(self) -> float:
        return max(1.0, min(10.0, 2 * self.cfg.server_down_grace))

    def poll_round(self, session: str, servers: Sequence[int] | None = None) -> dict[int, Any]:
        """RoundStatus from every server (or `servers`) at once: {server: reply or grpc.RpcError}."""
        def one(j: int) -> Any:
            try:
                return self.control.round_status(j, session, timeout=self.call_timeout)
            except grpc.RpcError as exc:
                return exc

        ids = [s.id for s in self.cfg.servers] if servers is None else list(servers)
        return dict(zip(ids, self._pool.map(one, ids), strict=True))

    def collect_blame(self, session: str, kind: str, settle: float = 3.0,
                      parties: Sequence[int] | None = None) -> list[int]:
        """Who do the servers say deviated in this round? Returns the servers *named*.

        Each failed server reports the party it caught (prover/mpc/audit.py Deviation). A server
        is named when at least t+1 distinct servers accuse it (so at least one honest server
        caught it: t corrupt servers cannot frame an honest one); a lone accusation is recorded
        as disputed. Other servers are given `settle` seconds to finish failing on their own."""
        accusers: dict[int, set[int]] = {}
        reasons: dict[int, str] = {}
        deadline = time.monotonic() + settle
        ids = [s.id for s in self.cfg.servers] if parties is None else list(parties)
        while True:
            failed = 0
            for sid in ids:
                try:
                    rep = self.control.round_status(sid, session)
                except grpc.RpcError:
                    continue
                if rep.state in DEAD_STATES:
                    failed += 1
                if rep.state == "failed" and rep.result:
                    try:
                        blame = json.loads(rep.result)
                        culprit = int(blame["culprit"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if 1 <= culprit <= self.cfg.n and culprit != sid:
                        accusers.setdefault(culprit, set()).add(sid)
                        reasons.setdefault(culprit, str(blame.get("reason", "")))
            if failed == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(self.cfg.poll)
        named = sorted(j for j, who in accusers.items() if len(who) >= self.cfg.threshold + 1)
        record = self.state.setdefault("deviations", [])
        for j, who in sorted(accusers.items()):
            entry = {"server": j, "accused_by": sorted(who), "session": session, "kind": kind,
                     "reason": reasons[j], "named": j in named, "ts": round(time.time(), 3)}
            record.append(entry)
            if j in named:
                self.state.setdefault("named", {})[str(j)] = entry
                self.log("server_named", level="error", alert=True, **entry)
            else:
                self.log("server_accused", level="warning", **entry)
        self._save()
        return named

    def abort(self, session: str, servers: Sequence[int], why: str) -> None:
        """Abort the session on these servers (in parallel, each call bounded); a server that does
        not answer (down or hung) keeps a pending abort, re-sent until it answers, so a stopped
        server that resumes does not go on with a round everyone else gave up."""
        self.log("round_abort", level="warning", session=session, reason=why)

        def one(j: int) -> bool:
            try:
                self.control.abort(j, session, why, timeout=self.call_timeout)
                return True
            except grpc.RpcError:
                return False

        servers = list(servers)
        pending = self.state.setdefault("pending_aborts", {})
        for j, ok in zip(servers, self._pool.map(one, servers), strict=True):
            if not ok:
                pending.setdefault(session, {"servers": [], "reason": why})
                if j not in pending[session]["servers"]:
                    pending[session]["servers"].append(j)
        self._save()

    def retry_aborts(self) -> None:
        """Re-send the aborts servers missed; drop those that answered."""
        pending = self.state.get("pending_aborts") or {}
        for session, rec in list(pending.items()):
            left = []
            for j in rec["servers"]:
                try:
                    state = self.control.abort(j, session, rec["reason"], timeout=self.call_timeout).state
                    self.log("round_abort_delivered", session=session, server=j, state=state)
                except grpc.RpcError:
                    left.append(j)
            if left:
                rec["servers"] = left
            else:
                pending.pop(session)
        self._save()

    def with_retries(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run fn; on a retryable RoundFailed wait for every server to be healthy and try again."""
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                return fn()
            except RoundFailed as exc:
                self.log("attempt_failed", level="warning", what=what, attempt=attempt, error=str(exc))
                self.state["events"].append({"what": what, "attempt": attempt, "error": str(exc)})
                self._save()
                if not exc.retry or attempt == self.cfg.max_attempts:
                    raise
                self.close()  # fresh channels: gRPC would still be backing off from a dead server
                self.wait_healthy()
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ steps
    def validate(self, dos: Sequence[str]) -> dict[str, str | None]:
        """Validation round with retries; {DO: None if valid else reason}, servers agreeing."""

        def attempt() -> dict[str, str | None]:
            _, results = self.run_round("validate", dos)
            first = results[min(results)]
            if any(r != first for r in results.values()):
                raise RoundFailed("servers disagree on the verdicts", retry=True)
            return {do: (None if first[do]["valid"] else first[do]["reason"]) for do in dos}

        t0 = time.monotonic()
        verdicts = self.with_retries("validate", attempt)
        self.state.setdefault("validations", []).append({"dos": len(dos), "seconds": round(time.monotonic() - t0, 3)})
        for do, why in verdicts.items():
            if why is None:
                self.log("do_valid", do=do)
            else:
                self.state["rejected"][do] = why
                self.log("do_rejected", level="warning", do=do, reason=why)
        self._save()
        return verdicts

    def task_open(self) -> str | None:
        """Why the task takes no further batch (None if it does): checked before every proof."""
        if self.market.finished():
            return "the task is finished"
        done, total = self.market.batches_submitted(), int(self.market.contract.functions.batches().call())
        if done >= total:
            return f"all {total} batches are on-chain"
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        deadline = int(self.market.contract.functions.deadline().call())
        if now >= deadline:
            return f"the deadline {deadline} has passed"
        return None

    def prove_and_submit(self, dos: Sequence[str]) -> Batch:
        """One batch: joint proof, local verification, t+1 signatures, simulated then broadcast
        submitBatch. Never sends a failing proof or a call that would revert."""
        from omniplus.prover.binding import pack_scores, public_signals
        from omniplus.prover.groth16_verify import verify
        from omniplus.prover.proof import proof_from_json
        from omniplus.servers import settlement

        index = self.market.batches_submitted()
        batch = Batch(index=index, dos=list(dos), payees=[])
        self.state["batches"].append(batch.__dict__)
        # No payees from us: each server binds the payees its own registry gave (one builder,
        # BindingContext.for_batch, on every side); we take them from the servers' results.
        params = {"market": self.cfg.market, "task_id": self.facts.task_id}
        signatures: dict[int, bytes] = {}

        def attempt() -> None:
            t0, c0 = time.monotonic(), time.process_time()
            session, results = self.run_round("batch", dos, index, params)
            t1, c1 = time.monotonic(), time.process_time()
            first = results[min(results)]
            record = {"session": session, "prove_s": round(t1 - t0, 3)}
            if "point_shares" in first:  # did the DOs' point shares work, and whose were refused
                record["point_shares"] = first["point_shares"]
            batch.attempts.append(record)
            if "screening" in first:  # contribution screening ran before the aggregate
                if any(r.get("screening") != first["screening"] or r.get("dos") != first.get("dos")
                       for r in results.values()):
                    record["error"] = "servers returned different screening outcomes"
                    self._save()
                    raise RoundFailed(f"batch {index} ({session}): {record['error']}", retry=True)
                self.note_screening(batch, first["screening"])
                if first.get("screened_out"):
                    batch.status = "screened"
                    return
            if any(r["proof"] != first["proof"] or r["words"] != first["words"] or r["payees"] != first["payees"]
                   or r.get("scores") != first.get("scores") for r in results.values()):
                record["error"] = "servers returned different proofs, words, payees or scores"
            else:
                words = [int(w) for w in first["words"]]
                scores = [int(x) for x in first.get("scores", [])]
                context = self.market.binding_context(first["payees"], index)
                try:
                    want = public_signals(context, words, pack_scores(self.setup.params, scores))
                except InputError as exc:
                    want, record["error"] = [], f"malformed scores: {exc}"
                try:
                    proof = proof_from_json(first["proof"])
                    ok = [int(x) for x in first["public"]] == want and verify(self.vkey, proof, want)
                except ProofError as exc:
                    ok, record["error"] = False, f"malformed proof: {exc}"
                record["verify_s"] = round(time.monotonic() - t1, 3)
                if ok:
                    batch.proof, batch.public, batch.words = first["proof"], first["public"], first["words"]
                    batch.scores = [str(x) for x in scores]
                    batch.payees = list(first["payees"])
                    batch.verified_locally = True
                    batch.seconds.update(prove=record["prove_s"], verify=record["verify_s"])
                    batch.cpu_s.update(prove=round(c1 - c0, 4), verify=round(time.process_time() - c1, 4))
                    batch.server_phases = {str(j): r.get("phases", {}) for j, r in results.items()}
                    signatures.clear()
                    for j, r in results.items():
                        try:
                            signatures[j] = bytes.fromhex(str(r.get("signature", "")).removeprefix("0x"))
                        except ValueError:
                            pass
                    return
                record.setdefault("error", "proof fails local verification (a server sent a wrong share?)")
            self.log(
                "batch_proof_rejected",
                level="error",
                batch=index,
                session=session,
                error=record["error"],
                note="nothing was sent on-chain",
            )
            self._save()
            raise RoundFailed(f"batch {index} ({session}): {record['error']}", retry=True)

        try:
            self.with_retries(f"batch {index}", attempt)
        except RoundFailed as exc:
            # a proof that failed the servers' own verification may have made them give the set up
            if "ProofRejected" in str(exc) and self.given_up_by_servers(batch):
                return batch
            batch.status = "failed"
            batch.attempts.append({"error": str(exc)})
            self.log("batch_failed", level="error", batch=index, error=str(exc), note="nothing was sent on-chain")
            self._save()
            raise
        if batch.status == "screened":
            self.log("batch_screened_out", level="warning", batch=index, dropped=batch.screening.get("dropped", {}),
                     note="fewer than N_min left after contribution screening: nothing opened, index free")
            self._save()
            return batch
        t2, c2 = time.monotonic(), time.process_time()
        try:
            digest = self.market.digest(batch.proof, [int(w) for w in batch.words], batch.payees,
                                        [int(x) for x in batch.scores], index)
            sigs = settlement.collect(signatures, digest, self.committee)
            batch.seconds["signatures"] = round(time.monotonic() - t2, 3)
            batch.cpu_s["signatures"] = round(time.process_time() - c2, 4)
        except InputError as exc:
            batch.status = "failed"
            batch.attempts.append({"error": f"signatures: {exc}"})
            self.log("batch_failed", level="error", batch=index, error=str(exc), note="nothing was broadcast")
            self._save()
            raise RoundFailed(f"batch {index}: {exc}", retry=False) from None
        batch.signatures = ["0x" + bytes(s).hex() for s in sigs]
        batch.status = "submitting"  # from here a lost reply is settled from the chain (resume())
        self._save()
        return self.broadcast(batch)

    def mark_given_up(self, record: dict[str, Any]) -> bool:
        """If t+1 servers gave this batch's set up (classify() fills `given_up`), mark the batch
        record `given_up` with an alert; True if so."""
        if not any(d.lower() in self.given_up for d in record["dos"]):
            return False
        if record.get("status") != "given_up":
            record["status"] = "given_up"
            self.log("batch_given_up", level="error", alert=True, batch=record["index"], dos=record["dos"],
                     note="its proof failed on every attempt; its DOs are never batched again, the index is free")
            self._save()
        return True

    def given_up_by_servers(self, batch: Batch, settle: float = 5.0) -> bool:
        """After a batch's last attempt failed: did t+1 servers give its set up (repeated failed
        proofs, servers/batch_policy.py)? Then it is marked `given_up` with an alert and the index
        takes a fresh set. Servers still finishing their own verification get `settle` seconds."""
        deadline = time.monotonic() + settle
        while True:
            try:
                self.classify()
            except CHAIN_ERRORS:
                return False
            if self.mark_given_up(batch.__dict__):  # the state record itself (state["batches"])
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(self.cfg.poll)

    def note_screening(self, batch: Batch, screening: dict[str, Any]) -> None:
        """Keep the servers' screening with the batch; dropped DOs are rejected with their reason."""
        batch.screening = screening
        for do, why in screening.get("rechecked", {}).items():  # failed the re-check before the opening
            self.state["rejected"][do.lower()] = why
            self.log("do_rechecked_out", level="warning", do=do, reason=why, batch=batch.index)
        for do, v in screening.get("dropped", {}).items():
            self.state["rejected"][do.lower()] = v["reason"]
            self.log("do_screened_out", do=do, score=v["score"], batch=batch.index)

    def broadcast(self, batch: Batch) -> Batch:
        """Relay a locally verified, signed batch (simulated first: a call that would revert is
        never broadcast, its calldata would publish the words without paying anyone). A revert
        fails the batch; losing the RPC leaves it `submitting`, and resume() later reads the chain
        to learn whether it landed."""
        from omniplus.servers import settlement

        t2, c2 = time.monotonic(), time.process_time()
        sigs = [bytes.fromhex(s.removeprefix("0x")) for s in batch.signatures]
        try:
            words = [int(w) for w in batch.words]
            receipt = settlement.relay(self.market, self.cfg.tx_key, batch.proof, words, batch.payees,
                                       [int(x) for x in batch.scores], sigs)
        except (ChainError, InputError) as exc:
            if isinstance(exc, ChainError) and not _reverted(exc):
                self.log("batch_unconfirmed", level="warning", batch=batch.index, error=str(exc)[:300],
                         note="the chain did not answer; the outcome is read from the chain later")
                raise
            batch.status = "failed"
            batch.attempts.append({"error": f"submitBatch: {exc}"})
            self.log("batch_failed", level="error", batch=batch.index, error=str(exc), note="nothing was broadcast")
            self._save()
            raise RoundFailed(f"batch {batch.index}: {exc}", retry=False) from None
        batch.status = "submitted"
        batch.tx = "0x" + bytes(receipt["transactionHash"]).hex()
        batch.gas_used = int(receipt["gasUsed"])
        batch.seconds["submit"] = round(time.monotonic() - t2, 3)
        batch.cpu_s["submit"] = round(time.process_time() - c2, 4)
        self.log("batch_submitted", batch=batch.index, tx=batch.tx, gas_used=batch.gas_used, payees=batch.payees,
                 signatures=len(sigs))
        self._save()
        return batch

    def choose(self, valid: Sequence[str]) -> list[str] | None:
        """The DO set for the next batch index, or None to wait. An earlier attempt at this index
        fixes the set (servers refuse any other); otherwise N_min..N valid DOs signed for this
        model version. Never fewer than N_min."""
        index = self.market.batches_submitted()
        earlier = [b for b in self.state["batches"] if b["index"] == index
                   and b["status"] not in ("submitted", "screened", "given_up")]  # these released the index
        if earlier:
            if not self.mark_given_up(earlier[-1]):  # a given-up set frees the index for a fresh one
                return list(earlier[-1]["dos"])
        N, n_min = self.setup.params.batch, max(2, self.facts.min_batch)
        fresh = sorted(d for d in valid if self.model_versions.get(d, 0) == index)
        if len(fresh) < n_min:
            return None
        if len(fresh) < N and time.monotonic() - self._idle_since < self.cfg.batch_wait:
            return None
        return fresh[:N]

    # ------------------------------------------------------------------ liveness
    def resume(self) -> list[Batch]:
        """Settle what an earlier run (or a lost RPC reply) left half-done; returns batches it
        found on-chain. Rounds left running are aborted on every server; a batch left `proving`
        is failed (its index is retried with the same set, as servers require); a batch left
        `submitting` is submitted if the chain shows its index with its payees, re-sent if its
        index is still the next one, else failed."""
        self.retry_aborts()
        for rec in list(self.state.get("inflight", [])):
            self.abort(rec["session"], [s.id for s in self.cfg.servers], "coordinator restarted mid-round")
        self.state["inflight"] = []
        self.paid_batches.update(self.market)
        settled: list[Batch] = []
        for i, b in enumerate(self.state["batches"]):
            if b.get("status") not in ("proving", "submitting"):
                continue
            batch = Batch(**b)
            self.state["batches"][i] = batch.__dict__
            onchain = self.paid_batches.by_index.get(batch.index)
            if onchain is not None and sorted(onchain) == sorted(p.lower() for p in batch.payees):
                batch.status, batch.tx = "submitted", self.paid_batches.tx.get(batch.index, "")
                self.log("batch_settled", batch=batch.index, tx=batch.tx, note="found on-chain after a restart "
                         "or a lost reply")
                settled.append(batch)
            elif batch.status == "submitting" and onchain is None and batch.verified_locally \
                    and self.market.batches_submitted() == batch.index:
                self.log("batch_resend", batch=batch.index, note="not on-chain: sending the verified proof again")
                settled.append(self.broadcast(batch))
            else:
                batch.status = "failed"
                batch.attempts.append({"error": "interrupted: the coordinator stopped before this batch settled"})
                self.log("batch_abandoned", level="warning", batch=batch.index, was=b.get("status"))
        self._save()
        return settled

    def step(self) -> Batch | None:
        """One pass of discover → validate → (maybe) batch. Returns the batch it submitted, if any."""
        todo, valid, rejected = self.classify()
        for do in todo + valid:  # a DO rejected for a possible server fault resubmitted fresh shares
            if self.state["rejected"].pop(do, None) is not None:
                self.log("do_resubmitted", do=do)
        for do, why in rejected.items():
            self.state["rejected"].setdefault(do, why)
        if todo:
            verdicts = self.validate(todo)
            valid += [d for d, why in verdicts.items() if why is None]
            self._idle_since = time.monotonic()
        candidates = set(valid)
        if candidates != self._last_candidates:
            self._last_candidates = candidates
            self._idle_since = time.monotonic()
        if not valid:
            return None
        closed = self.task_open()
        if closed is not None:  # checked before proving: a batch that cannot land is never made
            raise RoundFailed(f"no batch: {closed}", retry=False)
        chosen = self.choose(valid)
        if chosen is None:
            return None
        batch = self.prove_and_submit(chosen)
        self._last_candidates = set()
        return None if batch.status in ("screened", "given_up") else batch

    def run(self, batches: int | None = None, timeout: float | None = None) -> list[Batch]:
        """Loop until `batches` batches are on-chain (None: until stopped) or `timeout` passes.

        Chain trouble (RPC down, stalled, a failed read) never ends the loop: the pass is logged,
        backed off (up to 10 s) and retried; before the next pass resume() settles any batch
        whose submission reply was lost."""
        deadline = None if timeout is None else time.monotonic() + timeout
        made: list[Batch] = []
        self.log(
            "coordinator_started",
            market=self.cfg.market,
            servers=self.cfg.n,
            batch_size=self.setup.params.batch,
        )
        need_resume, backoff = True, self.cfg.poll
        while not self.stopping.is_set():
            try:
                if need_resume:
                    made += self.resume()
                    need_resume = False
                b = self.step() if batches is None or len(made) < batches else None
                backoff = self.cfg.poll
            except RoundFailed as exc:
                if batches is not None:
                    raise
                self.log("step_failed", level="error", error=str(exc), note="backing off")
                self.stopping.wait(10 * self.cfg.poll + 5)
                continue
            except CHAIN_ERRORS as exc:
                need_resume = True
                backoff = min(10.0, max(2 * backoff, 0.5))
                self.log("chain_unavailable", level="warning", error=f"{type(exc).__name__}: {str(exc)[:300]}",
                         note=f"retrying in {backoff:.1f}s")
                b = None
                self.stopping.wait(backoff)
            if b is not None:
                made.append(b)
            if batches is not None and len(made) >= batches:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise RoundFailed(f"only {len(made)} of {batches} batch(es) after {timeout:.0f}s", retry=False)
            time.sleep(self.cfg.poll)
        return made


def _reverted(exc: Exception) -> bool:
    """Did the chain refuse the call (as opposed to not answering)?"""
    text = str(exc).lower()
    return "revert" in text or "out of gas" in text


def _chain_errors() -> tuple[type[BaseException], ...]:
    import requests
    from web3.exceptions import Web3Exception

    return (ChainError, OSError, requests.exceptions.RequestException, Web3Exception, TimeoutError)


CHAIN_ERRORS = _chain_errors()


def gave_up(replies: Any, t: int) -> bool:
    """Did t+1 servers report this DO as given up (batch_policy.BURNED_PREFIX)? Then at least one
    honest server gave its set up; t lying servers cannot free an index this way."""
    return sum(r.state == "invalid" and str(r.reason).startswith(BURNED_PREFIX) for r in replies) >= t + 1


def status_report(cfg: CoordinatorConfig) -> dict[str, Any]:
    """What `omniplus coordinator --status` prints: read from state.json, no network access."""
    path = cfg.state / "state.json"
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    batches = state.get("batches", [])
    named = state.get("named", {})
    lines = [f"coordinator state {path}"]
    lines.append(f"batches: {sum(b.get('status') == 'submitted' for b in batches)} submitted, "
                 f"{sum(b.get('status') == 'failed' for b in batches)} failed, "
                 f"{sum(b.get('status') == 'given_up' for b in batches)} given up")
    for b in batches:
        lines.append(f"  batch {b.get('index')}: {b.get('status')} {len(b.get('payees', []))} DOs {b.get('tx', '')}")
    lines.append(f"rejected DOs: {len(state.get('rejected', {}))}")
    for do, why in sorted(state.get("rejected", {}).items()):
        lines.append(f"  {do}: {why}")
    for b in batches:
        if b.get("status") == "given_up":
            lines.append(f"ALERT batch {b.get('index')} given up after failed proofs: DOs {b.get('dos')} not paid")
    if named:
        for j, e in sorted(named.items()):
            lines.append(f"ALERT server {j} named as deviating by servers {e['accused_by']} "
                         f"({e['kind']} {e['session']}): {e['reason']}")
    else:
        lines.append("no server named as deviating")
    for j in sorted(state.get("excluded", {}), key=int):
        lines.append(f"server {j} excluded from rounds (named); rounds run on servers "
                     f"{state['excluded'][j].get('parties')}")
    disputed = [e for e in state.get("deviations", []) if not e.get("named")]
    if disputed:
        lines.append(f"disputed accusations (one accuser each): {len(disputed)}")
    return {"named": named, "excluded": state.get("excluded", {}), "deviations": state.get("deviations", []),
            "batches": batches,
            "rejected": state.get("rejected", {}), "text": "\n".join(lines)}
