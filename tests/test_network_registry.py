"""Registration is checked on the real contract: RollupMarket on anvil, read by ChainRegistry,
and a daemon configured with `registry = "chain"` refusing then accepting a DO."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from network_fixtures import make_local_net

from omniplus.contracts import chain  # noqa: E402
from omniplus.contracts import rollup as market_mod  # noqa: E402
from omniplus.servers.client import TaskRef, build_request, send
from omniplus.servers.config import write_config
from omniplus.servers.daemon import Daemon, JsonLog
from omniplus.servers.registry import NEGATIVE_TTL, ChainRegistry
from omniplus.servers.signing import address_of

# init code that deploys a 1-byte contract (STOP): RollupMarket only requires the verifier to have code
STUB_VERIFIER = bytes.fromhex("6001600c60003960016000f300")


@pytest.fixture(scope="module")
def market() -> Iterator[tuple[Any, Any]]:
    from omniplus.circuits.params import CircuitParams

    node = chain.Anvil(accounts=4).start()
    try:
        w3 = node.w3
        receipt = chain.send_tx(w3, node.keys[0], to=None, data=STUB_VERIFIER, gas=200_000)
        task = market_mod.TaskParams.from_circuit(
            CircuitParams(batch=2, dims=4, bits=8, norm_bound=1000),
            reward=1,
            batches=1,
            deadline=int(time.time()) + 10**6,
        )
        committee = market_mod.Committee(tuple(chain.address_of(node.keys[i])
                                               for i in (1, 2, 3)), (b"\1" * 32, b"\2" * 32, b"\3" * 32), 2)
        m = market_mod.RollupMarket.deploy(w3, node.keys[0], receipt["contractAddress"], task, committee=committee)
        yield node, m
    finally:
        node.stop()


def test_chain_registry_reads_the_contract(market: tuple[Any, Any]) -> None:
    node, m = market
    reg = ChainRegistry(node.rpc_url, m.address)
    do = address_of(node.keys[1])
    assert reg.payee(do) is None
    m.register(node.keys[1])
    assert reg.payee(do) == do


def test_daemon_checks_registration_on_chain(market: tuple[Any, Any], tmp_path: Path) -> None:
    node, m = market
    ln = make_local_net(tmp_path)
    data = tomllib.loads(ln.configs[0].read_text())
    data["task"] = {
        "market": m.address,
        "chain_id": node.chain_id,
        "registry": "chain",
        "rpc_url": node.rpc_url,
    }
    cfg_path = write_config(ln.configs[0], data)
    from omniplus.servers.config import load_config

    d = Daemon(load_config(cfg_path), log=JsonLog(1, stream=open(tmp_path / "d1.log", "a")))  # noqa: SIM115
    d.start()
    try:
        task = TaskRef.parse(m.address, node.chain_id)
        out = send(ln.public(1), 1, build_request(node.keys[2], task, 1, 3, 1, [1, 2], [3, 4]), ln.pins)
        assert out.code == "PERMISSION_DENIED" and "not registered" in out.message
        assert d.storage.count_submissions() == 0
        m.register(node.keys[2])
        time.sleep(NEGATIVE_TTL + 0.1)  # the refusal is cached briefly (servers/registry.py)
        out = send(ln.public(1), 1, build_request(node.keys[2], task, 1, 3, 1, [1, 2], [3, 4]), ln.pins)
        assert out.accepted, out
        sub = d.storage.submission(address_of(node.keys[2]))
        assert sub is not None and sub.payee == address_of(node.keys[2])
    finally:
        d.stop(grace=1)


def test_unreachable_chain_is_unavailable_not_unregistered(tmp_path: Path) -> None:
    ln = make_local_net(tmp_path)
    data = tomllib.loads(ln.configs[0].read_text())
    market = "0x" + "ab" * 20
    data["task"] = {"market": market, "chain_id": 31337, "registry": "chain", "rpc_url": "http://127.0.0.1:9"}
    from omniplus.servers.config import load_config

    d = Daemon(
        load_config(write_config(ln.configs[0], data)), log=JsonLog(1, stream=open(tmp_path / "l", "a"))
    )  # noqa: SIM115
    d.start()
    try:
        task = TaskRef.parse(market, 31337)
        key = "0x" + "11" * 32
        out = send(ln.public(1), 1, build_request(key, task, 1, 3, 1, [1, 2], [3, 4]), ln.pins)
        assert out.code == "UNAVAILABLE" and "registration" in out.message
        assert d.storage.count_submissions() == 0
    finally:
        d.stop(grace=1)
