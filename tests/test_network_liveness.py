"""Liveness against a bad chain RPC: a real anvil (with `--state`) that is stalled (SIGSTOP) and
killed and restarted, in front of a real daemon over TLS whose registry is the event cache
(servers/registry.py EventRegistry). The daemon's public port must stay healthy with bounded
latency, registered DOs must still be accepted, unknown ones answered at once, never stored."""

from __future__ import annotations

import signal
import threading
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from network_fixtures import health_status, make_local_net

from omniplus.contracts import chain
from omniplus.contracts import rollup as market_mod
from omniplus.servers.client import TaskRef, build_request, send
from omniplus.servers.config import load_config, write_config
from omniplus.servers.daemon import Daemon, JsonLog
from omniplus.servers.signing import address_of

STUB_VERIFIER = bytes.fromhex("6001600c60003960016000f300")  # deploys a 1-byte contract (STOP)
HEALTH_BOUND = 1.0  # seconds: what "bounded" means here on a loaded 2-core machine


@pytest.fixture()
def chain_net(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from omniplus.circuits.params import CircuitParams

    node = chain.Anvil(accounts=8, state=tmp_path / "anvil-state.json").start()
    d = None
    try:
        w3 = node.w3
        receipt = chain.send_tx(w3, node.keys[0], to=None, data=STUB_VERIFIER, gas=200_000)
        task = market_mod.TaskParams.from_circuit(
            CircuitParams(batch=2, dims=4, bits=8, norm_bound=1000), reward=1, batches=1,
            deadline=int(time.time()) + 10**6,
        )
        committee = market_mod.Committee(tuple(chain.address_of(node.keys[i]) for i in (5, 6, 7)),
                                         (b"\1" * 32, b"\2" * 32, b"\3" * 32), 2)
        m = market_mod.RollupMarket.deploy(w3, node.keys[0], receipt["contractAddress"], task, committee=committee)
        ln = make_local_net(tmp_path)
        data = tomllib.loads(ln.configs[0].read_text())
        data["task"] = {"market": m.address, "chain_id": node.chain_id, "registry": "chain",
                        "rpc_url": node.rpc_url, "deploy_block": int(m.deploy_receipt["blockNumber"])}
        cfg = load_config(write_config(ln.configs[0], data))
        d = Daemon(cfg, log=JsonLog(1, stream=open(tmp_path / "d1.log", "a")))  # noqa: SIM115
        d.start()
        yield {"node": node, "market": m, "ln": ln, "daemon": d, "task": TaskRef.parse(m.address, node.chain_id),
               "log": tmp_path / "d1.log"}
    finally:
        if d is not None:
            d.stop(grace=1)
        node.stop()


def submit(net: dict[str, Any], key: str) -> Any:
    req = build_request(key, net["task"], 1, 3, 1, [1, 2], [3, 4])
    return send(net["ln"].public(1), 1, req, net["ln"].pins, timeout=10, retries=0)


def health_latency(net: dict[str, Any]) -> float:
    t = time.monotonic()
    assert health_status(net["ln"].public(1), 1, net["ln"].pins) == "SERVING"
    return time.monotonic() - t


def wait_known(net: dict[str, Any], key: str, timeout: float = 20) -> None:
    reg, who = net["daemon"].registry, address_of(key)
    deadline = time.monotonic() + timeout
    while who not in reg._known:
        assert time.monotonic() < deadline, reg.status()
        time.sleep(0.05)


def test_stalled_rpc_costs_requests_nothing(chain_net: dict[str, Any]) -> None:
    net = chain_net
    node, m, d = net["node"], net["market"], net["daemon"]
    keys = node.keys
    for k in keys[1:4]:
        m.register(k)
    wait_known(net, keys[3])
    assert submit(net, keys[1]).accepted
    node.proc.send_signal(signal.SIGSTOP)  # the RPC stalls: connections open, nothing answers
    try:
        time.sleep(0.5)
        worst = max(health_latency(net) for _ in range(10))
        assert worst < HEALTH_BOUND, worst
        t = time.monotonic()
        out = submit(net, keys[2])  # registered before the stall: answered from the cache
        assert out.accepted and time.monotonic() - t < HEALTH_BOUND, out
        t = time.monotonic()
        stranger = "0x" + "42" * 32
        out = submit(net, stranger)  # unknown: answered at once, never waits on the stalled RPC
        assert out.code == "UNAVAILABLE" and "not seen yet" in out.message, out
        assert time.monotonic() - t < HEALTH_BOUND
        # a flood of unregistered submissions while the RPC stalls: health stays bounded
        strangers = ["0x" + bytes([7, i % 256, i // 256]).hex().rjust(64, "1") for i in range(300)]
        reqs = [build_request(k, net["task"], 1, 3, 1, [1, 2], [3, 4]) for k in strangers]
        stop = threading.Event()
        lat: list[float] = []

        def prober() -> None:
            while not stop.is_set():
                lat.append(health_latency(net))
                time.sleep(0.02)

        th = threading.Thread(target=prober)
        th.start()
        with ThreadPoolExecutor(32) as pool:
            outs = list(pool.map(lambda r: send(net["ln"].public(1), 1, r, net["ln"].pins, timeout=10, retries=0),
                                 reqs))
        stop.set()
        th.join()
        assert all(not o.accepted and o.code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED") for o in outs)
        assert lat and max(lat) < HEALTH_BOUND, (max(lat), len(lat))
        assert d.registry.status()["error"] or d.registry.syncs >= 1
    finally:
        node.proc.send_signal(signal.SIGCONT)
    # the chain is back: the stranger is now refused as unregistered (and that answer is cached)
    deadline = time.monotonic() + 20
    while True:
        out = submit(net, stranger)
        if out.code == "PERMISSION_DENIED":
            break
        assert out.code == "UNAVAILABLE" and time.monotonic() < deadline, out
        time.sleep(0.2)
    assert "not registered" in out.message
    assert sorted(s.do_address for s in d.storage.submissions()) == sorted(address_of(k) for k in keys[1:3])


def test_chain_killed_and_restarted_with_state(chain_net: dict[str, Any]) -> None:
    net = chain_net
    node, m, d = net["node"], net["market"], net["daemon"]
    keys = node.keys
    m.register(keys[1])
    wait_known(net, keys[1])
    time.sleep(1.5)  # one periodic state dump (state_interval = 1 s)
    node.kill()  # SIGKILL: the RPC port is closed
    t = time.monotonic()
    out = submit(net, "0x" + "43" * 32)
    assert out.code == "UNAVAILABLE" and "not seen yet" in out.message, out
    assert time.monotonic() - t < HEALTH_BOUND
    assert submit(net, keys[1]).accepted  # known DOs do not need the chain
    assert max(health_latency(net) for _ in range(5)) < HEALTH_BOUND
    node.restart()  # same port, state loaded from the dump
    m2 = market_mod.RollupMarket.at(node.w3, m.address)
    assert m2.batches_submitted() == 0
    m2.register(keys[4])  # a registration after the restart is seen by the same daemon
    wait_known(net, keys[4])
    out = send(net["ln"].public(1), 1, build_request(keys[4], net["task"], 1, 3, 1, [1, 2], [3, 4]), net["ln"].pins)
    assert out.accepted, out
    assert "registry_rpc_failing" in net["log"].read_text() and "registry_recovered" in net["log"].read_text()
    assert d.storage.count_submissions() == 2
