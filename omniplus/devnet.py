"""A whole local network in one process tree: anvil, CA, setup, contracts, n servers, DOs, coordinator.

Why real processes and real TLS even for a demo: the devnet is also the end-to-end test bed, so
it exercises exactly what an operator runs (`omniplus server`, `omniplus coordinator`) — separate
processes, mutual TLS on 127.0.0.1, registration checked on the chain, state on disk.

    with Devnet(root, DevnetOptions(servers=3, dos=4, invalid=1)) as net:
        net.start()            # anvil, certificates, setup (cached), verifier + RollupMarket, servers
        net.submit_dos()       # register on-chain, share, send share j to server j
        net.run_coordinator()  # validate, prove, verify locally, submitBatch
        print(net.summary())

Invalid DOs submit a block whose norm exceeds the bound: computed wire by wire without the
client-side check (prover.witness.do_block(check=False)), so only the servers' validation on
shares can reject it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniplus.core.errors import OmniplusError
from omniplus.prover.samples import agreeing_rows, invalid_row
from omniplus.servers.channel import RECV_TIMEOUT

Progress = Callable[[str], None]


@dataclass
class DevnetOptions:
    servers: int = 3
    dos: int = 4
    invalid: int = 1
    free_riders: int = 0  # DOs sending the zero update (valid, score 0: screened out, never paid)
    flippers: int = 0  # DOs sending an honest update negated (valid, negative score: screened out)
    threshold: int = 1
    batch: int = 4  # N
    dims: int = 8  # d
    bits: int = 6  # k
    norm_bound: int = 2000  # B
    backend: str = "native"
    reward_wei: int = 10**15
    batches: int = 4  # R
    min_batch: int = 2  # N_min (the contract and every server refuse smaller batches)
    seed: int | None = None
    batch_wait: float = 1.0  # the DOs have all submitted when the coordinator starts
    recv_timeout: float = RECV_TIMEOUT
    engines: dict[int, str] = field(default_factory=dict)  # server id -> engine spec (fault tests)
    point_shares: bool = True  # DOs also send their blocks' MSM contributions (prover/mpc/point_shares.py)
    bad_points: int = 0  # the first bad_points valid DOs send point shares of another block (fault tests)
    pythonpath: tuple[str, ...] = ()  # extra import paths for the server processes
    anvil_state: bool = False  # anvil keeps its state in ROOT/anvil-state.json (restartable: liveness tests)
    # Multiplies the round/receive timeouts and the coordinator's server-down grace. 1.0 keeps the fixed
    # values the fault tests rely on; None scales them with the circuit and the machine's load (see
    # `timeout_scale`), as the market demo does; OMNIPLUS_TIMEOUT_SCALE overrides either.
    timeout_scale: float | None = 1.0


def load_factor() -> float:
    """How oversubscribed the cores are (1-minute load / cores, at least 1): a shared machine's slowdown."""
    try:
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    except OSError:
        return 1.0


def size_factor(constraints: int) -> float:
    """How much heavier the circuit is than 2^16 constraints, the size the fixed timeouts were set for."""
    return max(1.0, constraints / 2**16)


def env_scale() -> float | None:
    """OMNIPLUS_TIMEOUT_SCALE, if set: the operator's own multiplier for every scaled timeout."""
    raw = os.environ.get("OMNIPLUS_TIMEOUT_SCALE")
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise OmniplusError(f"OMNIPLUS_TIMEOUT_SCALE={raw!r} is not a number") from None
    if not v > 0:
        raise OmniplusError(f"OMNIPLUS_TIMEOUT_SCALE={raw!r} must be positive")
    return v


@dataclass
class DoInfo:
    index: int
    address: str
    key: str
    row: list[int]
    valid: bool  # what the DO's update should be judged (the servers decide)
    submitted: bool = False
    kind: str = "honest"  # honest | free-rider | sign-flip | invalid (what the devnet made it)


def cached_setup(params: Any, progress: Progress | None = None) -> Any:
    """The devnet's setup: the one development-setup cache (omniplus.prover.setup_cache)."""
    from omniplus.prover.setup_cache import cached_setup as cached

    return cached(params, progress)[0]


