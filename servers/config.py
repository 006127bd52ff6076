"""Server configuration (TOML), validated once at start-up so a daemon never runs half-configured.

Example (paths are relative to the config file)::

    id = 1                          # this server's Shamir x-coordinate, 1..n
    listen = "127.0.0.1:7001"       # public port: DO Submit/Status, server-side TLS
    peer_listen = "127.0.0.1:7101"  # peer port: Peer + Control, mutual TLS
    storage = "state/server-1"
    threshold = 1
    coordinator_certs = ["certs/coordinator.pem"]  # pinned certificates allowed to call Control
    signing_keyfile = "keys/server-1.key"  # this server's Ethereum key: it signs batch digests

    [task]
    rpc_url = "http://127.0.0.1:8545"
    market = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    chain_id = 31337
    registry = "chain"              # or "dev-allowlist" (development/tests only) with allowlist = [...]
    min_batch = 2                   # N_min: smaller batches are never opened (checked on-chain too)
    min_score = 0                   # contribution screening: DOs scoring <= this are dropped (the task's
                                    # minScore() on-chain wins when the contract has one)
    canonical = true                # at start: refuse a non-canonical market/verifier/parameters
    deploy_block = 12               # optional: first block the registry scans for Registered events

    [tls]                           # this operator's own identity (`omniplus certs --name server-1`)
    cert = "certs/server-1.pem"
    key = "certs/server-1.key"

    [prover]
    backend = "native"
    engine = "omniplus.servers.mpc_engine:make_engine"   # module:attribute of a RoundEngine factory
    setup = "setup"

    [limits]                        # all optional
    max_submit_bytes = 16777216
    max_peer_bytes = 67108864

    [[peers]]                       # every server of the network, this one included
    id = 1
    address = "127.0.0.1:7101"      # its peer port
    public = "127.0.0.1:7001"       # its public port (for DO clients)
    cert = "certs/server-1.pem"     # its self-signed certificate (public; exchanged by the operators)
    signer = "0x..."                # its batch-signing address, as listed in the task's committee
    fingerprint = "0x..."           # optional: sha256 of that certificate (DER), as listed in the task

Peers are identified by the sha256 of the certificate they present, checked against `cert`
(whose sha256 must be the task's committee entry, checked at start); nobody holds a CA key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniplus.core.errors import InputError

REGISTRY_KINDS = ("chain", "dev-allowlist")


def server_name(index: int) -> str:
    """The certificate common name of server `index`; peers are identified by it on the wire."""
    return f"server-{index}"


@dataclass(frozen=True)
class PeerConfig:
    id: int
    address: str  # peer port (mTLS)
    public: str = ""  # public port, for DO clients
    name: str = ""  # certificate name; defaults to server-<id>
    cert: Path | None = None  # its pinned self-signed certificate (PEM)
    signer: str = ""  # batch-signing address listed in the task's committee
    fingerprint: str = ""  # 0x sha256 of its TLS certificate (DER), listed in the task

    @property
    def cert_name(self) -> str:
        return self.name or server_name(self.id)


@dataclass(frozen=True)
class TaskConfig:
    market: str  # 0x-prefixed contract address
    rpc_url: str = ""
    chain_id: int = 31337
    registry: str = "chain"
    allowlist: tuple[str, ...] = ()
    registry_call: str = "registered(address)->bool"  # see servers/registry.py ChainRegistry
    min_batch: int = 2  # N_min
    min_score: int = 0  # contribution screening threshold when the task on-chain has none (mpc_engine)
    canonical: bool = True  # check market, verifier and parameters on-chain at start
    deploy_block: int | None = None  # where the registry starts scanning (None: ask the contract, else 0)

    @property
    def market_bytes(self) -> bytes:
        return bytes.fromhex(self.market[2:])


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ProverConfig:
    backend: str = "native"
    engine: str = ""  # module:attribute; empty = no MPC rounds (submissions only)
    setup: Path | None = None


@dataclass(frozen=True)
class Limits:
    """Explicit bounds: every byte a peer or DO can make us buffer is counted against one of these."""

    max_submit_bytes: int = 16 * 1024 * 1024
    max_peer_bytes: int = 64 * 1024 * 1024
    max_wires: int = 1 << 20
    max_buffered_bytes: int = 512 * 1024 * 1024  # all pending inbound MPC messages together
    max_expiry_seconds: int = 7 * 24 * 3600  # furthest a DO may set its submission's expiry
    send_timeout: float = 10.0
    recv_timeout: float = 20.0  # servers.channel.RECV_TIMEOUT


@dataclass(frozen=True)
class ServerConfig:
    id: int
    listen: str
    peer_listen: str
    storage: Path
    task: TaskConfig
    tls: TlsConfig
    peers: tuple[PeerConfig, ...]
    threshold: int = 1
    prover: ProverConfig = field(default_factory=ProverConfig)
    limits: Limits = field(default_factory=Limits)
    coordinator_certs: tuple[Path, ...] = ()  # pinned certificates allowed to call Control
    name: str = ""
    log_level: str = "info"
    signing_key: str = ""  # hex; signs batch digests (contracts/committee.py)

    @property
    def n(self) -> int:
        return len(self.peers)

    @property
    def cert_name(self) -> str:
        return self.name or server_name(self.id)

    def peer(self, index: int) -> PeerConfig:
        for p in self.peers:
            if p.id == index:
                return p
        raise InputError(f"no peer with id {index} in the configuration")


def _req(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise InputError(f"{where}: missing required key {key!r}")
    return _typed(d[key], key, typ, where)


def _typed(value: Any, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) and typ is not bool:
        raise InputError(f"{where}: {key!r} must be {typ}, not a boolean")
    if not isinstance(value, typ):
        raise InputError(f"{where}: {key!r} must be {getattr(typ, '__name__', typ)}, got {value!r}")
    return value


def _address(value: str, where: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{where}: {value!r} is not HOST:PORT")
    return value


def _eth_address(value: str, where: str) -> str:
    if not (isinstance(value, str) and value.startswith("0x") and len(value) == 42):
        raise InputError(f"{where}: {value!r} is not a 0x-prefixed 20-byte address")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise InputError(f"{where}: {value!r} is not hex") from None
    return value


def parse_config(data: dict[str, Any], base: Path) -> ServerConfig:
    """Build a ServerConfig from parsed TOML; relative paths are resolved against `base`."""
    where = "config"

    def path(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else (base / q).resolve()

    sid = _req(data, "id", int, where)
    t = _typed(data.get("threshold", 1), "threshold", int, where)
    task_d = _req(data, "task", dict, where)
    registry = _typed(task_d.get("registry", "chain"), "registry", str, "[task]")
    if registry not in REGISTRY_KINDS:
        raise InputError(f"[task]: registry must be one of {REGISTRY_KINDS}, got {registry!r}")
    allow = tuple(
        _eth_address(a, "[task] allowlist").lower()
        for a in _typed(task_d.get("allowlist", []), "allowlist", list, "[task]")
    )
    task = TaskConfig(
        market=_eth_address(_req(task_d, "market", str, "[task]"), "[task] market"),
        rpc_url=_typed(task_d.get("rpc_url", ""), "rpc_url", str, "[task]"),
        chain_id=_typed(task_d.get("chain_id", 31337), "chain_id", int, "[task]"),
        registry=registry,
        allowlist=allow,
        registry_call=_typed(
            task_d.get("registry_call", "registered(address)->bool"), "registry_call", str, "[task]"
        ),
        min_batch=_typed(task_d.get("min_batch", 2), "min_batch", int, "[task]"),
        min_score=_typed(task_d.get("min_score", 0), "min_score", int, "[task]"),
        canonical=_typed(task_d.get("canonical", True), "canonical", bool, "[task]"),
        deploy_block=(
            _typed(task_d["deploy_block"], "deploy_block", int, "[task]") if "deploy_block" in task_d else None
        ),
    )
    if task.min_batch < 2:
        raise InputError(f"[task]: min_batch must be at least 2, got {task.min_batch}")
    if registry == "chain" and not task.rpc_url:
        raise InputError("[task]: registry = 'chain' needs rpc_url")
    tls_d = _req(data, "tls", dict, where)
    if "ca" in tls_d:
        raise InputError("[tls]: 'ca' is gone: servers pin each other's certificates; list each peer's "
                         "`cert` under [[peers]] and the coordinator's under coordinator_certs")
    tls = TlsConfig(
        cert=path(_req(tls_d, "cert", str, "[tls]")),
        key=path(_req(tls_d, "key", str, "[tls]")),
    )
    prover_d = _typed(data.get("prover", {}), "prover", dict, where)
    setup = prover_d.get("setup")
    prover = ProverConfig(
        backend=_typed(prover_d.get("backend", "native"), "backend", str, "[prover]"),
        engine=_typed(prover_d.get("engine", ""), "engine", str, "[prover]"),
        setup=path(_typed(setup, "setup", str, "[prover]")) if setup is not None else None,
    )
    limits_d = _typed(data.get("limits", {}), "limits", dict, where)
    defaults = Limits()
    lim: dict[str, Any] = {}
    for key, default in defaults.__dict__.items():
        if key in limits_d:
            typ = float if isinstance(default, float) else int
            value = limits_d[key]
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            value = _typed(value, key, typ, "[limits]")
            if value <= 0:
                raise InputError(f"[limits]: {key} must be positive")
            lim[key] = value
    unknown = set(limits_d) - set(defaults.__dict__)
    if unknown:
        raise InputError(f"[limits]: unknown key(s) {sorted(unknown)}")
    peers = []
    for i, p in enumerate(_typed(data.get("peers", []), "peers", list, where)):
        w = f"[[peers]] #{i + 1}"
        peers.append(
            PeerConfig(
                id=_req(p, "id", int, w),
                address=_address(_req(p, "address", str, w), w),
                public=_address(p["public"], w) if "public" in p else "",
                name=_typed(p.get("name", ""), "name", str, w),
                cert=path(_req(p, "cert", str, w)),
                signer=_eth_address(p["signer"], w) if "signer" in p else "",
                fingerprint=_typed(p.get("fingerprint", ""), "fingerprint", str, w),
            )
        )
    ids = [p.id for p in peers]
    if len(set(ids)) != len(ids):
        raise InputError("[[peers]]: duplicate id")
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise InputError(f"[[peers]]: ids must be 1..n, got {sorted(ids)}")
    if sid not in ids:
        raise InputError(f"config: id {sid} is not among [[peers]] (list every server, this one included)")
    if t < 1 or len(peers) < 2 * t + 1:
        raise InputError(f"config: need n >= 2t+1 servers, got n={len(peers)}, t={t}")
    cfg = ServerConfig(
        id=sid,
        listen=_address(_req(data, "listen", str, where), "listen"),
        peer_listen=_address(_req(data, "peer_listen", str, where), "peer_listen"),
        storage=path(_req(data, "storage", str, where)),
        task=task,
        tls=tls,
        peers=tuple(sorted(peers, key=lambda p: p.id)),
        threshold=t,
        prover=prover,
        limits=Limits(**lim),
        coordinator_certs=tuple(
            path(_typed(c, "coordinator_certs", str, where))
            for c in _typed(data.get("coordinator_certs", []), "coordinator_certs", list, where)
        ),
        name=_typed(data.get("name", ""), "name", str, where),
        log_level=_typed(data.get("log_level", "info"), "log_level", str, where),
        signing_key=_signing_key(data, path),
    )
    return cfg


def _signing_key(data: dict[str, Any], path: Any) -> str:
    """`signing_key = "0x…"` or `signing_keyfile = "path"` (preferred: keeps the key out of the config)."""
    if "signing_key" in data and "signing_keyfile" in data:
        raise InputError("config: give signing_key or signing_keyfile, not both")
    if "signing_keyfile" in data:
        p = path(_typed(data["signing_keyfile"], "signing_keyfile", str, "config"))
        try:
            key = p.read_text().strip()
        except OSError as exc:
            raise InputError(f"config: signing_keyfile {p}: {exc.strerror}") from None
    else:
        key = _typed(data.get("signing_key", ""), "signing_key", str, "config")
    if key:
        text = key.removeprefix("0x")
        if len(text) != 64:
            raise InputError("config: the signing key must be 32 bytes of hex")
        try:
            bytes.fromhex(text)
        except ValueError:
            raise InputError("config: the signing key is not hex") from None
    return key


def load_config(path: str | Path) -> ServerConfig:
    """Read and validate a server's TOML configuration."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"config file {p} does not exist") from None
    except OSError as exc:
        raise InputError(f"config file {p}: cannot read ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"config file {p}: not UTF-8 text (byte {exc.start})") from None
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise InputError(f"config file {p}: not valid TOML ({str(exc).splitlines()[0][:120]})") from None
    try:
        return parse_config(data, p.resolve().parent)
    except InputError as exc:  # name the file: a devnet has one config per server
        raise InputError(f"config file {p}: {str(exc).removeprefix('config: ')}") from None


def write_config(path: str | Path, data: dict[str, Any]) -> Path:
    """Write a config dict as TOML (devnet and tests); validated by parsing it back."""
    import tomli_w

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(tomli_w.dumps(data))
    load_config(p)
    return p
