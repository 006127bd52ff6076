"""Faults against a real network (issue 4, section 7): anvil, 3 `omniplus server` processes over
mutual TLS, the coordinator process, real proofs.

* A server that sends a wrong share: in round 2 (C has no spare share) the joint proof fails the
  coordinator's local verification; in round 1 the spare share exposes it (consistency). Either
  way nothing reaches the chain and the log names the batch.
* A server SIGKILLed mid-protocol: the coordinator aborts the round everywhere, waits, and once the
  server restarts from its stored state retries under a new session; no DO is dropped and no
  funds move until a proof verifies.

Server 3 runs `FaultyEngine` (below): the real engine whose outgoing round-1 or round-2 share is
corrupted when the file `fault-mode` in the devnet directory says so. One devnet serves all three
tests, in order: round-2 fault, round-1 fault, then no fault and a kill.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from network_fixtures import pay_by_score

from omniplus.devnet import Devnet, DevnetOptions
from omniplus.servers.channel import RECV_TIMEOUT
from omniplus.servers.mpc_engine import MpcEngine
from omniplus.servers.rounds import BatchRequest, RoundContext
from omniplus.servers.storage import StoredSubmission

TESTS = Path(__file__).resolve().parent
FAULT_FILE = "fault-mode"  # relative to the server's working directory (the devnet root)


class FaultyEngine(MpcEngine):
    """Server 3's round-1 A share or round-2 C share is a wrong point (doubled), committed to and
    revealed consistently: a wrong share, not a protocol deviation the echo checks would name."""

    def prove_batch(
        self, ctx: RoundContext, batch: BatchRequest, submissions: Sequence[StoredSubmission]
    ) -> dict[str, Any]:
        mode = Path(FAULT_FILE).read_text().strip() if Path(FAULT_FILE).exists() else "none"
        if mode not in ("round1", "round2"):
            return super().prove_batch(ctx, batch, submissions)
        from omniplus.prover.curve import g1_add
        from omniplus.prover.mpc import groth16

        ctx.log("test_fault_injected", mode=mode, session=ctx.session)
        saved = groth16.local_commitments, groth16.finish_c
        if mode == "round1":
            def bad_round1(*args: Any, **kwargs: Any) -> Any:
                A, B1, B2, LH = saved[0](*args, **kwargs)
                return g1_add(A, A), B1, B2, LH

            groth16.local_commitments = bad_round1
        else:
            def bad_round2(*args: Any, **kwargs: Any) -> Any:
                C = saved[1](*args, **kwargs)
                return g1_add(C, C)

            groth16.finish_c = bad_round2
        try:
            return super().prove_batch(ctx, batch, submissions)
        finally:
            groth16.local_commitments, groth16.finish_c = saved


def make_faulty_engine(config: Any) -> FaultyEngine:
    return FaultyEngine(config)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    opts = DevnetOptions(
        servers=3,
        dos=4,
        invalid=1,
        seed=7,
        recv_timeout=RECV_TIMEOUT,
        engines={3: "test_coordinator_faults:make_faulty_engine"},
        pythonpath=(str(TESTS),),
    )
    net = Devnet(tmp_path_factory.mktemp("faults"), opts, progress=lambda m: print(m, file=sys.stderr))
    try:
        net.start()
        net.submit_dos()
        yield net
    finally:
        net.stop()


def log_events(text: str, event: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if f'"event":"{event}"' in line:
            out.append(json.loads(line))
    return out


def nothing_paid(net: Devnet) -> None:
    assert net.market.batches_submitted() == 0
    assert all(net.market.credit(d.address) == 0 for d in net.dos)
    acc = net.market.accounts()
    assert acc["totalCredited"] == 0 and acc["balance"] == acc["deposit"]


@pytest.mark.parametrize("mode", ["round2", "round1"])
def test_a_wrong_share_is_never_sent(devnet: Devnet, mode: str) -> None:
    net = devnet
    (net.root / FAULT_FILE).write_text(mode)
    proc = net.start_coordinator(batches=1, max_attempts=2, batch_wait=0.5)
    assert proc.wait(180) == 1, net.coordinator_log()[-3000:]
    log = net.coordinator_log()
    failed = log_events(log, "batch_failed")
    assert failed and failed[-1]["batch"] == 0, log[-3000:]
    if mode == "round2":
        # C has no spare share: the proof is made, but every server verifies it locally before
        # signing (servers/settlement.py), so no server signs and nothing is sent
        assert "does not verify locally" in failed[-1]["error"], failed[-1]
        for j in (1, 2, 3):
            assert "not signing" in net.server_log(j)
    else:
        # round 1 has a spare share: every server stops before round 2
        assert "inconsistent" in failed[-1]["error"]
        assert log_events(net.server_log(1), "round_failed")
    state = net.coordinator_state()
    assert state["batches"][-1]["status"] == "failed" and not state["batches"][-1]["tx"]
    nothing_paid(net)


def test_killed_server_round_resumes_after_restart(devnet: Devnet) -> None:
    net = devnet
    (net.root / FAULT_FILE).write_text("none")
    seen = len(log_events(net.server_log(2), "round_started"))
    n_events = len(net.coordinator_state()["events"])
    net.start_coordinator(batches=1, batch_wait=0.5)
    # kill server 2 as soon as it starts proving the batch
    deadline = time.monotonic() + 120
    while True:
        started = log_events(net.server_log(2), "round_started")[seen:]
        batch_rounds = [e for e in started if e["kind"] == "batch"]
        if batch_rounds:
            break
        assert time.monotonic() < deadline, net.coordinator_log()[-3000:]
        time.sleep(0.02)
    net.kill_server(2)
    killed_session = batch_rounds[0]["session"]
    # the coordinator notices and aborts the attempt; nothing moves on-chain meanwhile
    while not any(e["what"] == "batch 0" for e in net.coordinator_state()["events"][n_events:]):
        assert time.monotonic() < deadline, net.coordinator_log()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)
    nothing_paid(net)
    net.start_server(2)
    batch = net.wait_batch(timeout=180)
    restarted = log_events(net.server_log(2), "started")[-1]
    assert killed_session in restarted["interrupted_rounds"]
    honest = sorted(d.address for d in net.dos if d.valid)
    assert sorted(batch["payees"]) == honest  # no DO dropped
    failures = [e["error"] for e in net.coordinator_state()["events"][n_events:]]
    assert failures and killed_session in failures[0], failures
    assert batch["verified_locally"] and net.market.batches_submitted() == 1
    pay = pay_by_score(net, [d for d in net.dos if d.valid])
    assert all(net.market.credit(a) == pay[a] > 0 for a in honest)