class Devnet:
    """Owns every process it starts; `stop()` ends them (also on context exit)."""

    model_hash_: bytes = b"\0" * 32  # the task's modelHash (the market run sets the MO's)
    model_uri: str = ""

    def __init__(
        self, root: str | Path, opts: DevnetOptions | None = None, progress: Progress | None = None
    ) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.opts = opts or DevnetOptions()
        self.t0 = time.monotonic()
        self._say = progress
        self.times: dict[str, float] = {}
        self.anvil: Any = None
        self.setup: Any = None
        self.layout: Any = None
        self.market: Any = None
        self.verifier_address = ""
        self.server_procs: dict[int, subprocess.Popen] = {}
        self.coordinator_proc: subprocess.Popen | None = None
        self.server_configs: list[Path] = []
        self.coordinator_config: Path | None = None
        self.dos: list[DoInfo] = []
        self.rng = random.Random(self.opts.seed)

    # ------------------------------------------------------------------ helpers
    def say(self, msg: str) -> None:
        if self._say:
            self._say(f"[devnet {time.monotonic() - self.t0:6.1f}s] {msg}")

    def _phase(self, name: str, fn: Callable[[], Any]) -> Any:
        t = time.monotonic()
        out = fn()
        self.times[name] = round(time.monotonic() - t, 3)
        return out

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def params(self) -> Any:
        from omniplus.circuits.params import CircuitParams

        o = self.opts
        return CircuitParams(batch=o.batch, dims=o.dims, bits=o.bits, norm_bound=o.norm_bound).check()

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def constraints(self) -> int:
        """The setup's constraint count (before the setup exists: the statement's expected count)."""
        n = self.setup.manifest.get("n_constraints") if self.setup is not None else None
        return int(n) if n else self.params.expected_constraints()

    def timeout_scale(self) -> float:
        """The multiplier for round/receive timeouts and the server-down grace (DevnetOptions.timeout_scale)."""
        env = env_scale()
        if env is not None:
            return env
        if self.opts.timeout_scale is not None:
            return self.opts.timeout_scale
        return round(size_factor(self.constraints) * load_factor(), 2)

    def start_timeout(self) -> float:
        """How long a server may take to serve: 60 s at 2^16 on idle cores, scaled by the circuit (the
        daemon reads the whole zkey first) and by the load (OMNIPLUS_SERVER_START_TIMEOUT overrides)."""
        raw = os.environ.get("OMNIPLUS_SERVER_START_TIMEOUT")
        if raw:
            try:
                return float(raw)
            except ValueError:
                raise OmniplusError(f"OMNIPLUS_SERVER_START_TIMEOUT={raw!r} is not a number") from None
        scale = env_scale() or size_factor(self.constraints) * load_factor()
        return 60.0 * max(1.0, scale)

    def _env(self) -> dict[str, str]:
        paths = list(self.opts.pythonpath)
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(paths)}

    # ------------------------------------------------------------------ start
    def start(self) -> Devnet:
        """Chain, certificates, setup, contracts and every server, ready for submissions."""
        o = self.opts
        if o.servers < 2 * o.threshold + 1:
            raise OmniplusError(f"--servers {o.servers} is too few for t={o.threshold} (need 2t+1)")
        if not 0 <= o.invalid <= o.dos:
            raise OmniplusError("--invalid must be between 0 and --dos")
        self._phase("anvil", self._start_anvil)
        self._phase("certs", self._make_certs)
        self._phase("setup", self._load_setup)
        self._phase("deploy", self._deploy)
        self._phase("servers", self._start_servers)
        return self

    def _start_anvil(self) -> None:
        from omniplus.contracts.chain import Anvil

        state = self.root / "anvil-state.json" if self.opts.anvil_state else None
        self.anvil = Anvil(accounts=self.opts.dos + 2, log_path=str(self.root / "anvil.log"), state=state).start()
        self.say(f"anvil at {self.anvil.rpc_url} (chain {self.anvil.chain_id})")

    def _make_certs(self) -> None:
        """One identity per operator (its own key and self-signed certificate, as `omniplus certs
        --name` makes it; no CA) and one Ethereum signing key per server (keys/server-j.key, 0600)."""
        from omniplus.servers.certs import make_network

        if self.certs.exists():
            shutil.rmtree(self.certs)
        make_network(self.certs, self.opts.servers, clients=("coordinator",))
        keys = self.root / "keys"
        keys.mkdir(exist_ok=True)
        for j in range(1, self.opts.servers + 1):
            p = keys / f"server-{j}.key"
            p.write_text("0x" + os.urandom(32).hex() + "\n")
            p.chmod(0o600)
        self.say(f"{self.opts.servers} server identities (self-signed, pinned by fingerprint), a coordinator "
                 f"identity and signing keys in {self.root}")

    def server_key(self, j: int) -> str:
        return (self.root / "keys" / f"server-{j}.key").read_text().strip()

    def committee(self) -> Any:
        """The task's committee: each server's signing address and certificate fingerprint, t+1."""
        from eth_account import Account

        from omniplus.contracts.committee import cert_fingerprint
        from omniplus.contracts.rollup import Committee

        n = self.opts.servers
        if not (self.root / "keys" / f"server-{n}.key").exists() or not (self.certs / f"server-{n}.pem").exists():
            self._make_certs()  # a caller that deploys without start() (tests) still gets a committee
        return Committee(tuple(Account.from_key(self.server_key(j)).address for j in range(1, n + 1)),
                         tuple(cert_fingerprint((self.certs / f"server-{j}.pem").read_bytes())
                               for j in range(1, n + 1)), self.opts.threshold + 1)

    @property
    def pins(self) -> dict[int, bytes]:
        """{server j: sha256 of its certificate}: what DOs and the coordinator pin (the task lists them)."""
        return {j: fp for j, fp in enumerate(self.committee().fingerprints, start=1)}

    def _load_setup(self) -> None:
        from omniplus.prover.mpc.layout import load_layout

        self.setup = cached_setup(self.params, self.say)
        self.layout = load_layout(self.setup)
        p = self.params
        self.say(
            f"setup N={p.batch} d={p.dims} k={p.bits} B={p.norm_bound}: "
            f"{self.setup.manifest.get('n_constraints')} constraints, {self.layout.block_size} wires per DO"
        )

    def _deploy(self) -> None:
        from omniplus.contracts.rollup import RollupMarket, TaskParams
        from omniplus.contracts.verifier import deploy_verifier

        w3, key = self.anvil.w3, self.anvil.keys[0]
        verifier = deploy_verifier(w3, key, self.setup.path)
        self.verifier_address = verifier.address
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 7 * 24 * 3600
        task = TaskParams.from_circuit(
            self.params, reward=self.opts.reward_wei, batches=self.opts.batches, deadline=deadline,
            min_batch=self.opts.min_batch,
        )
        self.market = RollupMarket.deploy(w3, key, verifier.address, task, committee=self.committee(),
                                          model_hash=self.model_hash_, model_uri=self.model_uri)
        self.say(
            f"Groth16Verifier at {verifier.address}, RollupMarket at {self.market.address} "
            f"(deposit {task.required_deposit} wei, modelHash 0x{self.model_hash_.hex()[:16]}…)"
        )

    def _ports(self) -> list[tuple[int, int]]:
        from omniplus.core.ports import free_ports

        ports = free_ports(2 * self.opts.servers)
        return [(ports[2 * j], ports[2 * j + 1]) for j in range(self.opts.servers)]

    def _start_servers(self) -> None:
        from omniplus.servers.config import server_name, write_config

        o = self.opts
        ports = self._ports()
        self.ports = ports
        scale = self.timeout_scale()
        if scale != 1.0:
            self.say(f"timeouts ×{scale:g} (circuit {self.constraints:,} constraints, load "
                     f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; OMNIPLUS_TIMEOUT_SCALE overrides)")
        committee = self.committee()
        peers = [
            {"id": j, "address": f"127.0.0.1:{ports[j - 1][1]}", "public": f"127.0.0.1:{ports[j - 1][0]}",
             "signer": committee.members[j - 1], "fingerprint": "0x" + committee.fingerprints[j - 1].hex(),
             "cert": f"certs/{server_name(j)}.pem"}
            for j in range(1, o.servers + 1)
        ]
        self.server_configs = []
        for j in range(1, o.servers + 1):
            data = {
                "id": j,
                "listen": f"127.0.0.1:{ports[j - 1][0]}",
                "peer_listen": f"127.0.0.1:{ports[j - 1][1]}",
                "storage": f"state/server-{j}",
                "threshold": o.threshold,
                "coordinator_certs": ["certs/coordinator.pem"],
                "signing_keyfile": f"keys/server-{j}.key",
                "task": {
                    "market": self.market.address,
                    "chain_id": self.anvil.chain_id,
                    "rpc_url": self.anvil.rpc_url,
                    "registry": "chain",
                    "min_batch": o.min_batch,
                    "deploy_block": int(self.market.deploy_receipt["blockNumber"]),
                },
                "tls": {
                    "cert": f"certs/{server_name(j)}.pem",
                    "key": f"certs/{server_name(j)}.key",
                },
                "prover": {
                    "backend": o.backend,
                    "setup": str(self.setup.path),
                    "engine": o.engines.get(j, "omniplus.servers.mpc_engine:make_engine"),
                },
                "limits": {"send_timeout": 10.0 * scale, "recv_timeout": o.recv_timeout * scale},
                "peers": peers,
            }
            self.server_configs.append(write_config(self.root / f"server-{j}.toml", data))
        for j in range(1, o.servers + 1):
            self.start_server(j, wait=False)
        for j in range(1, o.servers + 1):
            self.wait_serving(j)
        self.say(
            f"{o.servers} servers serving: "
            + ", ".join(f"server-{j} 127.0.0.1:{ports[j - 1][0]}" for j in range(1, o.servers + 1))
        )

    def start_server(self, j: int, wait: bool = True) -> subprocess.Popen:
        """(Re)start server j as an `omniplus server` process; its log goes to server-j.log.

        The CLI loads verbs lazily, so a server process imports only the server verb."""
        log = open(self.root / f"server-{j}.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "omniplus", "server", "--config", str(self.server_configs[j - 1])],
            cwd=self.root,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=self._env(),
        )
        log.close()
        self.server_procs[j] = proc
        if wait:
            self.wait_serving(j)
        return proc

    def server_log(self, j: int) -> str:
        p = self.root / f"server-{j}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_serving(self, j: int, timeout: float | None = None, report_every: float = 15.0) -> None:
        """Until server j answers health SERVING; every `report_every` s say what it is doing (its last
        log event: loading the engine, the zkey's size), so a long wait is visibly a wait for something."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from omniplus.servers.client import public_channel

        pins = self.pins
        addr = f"127.0.0.1:{self.ports[j - 1][0]}"
        timeout = self.start_timeout() if timeout is None else timeout
        start = time.monotonic()
        deadline = start + timeout
        next_report = start + report_every
        while time.monotonic() < deadline:
            if time.monotonic() >= next_report:
                next_report += report_every
                self.say(f"server {j} not serving yet after {time.monotonic() - start:.0f}s of at most "
                         f"{timeout:.0f}s: {self._server_doing(j)}")
            proc = self.server_procs.get(j)
            if proc is not None and proc.poll() is not None:
                raise OmniplusError(
                    f"server {j} exited with {proc.returncode}:\n{self.server_log(j)[-3000:]}"
                )
            try:
                with public_channel(addr, j, pins) as ch:
                    rep = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
                if rep.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.2)
        raise OmniplusError(f"server {j} not serving after {timeout:.0f}s:\n{self.server_log(j)[-3000:]}")

    def _server_doing(self, j: int) -> str:
        """Server j's last log event, in a few words (the daemon logs JSON lines)."""
        lines = [ln for ln in self.server_log(j).splitlines() if ln.strip()]
        if not lines:
            return "no log line yet (starting Python, importing)"
        try:
            ev = json.loads(lines[-1])
        except ValueError:
            return lines[-1][-200:]
        what = ev.get("event") or ev.get("msg") or "?"
        if what == "loading_engine":
            size = ev.get("zkey_bytes")
            return "loading its prover engine" + (f" (zkey {size / 2**20:.0f} MiB)" if size else "")
        return f"last logged {what!r}"

    def kill_server(self, j: int) -> None:
        """SIGKILL: the hardest stop (no graceful shutdown, state only from disk)."""
        proc = self.server_procs.pop(j)
        proc.kill()
        proc.wait(10)
        self.say(f"server {j} killed")

    # ------------------------------------------------------------------ DOs
    def make_dos(self) -> list[DoInfo]:
        o = self.opts
        accounts = self.anvil.accounts[1 : 1 + o.dos]
        bad = set(range(o.dos - o.invalid, o.dos))  # the last --invalid DOs are out of bound
        # before them: the free-riders (zero update), then the sign-flippers (an honest update negated);
        # the honest DOs' updates share one direction, so their contribution scores are positive
        flip = set(range(o.dos - o.invalid - o.flippers, o.dos - o.invalid))
        zero = set(range(o.dos - o.invalid - o.flippers - o.free_riders, o.dos - o.invalid - o.flippers))
        honest = agreeing_rows(self.params, self.rng, o.dos)
        self.dos = []
        for i, acct in enumerate(accounts):
            if i in bad:
                row = invalid_row(self.params, self.rng)
            elif i in zero:
                row = [0] * self.params.dims
            elif i in flip:
                row = [-x for x in honest[i]]
            else:
                row = honest[i]
            self.dos.append(DoInfo(i, acct.address, acct.key, row, i not in bad, kind=(
                "invalid" if i in bad else "free-rider" if i in zero else "sign-flip" if i in flip else "honest")))
        return self.dos

    def submit_dos(self) -> list[DoInfo]:
        """Each DO registers on RollupMarket, then shares its update through the DO role
        (servers/data_owner.py: canonical-task check, block, shares, signatures); an invalid DO
        builds its block without the client-side check, so only the servers' validation stops it."""
        from omniplus.servers.data_owner import Destination, submit_update

        self.make_dos() if not self.dos else None
        to = Destination(servers=[f"127.0.0.1:{p[0]}" for p in self.ports], threshold=self.opts.threshold)

        from omniplus.servers.data_owner import point_sharer

        liars = {d.index for d in [d for d in self.dos if d.valid][: self.opts.bad_points]}

        def run() -> None:
            version = self.market.batches_submitted()
            for do in self.dos:
                self.market.register(do.key)
                points: Any = self.opts.point_shares
                if do.index in liars:  # wire shares of its update, point shares of the zero update
                    from omniplus.prover.mpc.batch import make_block

                    points = point_sharer(self.setup, self.layout, make_block(self.setup, self.layout,
                                                                              [0] * self.params.dims))
                submit_update(key=do.key, market=self.market, setup=self.setup, layout=self.layout, row=do.row,
                              to=to, check=do.valid, model_version=version, points=points)
                do.submitted = True
                norm = sum(x * x for x in do.row)
                self.say(
                    f"DO {do.index} {do.address} registered and submitted "
                    f"(|g|^2={norm}, {'within' if norm <= self.opts.norm_bound else 'ABOVE'} the bound)"
                )

        self._phase("dos", run)
        return self.dos

    # ------------------------------------------------------------------ coordinator
    def write_coordinator_config(self, **overrides: Any) -> Path:
        import tomli_w

        committee = self.committee()
        scale = self.timeout_scale()
        scaled = {} if scale == 1.0 else {"round_timeout": 600.0 * scale, "server_down_grace": 1.0 * scale,
                                          "recover_timeout": 300.0 * scale}
        data: dict[str, Any] = {
            **scaled,
            "setup": str(self.setup.path),
            "state": "coordinator-state",
            "key": self.anvil.keys[self.opts.dos + 1],
            "threshold": self.opts.threshold,
            "batch_wait": self.opts.batch_wait,
            "tls": {"cert": "certs/coordinator.pem", "key": "certs/coordinator.key"},
            "task": {
                "rpc_url": self.anvil.rpc_url,
                "market": self.market.address,
                "chain_id": self.anvil.chain_id,
                "min_batch": self.opts.min_batch,
            },
            "servers": [
                {"id": j, "peer": f"127.0.0.1:{p[1]}", "public": f"127.0.0.1:{p[0]}",
                 "signer": committee.members[j - 1], "fingerprint": "0x" + committee.fingerprints[j - 1].hex()}
                for j, p in enumerate(self.ports, start=1)
            ],
            **overrides,
        }
        path = self.root / "coordinator.toml"
        path.write_text(tomli_w.dumps(data))
        self.coordinator_config = path
        return path

    def start_coordinator(self, batches: int | None = 1, **overrides: Any) -> subprocess.Popen:
        """`omniplus coordinator` as a process; --batches None keeps it running (devnet --keep)."""
        cfg = self.write_coordinator_config(**overrides)
        log = open(self.root / "coordinator.log", "ab")  # noqa: SIM115
        cmd = [sys.executable, "-m", "omniplus", "coordinator", "--config", str(cfg)]
        if batches is not None:
            cmd += ["--batches", str(batches)]
        self.coordinator_proc = subprocess.Popen(
            cmd, cwd=self.root, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self._env()
        )
        log.close()
        self.say("coordinator started")
        return self.coordinator_proc

    def coordinator_state(self) -> dict[str, Any]:
        p = self.root / "coordinator-state" / "state.json"
        return json.loads(p.read_text()) if p.exists() else {"batches": [], "rejected": {}, "events": []}

    def coordinator_log(self) -> str:
        p = self.root / "coordinator.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_batch(self, timeout: float | None = None) -> dict[str, Any]:
        """Until the coordinator has a batch on-chain (or gives up; default 600 s × timeout_scale)."""
        timeout = 600.0 * self.timeout_scale() if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.coordinator_state()
            done = [b for b in st["batches"] if b["status"] == "submitted"]
            if done:
                return done[0]
            proc = self.coordinator_proc
            if proc is not None and proc.poll() is not None:
                raise OmniplusError(
                    f"coordinator exited with {proc.returncode} before a batch was on-chain:\n"
                    f"{self.coordinator_log()[-4000:]}"
                )
            time.sleep(0.3)
        raise OmniplusError(f"no batch on-chain after {timeout:.0f}s:\n{self.coordinator_log()[-4000:]}")

    def run_coordinator(self, timeout: float | None = None) -> dict[str, Any]:
        """Start the coordinator for one batch and wait for it (phase time: 'batch')."""
        self.start_coordinator(batches=1)
        batch = self._phase("batch", lambda: self.wait_batch(timeout))
        self.say(f"batch {batch['index']} on-chain: tx {batch['tx']}, gas {batch['gas_used']}")
        return batch

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """What happened, for humans and for --json."""
        from omniplus.prover.snarkjs_verify import snarkjs_verify

        st = self.coordinator_state()
        batch = next((b for b in st["batches"] if b["status"] == "submitted"), None)
        verified = None
        if batch is not None:
            d = self.root / f"batch-{batch['index']}"
            d.mkdir(exist_ok=True)
            (d / "proof.json").write_text(json.dumps(batch["proof"]))
            (d / "public.json").write_text(json.dumps(batch["public"]))
            verified = snarkjs_verify(self.setup.vkey, d / "public.json", d / "proof.json")
        accepted = [p for p in (batch["payees"] if batch else [])]
        rejected = {self._name(a): why for a, why in st.get("rejected", {}).items()}
        return {
            "market": self.market.address,
            "verifier": self.verifier_address,
            "rpc_url": self.anvil.rpc_url,
            "params": self.params.to_json(),
            "accepted": accepted,
            "rejected": rejected,
            "batch_index": batch["index"] if batch else None,
            "batch_tx": batch["tx"] if batch else None,
            "verify_gas": batch["gas_used"] if batch else None,
            "credited": {do.address: self.market.credit(do.address) for do in self.dos},
            # contribution screening: each kept DO's score within the batch, each dropped DO's score
            "scores": {
                **{self._name(a): v["score"] for a, v in (batch or {}).get("screening", {}).get("dropped", {}).items()},
                **{self._name(a): v for a, v in (batch or {}).get("screening", {}).get("scores", {}).items()},
            },
            "kinds": {do.address: do.kind for do in self.dos},
            "proof_verified_by_snarkjs": verified,
            "proof_attempts": batch["attempts"] if batch else [],
            "batch_phases_s": {
                "validate": [v["seconds"] for v in st.get("validations", [])],
                **(batch["seconds"] if batch else {}),
            },
            "accounts": self.market.accounts(),
            "times_s": {**self.times, "total": round(time.monotonic() - self.t0, 3)},
            "workdir": str(self.root),
        }

    def _name(self, addr: str) -> str:
        for do in self.dos:
            if do.address.lower() == addr.lower():
                return do.address
        return addr

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Coordinator, servers (SIGTERM, then SIGKILL), anvil: everything this devnet started."""
        procs = ([self.coordinator_proc] if self.coordinator_proc else []) + list(self.server_procs.values())
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.coordinator_proc = None
        self.server_procs.clear()
        if self.anvil is not None:
            self.anvil.stop()
            self.anvil = None
