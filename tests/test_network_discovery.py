"""Incremental discovery (servers/discovery.py, Control.Submissions): three in-process daemons over
mutual TLS, 1,000 silent DOs stored on each; after the first listing a coordinator pass costs one
call per server and returns nothing, one DO changing state returns exactly that DO, and a server
whose storage is replaced is listed again from the start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from network_fixtures import LocalNet, make_local_net

from omniplus.servers.config import load_config
from omniplus.servers.control import ControlClient, ServerRef
from omniplus.servers.daemon import Daemon, JsonLog
from omniplus.servers.discovery import Discovery
from omniplus.servers.wire import TlsFiles

SILENT = 1000


def fill(d: Daemon, count: int, start: int = 0) -> list[bytes]:
    addrs = [(start + i).to_bytes(20, "big") for i in range(count)]
    for a in addrs:
        d.storage.accept_submission(do_address=a, payee=a, server_index=d.cfg.id, n_servers=3, threshold=1,
                                    wires=[1], shares=b"\0" * 32, payload_hash=os.urandom(32),
                                    nonce=os.urandom(32), expiry=2**40, signature=b"\0" * 65)
    return addrs


@pytest.fixture()
def daemons(tmp_path: Path) -> Iterator[tuple[LocalNet, list[Daemon]]]:
    ln = make_local_net(tmp_path)
    ds = [Daemon(load_config(c), log=JsonLog(j, stream=open(tmp_path / f"d{j}.log", "a")))  # noqa: SIM115
          for j, c in enumerate(ln.configs, start=1)]
    for d in ds:
        d.start()
    try:
        yield ln, ds
    finally:
        for d in ds:
            d.stop(grace=1)


def client(ln: LocalNet) -> ControlClient:
    refs = [ServerRef(j, ln.peer(j), ln.public(j)) for j in (1, 2, 3)]
    pins, cert, key = ln.client_tls()
    return ControlClient(refs, TlsFiles(cert, key), [pins[j] for j in (1, 2, 3)])


def test_silent_dos_cost_nothing_per_pass(daemons: tuple[LocalNet, list[Daemon]]) -> None:
    ln, ds = daemons
    addrs = [fill(d, SILENT) for d in ds][0]
    cc = client(ln)
    disc = Discovery(cc, [1, 2, 3], page=400)
    try:
        assert len(disc.refresh()) == SILENT and disc.reachable == {1, 2, 3}
        assert disc.calls == 3 * 3  # 1,000 entries in pages of 400, per server
        calls = disc.calls
        assert disc.refresh() == set() and disc.calls == calls + 3  # one call per server, nothing new
        lone = addrs[417]
        for d in ds:
            d.storage.set_verdicts({lone: (True, "")})
        assert disc.refresh() == {"0x" + lone.hex()}
        assert {e.state for e in disc.states()["0x" + lone.hex()].values()} == {"valid"}
        # a server that is down does not count this pass; its entries come back with it
        ds[2].stop(grace=1)
        disc.refresh()
        assert disc.reachable == {1, 2} and set(disc.states()["0x" + lone.hex()]) == {1, 2}
    finally:
        cc.close()


def test_new_storage_is_listed_again(daemons: tuple[LocalNet, list[Daemon]], tmp_path: Path) -> None:
    ln, ds = daemons
    fill(ds[0], 5)
    cc = client(ln)
    disc = Discovery(cc, [1, 2, 3])
    try:
        assert len(disc.refresh()) == 5
        # server 1 comes back with an empty database (operator error, disk loss): new epoch
        cfg = ds[0].cfg
        ds[0].stop(grace=1)
        (cfg.storage / "server.sqlite3").unlink()
        for extra in ("server.sqlite3-wal", "server.sqlite3-shm"):
            (cfg.storage / extra).unlink(missing_ok=True)
        ds[0] = Daemon(cfg, log=JsonLog(1, stream=open(tmp_path / "d1b.log", "a")))  # noqa: SIM115
        ds[0].start()
        fill(ds[0], 2, start=100)
        changed = disc.refresh()
        assert len(changed) == 2 and disc.cursor[1] == 2
        assert sum(1 in per for per in disc.view.values()) == 2  # the old entries were forgotten
    finally:
        cc.close()
