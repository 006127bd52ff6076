"""A batch that cannot be proven (issue 10): anvil, 3 `omniplus server` processes over mutual TLS,
the coordinator process, real proofs; server 3 runs test_network_malicious.MaliciousEngine.

1. `pass`: an invalid DO colludes with server 3, which shifts its validity point so that every
   server accepts the DO (undetectable at n = 2t+1). The batch round re-checks the agreed set
   under a fresh coin before anything is opened, leaves the DO out, and the other three are
   proven and paid; the invalid DO is in no opened aggregate on any server.
2. `c3`: server 3 sends a wrong round-2 C share in three attempts in a row (not locatable at
   n = 2t+1). Every retry opens the same pinned aggregate; after MAX_FAILED_PROOFS failed proofs
   every server gives the set up, the coordinator raises an alert and proves a fresh, disjoint
   set at the same index, which is paid. The given-up DOs are never batched again.
3. `pass2`: server 3 lets a colluding invalid DO through validation AND the re-check, then turns
   honest. The batch's witness is invalid, so every proof fails even with honest servers (the
   stuck market of issue 10, item 2): after three failed proofs the set is given up and the next
   DOs are paid at that index.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from network_fixtures import pay_by_score
from test_network_malicious import COLLUDER, MALICE, events

from omniplus.core.resources import ROOT
from omniplus.devnet import Devnet, DevnetOptions
from omniplus.prover.mpc.validation import REASON_INVALID
from omniplus.servers import batch_policy
from omniplus.servers.channel import RECV_TIMEOUT
from omniplus.servers.storage import DB_NAME

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    opts = DevnetOptions(
        servers=3,
        dos=16,
        invalid=2,
        seed=23,
        batches=4,
        point_shares=False,
        recv_timeout=RECV_TIMEOUT,
        engines={3: "test_network_malicious:make_malicious_engine"},
        pythonpath=(str(TESTS),),
    )
    net = Devnet(tmp_path_factory.mktemp("failed-batch"), opts, progress=lambda m: print(m, file=sys.stderr))
    try:
        net.start()
        net.make_dos()
        yield net
    finally:
        net.stop()


def opened(net: Devnet, j: int) -> dict[str, int]:
    """Server j's opened_dos table (read-only: the daemon holds the state directory's lock)."""
    db = sqlite3.connect(f"file:{net.root / 'state' / f'server-{j}' / DB_NAME}?mode=ro", uri=True)
    try:
        return {"0x" + bytes(a).hex(): int(b) for a, b in db.execute("SELECT do_address, batch_index FROM opened_dos")}
    finally:
        db.close()


def submit(net: Devnet, dos: list[Any]) -> None:
    everyone = net.dos
    net.dos = dos
    try:
        net.submit_dos()
    finally:
        net.dos = everyone


def test_an_invalid_do_let_through_is_left_out_before_the_opening(devnet: Devnet) -> None:
    net = devnet
    bad = next(d for d in net.dos if not d.valid)
    honest = [d for d in net.dos if d.valid][:3]
    (net.root / COLLUDER).write_text(json.dumps({"address": bad.address, "row": bad.row}))
    (net.root / MALICE).write_text("pass")
    submit(net, honest + [bad])
    proc = net.start_coordinator(batches=1, max_attempts=3, batch_wait=0.5)
    assert proc.wait(300) == 0, net.coordinator_log()[-4000:]
    # validation accepted all four (the collusion worked) ...
    assert any(e["mode"] == "pass" for e in events(net.server_log(3), "test_malice"))
    first = events(net.server_log(1), "validation_opened")[0]
    assert first["dos"] == 4 and first["rejected"] == 0, first
    # ... and the batch's re-check left the invalid DO out before its aggregate existed
    for j in (1, 2, 3):
        rechecked = events(net.server_log(j), "batch_recheck_failed")
        assert rechecked and rechecked[0]["dos"] == {bad.address.lower(): REASON_INVALID}, net.server_log(j)[-3000:]
        assert bad.address.lower() not in opened(net, j)
        assert {d.address.lower() for d in honest} <= set(opened(net, j))
    assert net.market.batches_submitted() == 1
    pay = pay_by_score(net, honest)
    assert all(net.market.credit(d.address) == pay[d.address] > 0 for d in honest)
    assert net.market.credit(bad.address) == 0
    state = json.loads((net.root / "coordinator-state" / "state.json").read_text())
    assert state["rejected"][bad.address.lower()] == REASON_INVALID


def test_a_set_that_never_proves_is_given_up_and_the_index_takes_a_fresh_set(devnet: Devnet) -> None:
    net = devnet
    assert net.market.batches_submitted() == 1, "runs after the first test"
    fresh = [d for d in net.dos if d.valid][3:9]
    assert len(fresh) == 6
    (net.root / MALICE).write_text("c3")
    submit(net, fresh)
    proc = net.start_coordinator(batches=1, max_attempts=3, batch_wait=0.5)
    assert proc.wait(600) == 0, net.coordinator_log()[-4000:]
    assert (net.root / MALICE).read_text().strip() == "none"  # three deviations were made
    first_four = sorted(d.address.lower() for d in fresh)[:4]
    for j in (1, 2, 3):
        log = net.server_log(j)
        failed = [e["failures"] for e in events(log, "batch_proof_failed") if e["batch"] == 1]
        assert failed == [1, 2, 3], log[-3000:]
        pinned = [e for e in events(log, "batch_pinned") if e["batch"] == 1]
        assert len(pinned) >= 2  # every retry opened the same, pinned aggregate
        given = [e for e in events(log, "batch_given_up") if e["batch"] == 1]
        assert len(given) == 1 and sorted(given[0]["dos"]) == first_four
        assert {a: i for a, i in opened(net, j).items() if a in first_four} == {a: -2 for a in first_four}
    alerts = [e for e in events(net.coordinator_log(), "batch_given_up") if e.get("alert")]
    assert alerts and sorted(d.lower() for d in alerts[0]["dos"]) == first_four
    assert net.market.batches_submitted() == 2
    rest = [d for d in fresh if d.address.lower() not in first_four]
    pay = pay_by_score(net, rest)
    assert all(net.market.credit(d.address) == pay[d.address] > 0 for d in rest)
    assert all(net.market.credit(a) == 0 for a in first_four)
    out = subprocess.run(
        [sys.executable, "-m", "omniplus", "coordinator", "--config", str(net.root / "coordinator.toml"),
         "--status"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "ALERT batch 1 given up after failed proofs" in out.stdout, out.stdout
    for a in first_four:
        assert f"{a}: {batch_policy.BURNED_PREFIX}" in out.stdout, out.stdout


def test_an_invalid_do_let_through_twice_costs_one_batch_not_the_market(devnet: Devnet) -> None:
    from omniplus.prover import contribution

    net = devnet
    assert net.market.batches_submitted() == 2, "runs after the first two tests"
    honest = [d for d in net.dos if d.valid][9:14]
    bad = [d for d in net.dos if not d.valid][1]
    lim = 1 << (net.params.bits - 1)
    # an update along the honest direction but three times too long: over the norm bound, and with
    # a positive contribution score, so screening would keep it (only the proof can catch it)
    bad.row = [max(-lim, min(lim - 1, 3 * x)) for x in honest[0].row]
    assert sum(x * x for x in bad.row) > net.params.norm_bound
    first = honest[:3] + [bad]
    assert min(contribution.scores([d.row for d in first])) > 0
    (net.root / COLLUDER).write_text(json.dumps({"address": bad.address, "row": bad.row}))
    (net.root / MALICE).write_text("pass2")
    submit(net, first)
    proc = net.start_coordinator(batches=1, max_attempts=3, batch_wait=0.5)
    try:
        import time

        deadline = time.monotonic() + 300
        while not [e for e in events(net.coordinator_log(), "batch_given_up") if e.get("batch") == 2]:
            assert proc.poll() is None and time.monotonic() < deadline, net.coordinator_log()[-4000:]
            time.sleep(0.5)
        assert (net.root / MALICE).read_text().strip() == "none"  # both deviations were made
        submit(net, honest[3:])  # two more DOs for the freed index
        assert proc.wait(300) == 0, net.coordinator_log()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    gave_up = sorted(d.address.lower() for d in first)
    for j in (1, 2, 3):
        log = net.server_log(j)
        assert not [e for e in events(log, "batch_recheck_failed") if e["batch"] == 2]  # the re-check was fooled
        assert [e["failures"] for e in events(log, "batch_proof_failed") if e["batch"] == 2] == [1, 2, 3]
        given = [e for e in events(log, "batch_given_up") if e["batch"] == 2]
        assert len(given) == 1 and sorted(given[0]["dos"]) == gave_up
    assert net.market.batches_submitted() == 3
    pay = pay_by_score(net, honest[3:])
    assert all(net.market.credit(d.address) == pay[d.address] > 0 for d in honest[3:])
    assert all(net.market.credit(d.address) == 0 for d in first)
