"""The RoundEngine hook: three daemons (in-process, real gRPC over TLS) run a validation round
that the coordinator starts over Control; the engine talks through its Channel. Uses a toy
engine defined here (the real one is the protocol's); checks verdict storage, Status, abort,
and a restart marking a running round interrupted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from network_fixtures import CHAIN_ID, MARKET, LocalNet, control_stub, do_addr, do_key, make_local_net

from omniplus.proto.gen import omniplus_pb2 as pb  # noqa: E402
from omniplus.prover.mpc.opening import open_scalars
from omniplus.prover.shamir import share
from omniplus.servers.client import TaskRef, build_request, send, status
from omniplus.servers.config import ServerConfig
from omniplus.servers.daemon import Daemon, JsonLog
from omniplus.servers.rounds import BatchRequest, RoundContext, Verdict
from omniplus.servers.storage import StoredSubmission

TASK = TaskRef.parse(MARKET, CHAIN_ID)
WIRES = [7, 8, 9]
BOUND = 100


class ToyEngine:
    """Test engine (NOT the protocol): a DO is valid iff its first wire opens below BOUND.
    Opening a DO's wire would leak it; the real engine opens masked checks (PROTOCOL.md step 2)."""

    gate = threading.Event()  # tests hold a round open with it

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def expected_wires(self) -> Sequence[int] | None:
        return WIRES

    def validate(self, ctx: RoundContext, submissions: Sequence[StoredSubmission]) -> dict[bytes, Verdict]:
        if ctx.session.startswith("hold"):
            ToyEngine.gate.wait(30)
            ctx.channel.recv(1 if ctx.party != 1 else 2, 0, "never")  # blocks until aborted
        firsts = [s.share_values()[0] for s in submissions]
        opened = open_scalars(ctx.channel, "first-wires", firsts, degree=ctx.t)
        ctx.put("opened", repr(opened).encode())
        return {
            s.do_address: Verdict(v < BOUND, "" if v < BOUND else f"first wire {v} >= {BOUND}")
            for s, v in zip(submissions, opened, strict=True)
        }

    def prove_batch(
        self, ctx: RoundContext, batch: BatchRequest, submissions: Sequence[StoredSubmission]
    ) -> dict[str, Any]:
        total = open_scalars(ctx.channel, "sum", [sum(s.share_values()[0] for s in submissions)], ctx.t)
        return {"batch": batch.batch_index, "sum": total[0]}


def make_engine(config: ServerConfig) -> ToyEngine:
    return ToyEngine(config)


@pytest.fixture()
def net(tmp_path: Path) -> Iterator[tuple[LocalNet, dict[int, Daemon]]]:
    ln = make_local_net(tmp_path, engine="test_network_rounds:make_engine")
    daemons = {}
    for j in range(1, 4):
        d = Daemon(ln.cfg(j), log=JsonLog(j, stream=open(tmp_path / f"d{j}.log", "a")))  # noqa: SIM115
        d.start()
        daemons[j] = d
    yield ln, daemons
    for d in daemons.values():
        d.stop(grace=1)


def submit(ln: LocalNet, i: int, first: int) -> None:
    values = [first, 2, 3]
    sharings = [share(v, 1, 3) for v in values]
    per = {j: [s[j - 1] for s in sharings] for j in range(1, 4)}
    for j in range(1, 4):
        out = send(ln.public(j), j, build_request(do_key(i), TASK, j, 3, 1, WIRES, per[j]), ln.pins)
        assert out.accepted, out


def ctl(ln: LocalNet, j: int) -> tuple[grpc.Channel, Any]:
    _, cert, key = ln.client_tls("coordinator")
    return control_stub(ln.peer(j), j, ln.pins, cert, key)


