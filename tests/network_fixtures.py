"""Helpers for the tests/test_network_*.py files: a local server network with real certificates."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omniplus.core.ports import free_ports
from omniplus.core.resources import ROOT
from omniplus.servers.certs import make_network
from omniplus.servers.config import load_config, server_name, write_config
from omniplus.servers.pinning import connect_pinned, fingerprint_of, pinned_certificate, pinned_channel
from omniplus.servers.signing import address_of

MARKET = "0x" + "ab" * 20
CHAIN_ID = 31337


def do_key(i: int) -> str:
    """A deterministic test DO key (not a real account)."""
    return "0x" + hashlib.sha256(f"omniplus test DO {i}".encode()).hexdigest()


def do_addr(i: int) -> str:
    return "0x" + address_of(do_key(i)).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalNet:
    root: Path
    certs: Path
    configs: list[Path]
    n: int
    t: int
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)

    def cfg(self, j: int) -> Any:
        return load_config(self.configs[j - 1])

    @property
    def pins(self) -> dict[int, bytes]:
        """{server j: sha256 of its certificate}: what clients pin (a task's committee would list them)."""
        return {j: fingerprint_of((self.certs / f"{server_name(j)}.pem").read_bytes()) for j in range(1, self.n + 1)}

    def client_tls(self, name: str = "coordinator") -> tuple[dict[int, bytes], bytes, bytes]:
        return self.pins, (self.certs / f"{name}.pem").read_bytes(), (self.certs / f"{name}.key").read_bytes()

    def public(self, j: int) -> str:
        return self.cfg(j).listen

    def peer(self, j: int) -> str:
        return self.cfg(j).peer_listen

    # processes
    def start(self, j: int, wait: bool = True) -> subprocess.Popen:
        log = open(self.root / f"server-{j}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "omniplus", "server", "--config", str(self.configs[j - 1])],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.procs[j] = proc
        if wait:
            self.wait_serving(j)
        return proc

    def wait_serving(self, j: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            proc = self.procs.get(j)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server {j} exited with {proc.returncode}:\n{self.log(j)}")
            try:
                if health_status(self.public(j), j, self.pins) == "SERVING":
                    return
            except grpc.RpcError as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"server {j} not serving after {timeout}s ({last}):\n{self.log(j)}")

    def kill(self, j: int) -> None:
        proc = self.procs.pop(j)
        proc.kill()
        proc.wait(10)

    def terminate(self, j: int, timeout: float = 20.0) -> int:
        proc = self.procs.pop(j)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def stop_all(self) -> None:
        for j in list(self.procs):
            self.kill(j)

    def log(self, j: int) -> str:
        p = self.root / f"server-{j}.log"
        return p.read_text(errors="replace") if p.exists() else ""


def make_local_net(
    root: Path,
    n: int = 3,
    t: int = 1,
    *,
    allow: list[str] | None = None,
    limits: dict[str, Any] | None = None,
    engine: str = "",
) -> LocalNet:
    """Certificates and one TOML config per server (dev allow-list registry), ports picked free."""
    certs = root / "certs"
    make_network(certs, n, clients=("coordinator", "outsider"))
    flat = free_ports(2 * n)
    ports = [(flat[2 * j], flat[2 * j + 1]) for j in range(n)]
    peers = [
        {"id": j, "address": f"127.0.0.1:{ports[j - 1][1]}", "public": f"127.0.0.1:{ports[j - 1][0]}",
         "cert": f"certs/{server_name(j)}.pem"}
        for j in range(1, n + 1)
    ]
    configs = []
    for j in range(1, n + 1):
        data: dict[str, Any] = {
            "id": j,
            "listen": f"127.0.0.1:{ports[j - 1][0]}",
            "peer_listen": f"127.0.0.1:{ports[j - 1][1]}",
            "storage": f"state/server-{j}",
            "threshold": t,
            "coordinator_certs": ["certs/coordinator.pem"],
            "task": {
                "market": MARKET,
                "chain_id": CHAIN_ID,
                "registry": "dev-allowlist",
                "allowlist": allow if allow is not None else [do_addr(i) for i in range(1, 6)],
            },
            "tls": {
                "cert": f"certs/{server_name(j)}.pem",
                "key": f"certs/{server_name(j)}.key",
            },
            "prover": {"backend": "native", "engine": engine},
            "limits": {"send_timeout": 5.0, "recv_timeout": 20.0, **(limits or {})},
            "peers": peers,
        }
        configs.append(write_config(root / f"server-{j}.toml", data))
    for j in range(1, n + 1):
        remember_pem((certs / f"{server_name(j)}.pem").read_bytes())
    return LocalNet(root, certs, configs, n, t)


def health_status(
    address: str, j: int, pins: dict[int, bytes], service: str = "", client: tuple[bytes, bytes] | None = None
) -> str:
    """grpc.health.v1 Check against server j (its certificate pinned; client = (cert, key))."""
    with connect_pinned(address, pins[j], client=(client[1], client[0]) if client else None) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def control_stub(
    address: str, j: int, pins: dict[int, bytes], cert: bytes | None, key: bytes | None
) -> tuple[grpc.Channel, Any]:
    """A Control stub on server j's peer port, trusting only its pinned certificate (read from the
    certificate file: a peer port serves no caller without a client certificate)."""
    from omniplus.proto.gen import omniplus_pb2_grpc

    pem = server_pem(address, j, pins)
    ch = pinned_channel(address, pem, client=(key, cert) if cert is not None and key is not None else None)
    return ch, omniplus_pb2_grpc.ControlStub(ch)


_PEMS: dict[bytes, bytes] = {}


def remember_pem(pem: bytes) -> None:
    _PEMS[fingerprint_of(pem)] = pem


def server_pem(address: str, j: int, pins: dict[int, bytes]) -> bytes:
    """Server j's pinned certificate: known from the certificate folder, else read from `address`."""
    if pins[j] in _PEMS:
        return _PEMS[pins[j]]
    return pinned_certificate(address, pins[j])


def pay_by_score(net: Any, payees: list[Any]) -> dict[str, int]:
    """What RollupMarket credits a devnet batch's payees (DoInfo list): the budget reward·n split by
    contribution score (prover/contribution.py), payees in slot order (sorted addresses)."""
    from omniplus.prover import contribution

    ordered = sorted(payees, key=lambda d: d.address.lower())
    amounts, _ = contribution.split_budget(net.opts.reward_wei * len(ordered),
                                           contribution.scores([d.row for d in ordered]))
    return {d.address: a for d, a in zip(ordered, amounts, strict=True)}
