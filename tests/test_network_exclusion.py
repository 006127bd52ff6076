"""A persistently deviating server is left out once named (issue 10, "retries without it where
t+1 remain"): anvil, 4 `omniplus server` processes (t = 1, so n = 2t+2) over mutual TLS, the
coordinator process, real proofs.

Server 4 runs test_network_malicious's engine in mode `b1-always`: every batch attempt it takes
part in, its round-1 B1 share is a wrong point. With two spare points the honest servers locate
it from the points alone and name it (t+1 accusers); the coordinator then runs every later round
on servers 1-3 only (2t+1 remain), which prove the batch, and it is paid on-chain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from network_fixtures import pay_by_score

from omniplus.core.resources import ROOT
from omniplus.devnet import Devnet, DevnetOptions
from omniplus.servers.channel import RECV_TIMEOUT

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    opts = DevnetOptions(servers=4, threshold=1, dos=3, invalid=0, seed=12, recv_timeout=RECV_TIMEOUT,
                         engines={4: "test_network_malicious:make_malicious_engine"}, pythonpath=(str(TESTS),))
    net = Devnet(tmp_path_factory.mktemp("exclusion"), opts, progress=lambda m: print(m, file=sys.stderr))
    try:
        net.start()
        net.submit_dos()
        yield net
    finally:
        net.stop()


def events(text: str, event: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if f'"event":"{event}"' in line]


def test_a_named_server_is_excluded_and_the_rest_prove_and_get_paid(devnet: Devnet) -> None:
    net = devnet
    (net.root / "malice").write_text("b1-always")
    proc = net.start_coordinator(batches=1, max_attempts=3, batch_wait=0.5)
    assert proc.wait(600) == 0, net.coordinator_log()[-6000:]
    log = net.coordinator_log()

    named = events(log, "server_named")
    assert any(e["server"] == 4 and e["kind"] == "batch" and len(e["accused_by"]) >= 2
               and 4 not in e["accused_by"] for e in named), named
    excluded = events(log, "server_excluded")
    assert len(excluded) == 1 and excluded[0]["server"] == 4 and excluded[0]["parties"] == [1, 2, 3], excluded
    assert excluded[0]["alert"] is True
    # the batch that landed was proven by servers 1-3 only
    done = [e for e in events(log, "round_done") if e.get("kind") == "batch"]
    assert done and done[-1]["parties"] == [1, 2, 3], done
    assert (net.root / "malice").read_text().strip() == "b1-always"  # it never stopped deviating

    assert net.market.batches_submitted() == 1
    honest = [d for d in net.dos if d.valid]
    pay = pay_by_score(net, honest)
    assert all(net.market.credit(d.address) == pay[d.address] > 0 for d in honest)

    # server 4 started no round after it was left out; servers 1-3 did, on {1, 2, 3}
    after = excluded[0]["ts"]
    s4 = events(net.server_log(4), "round_started")
    assert s4 and all(e["ts"] <= after for e in s4), s4
    for j in (1, 2, 3):
        later = [e for e in events(net.server_log(j), "round_started") if e["ts"] > after]
        assert later and all(e["parties"] == [1, 2, 3] for e in later), later
    deviated = [e for j in (1, 2, 3) for e in events(net.server_log(j), "peer_deviated")]
    assert deviated and all(e["culprit"] == 4 for e in deviated), deviated

    out = subprocess.run(
        [sys.executable, "-m", "omniplus", "coordinator", "--config", str(net.root / "coordinator.toml"),
         "--status"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "server 4 excluded from rounds (named)" in out.stdout, out.stdout
    assert "ALERT server 4 named as deviating by servers" in out.stdout, out.stdout