def wait_state(ln: LocalNet, session: str, want: str, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        replies = []
        for j in range(1, 4):
            ch, stub = ctl(ln, j)
            with ch:
                replies.append(stub.RoundStatus(pb.RoundStatusRequest(session=session), timeout=5))
        if all(r.state == want for r in replies) or time.monotonic() > deadline:
            return replies
        time.sleep(0.1)


def test_validation_round_over_grpc(net: tuple[LocalNet, dict[int, Daemon]]) -> None:
    ln, daemons = net
    submit(ln, 1, 42)
    submit(ln, 2, 500)
    submit(ln, 4, 7)
    # the engine's expected wire list is enforced at Submit
    bad = send(ln.public(1), 1, build_request(do_key(3), TASK, 1, 3, 1, [7, 8], [1, 2]), ln.pins)
    assert bad.code == "INVALID_ARGUMENT" and "wrong block length" in bad.message
    for j in range(1, 4):
        ch, stub = ctl(ln, j)
        with ch:
            assert stub.StartValidation(pb.StartValidationRequest(session="v1"), timeout=5).state == "running"
    replies = wait_state(ln, "v1", "done")
    assert [r.state for r in replies] == ["done"] * 3, [r.error for r in replies]
    assert replies[0].result == replies[1].result == replies[2].result
    for j in range(1, 4):
        st1 = status(ln.public(j), j, TASK, do_key(1), ln.pins)
        st2 = status(ln.public(j), j, TASK, do_key(2), ln.pins)
        assert (st1.state, st2.state) == ("valid", "invalid")
        assert "500" in st2.reason
        assert sorted(json.loads(daemons[j].storage.get_data("v1", "opened"))) == [7, 42, 500]
    # a session id is used once
    ch, stub = ctl(ln, 1)
    with ch, pytest.raises(grpc.RpcError) as err:
        stub.StartValidation(pb.StartValidationRequest(session="v1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # a batch only takes N_min..N valid DOs (servers/batch_policy.py)
    for dos, code in [([2, 1], grpc.StatusCode.FAILED_PRECONDITION), ([9, 1], grpc.StatusCode.FAILED_PRECONDITION),
                      ([1], grpc.StatusCode.FAILED_PRECONDITION)]:
        ch, stub = ctl(ln, 1)
        addrs = [bytes.fromhex(do_addr(i)[2:]) for i in dos]
        with ch, pytest.raises(grpc.RpcError) as err:
            stub.StartBatch(pb.StartBatchRequest(session="b0", batch_index=0, do_addresses=addrs), timeout=5)
        assert err.value.code() == code
    for j in range(1, 4):
        ch, stub = ctl(ln, j)
        with ch:
            stub.StartBatch(
                pb.StartBatchRequest(
                    session="b1", batch_index=0,
                    do_addresses=[bytes.fromhex(do_addr(1)[2:]), bytes.fromhex(do_addr(4)[2:])],
                ),
                timeout=5,
            )
    replies = wait_state(ln, "b1", "done")
    assert [r.state for r in replies] == ["done"] * 3
    assert b'"sum":49' in replies[0].result
    # the agreed set is on disk; the same index with another set, or DO 1 at another index, is refused
    for index, dos in [(0, [1]), (0, [4, 1]), (1, [1, 4])]:
        ch, stub = ctl(ln, 3)
        addrs = [bytes.fromhex(do_addr(i)[2:]) for i in dos]
        with ch, pytest.raises(grpc.RpcError) as err:
            stub.StartBatch(pb.StartBatchRequest(session=f"again-{index}-{dos}", batch_index=index,
                                                 do_addresses=addrs), timeout=5)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert status(ln.public(2), 2, TASK, do_key(1), ln.pins).state == "batched"


def test_abort_and_restart(net: tuple[LocalNet, dict[int, Daemon]]) -> None:
    ln, daemons = net
    submit(ln, 1, 1)
    ToyEngine.gate.clear()
    for j in range(1, 4):
        ch, stub = ctl(ln, j)
        with ch:
            stub.StartValidation(pb.StartValidationRequest(session="hold-1"), timeout=5)
    ToyEngine.gate.set()
    ch, stub = ctl(ln, 1)
    with ch:
        assert stub.Abort(pb.AbortRequest(session="hold-1", reason="test"), timeout=5).state == "aborted"
        time.sleep(0.3)
        assert stub.RoundStatus(pb.RoundStatusRequest(session="hold-1"), timeout=5).state == "aborted"
    # server 2 stops mid-round and comes back: the round is recorded as interrupted, the shares remain
    daemons[2].stop(grace=1)
    d2 = Daemon(ln.cfg(2), log=JsonLog(2, stream=open(ln.root / "d2b.log", "a")))  # noqa: SIM115
    d2.start()
    daemons[2] = d2
    assert d2.storage.round("hold-1").state == "interrupted"
    assert status(ln.public(2), 2, TASK, do_key(1), ln.pins).state == "accepted"
    # the coordinator retries with a new session and everyone completes it
    daemons[3].abort_round("hold-1", "retrying")
    for j in range(1, 4):
        ch, stub = ctl(ln, j)
        with ch:
            stub.StartValidation(pb.StartValidationRequest(session="retry-1"), timeout=5)
    replies = wait_state(ln, "retry-1", "done")
    assert [r.state for r in replies] == ["done"] * 3, [r.error for r in replies]


def test_a_round_party_set_is_checked(net: tuple[LocalNet, dict[int, Daemon]]) -> None:
    """StartValidation/StartBatch refuse a party set without this server, with unknown ids, with
    duplicates, or with fewer than 2t+1 servers (one clear line each); empty means all servers."""
    ln, daemons = net
    submit(ln, 1, 42)
    addrs = [bytes.fromhex(do_addr(1)[2:])]
    cases = [([2, 3], grpc.StatusCode.INVALID_ARGUMENT, "do not include this server (1)"),
             ([1, 2, 7], grpc.StatusCode.INVALID_ARGUMENT, "unknown server id(s) [7]"),
             ([1, 2, 2, 3], grpc.StatusCode.INVALID_ARGUMENT, "listed twice"),
             ([1, 2], grpc.StatusCode.FAILED_PRECONDITION, "a round needs 2t+1 = 3")]
    for i, (parties, code, text) in enumerate(cases):
        for req in (pb.StartValidationRequest(session=f"p{i}", parties=parties),
                    pb.StartBatchRequest(session=f"q{i}", batch_index=0, do_addresses=addrs, parties=parties)):
            ch, stub = ctl(ln, 1)
            call = stub.StartValidation if isinstance(req, pb.StartValidationRequest) else stub.StartBatch
            with ch, pytest.raises(grpc.RpcError) as err:
                call(req, timeout=5)
            assert err.value.code() == code and text in err.value.details(), err.value.details()
            assert "\n" not in err.value.details()
    assert daemons[1].storage.round("p0") is None  # nothing was recorded for a refused set
    for j in range(1, 4):  # the full set, listed explicitly, runs as before
        ch, stub = ctl(ln, j)
        with ch:
            stub.StartValidation(pb.StartValidationRequest(session="all", parties=[3, 1, 2]), timeout=5)
    assert [r.state for r in wait_state(ln, "all", "done")] == ["done"] * 3
