"""A DO rejected for a reason that could be a server's fault (inconsistent or invalid at n = 2t+1:
no spare point tells a lying server from a bad DO) may resubmit fresh shares over TLS to a real
daemon, a bounded number of times; a DO rejected for a provable fault of its own, or one whose
update is accepted or valid, cannot replace it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from network_fixtures import CHAIN_ID, MARKET, LocalNet, do_addr, do_key, make_local_net

from omniplus.prover.mpc.point_shares import REASON_WRONG_POINTS
from omniplus.prover.mpc.validation import REASON_INCONSISTENT, REASON_INVALID
from omniplus.servers.client import TaskRef, build_request, send
from omniplus.servers.config import load_config
from omniplus.servers.daemon import Daemon, JsonLog
from omniplus.servers.verdicts import MAX_RESUBMISSIONS, PROVABLE_PREFIX

TASK = TaskRef.parse(MARKET, CHAIN_ID)


@pytest.fixture()
def daemon(tmp_path) -> Iterator[tuple[LocalNet, Daemon]]:  # type: ignore[no-untyped-def]
    ln = make_local_net(tmp_path)
    d = Daemon(load_config(ln.configs[0]), log=JsonLog(1, stream=open(tmp_path / "d1.log", "a")))  # noqa: SIM115
    d.start()
    try:
        yield ln, d
    finally:
        d.stop(grace=1)


def submit(ln: LocalNet, i: int, shares: list[int]) -> object:
    return send(ln.public(1), 1, build_request(do_key(i), TASK, 1, 3, 1, [1, 2], shares), ln.pins, retries=0)


def addr(i: int) -> bytes:
    return bytes.fromhex(do_addr(i)[2:])


@pytest.mark.parametrize("reason", [REASON_INVALID, REASON_INCONSISTENT])
def test_possibly_a_servers_fault_may_resubmit(daemon: tuple[LocalNet, Daemon], reason: str) -> None:
    ln, d = daemon
    first = build_request(do_key(1), TASK, 1, 3, 1, [1, 2], [3, 4])
    assert send(ln.public(1), 1, first, ln.pins).accepted
    assert not submit(ln, 1, [5, 6]).accepted  # before any verdict: a duplicate
    d.storage.set_verdicts({addr(1): (False, reason)})
    before = d.storage.changes(0, 100)[1]
    out = submit(ln, 1, [7, 8])
    assert out.accepted, out
    sub = d.storage.submission(addr(1))
    assert sub is not None and sub.state == "accepted" and sub.share_values() == [7, 8]
    assert d.storage.resubmissions(addr(1)) == 1 and d.storage.count_submissions() == 1
    assert d.storage.changes(before, 100)[0][0]["state"] == "accepted"  # the coordinator sees it again
    # the first request's nonce stays used: replaying it is refused, not a second replacement
    d.storage.set_verdicts({addr(1): (False, reason)})
    replay = send(ln.public(1), 1, first, ln.pins, retries=0)
    assert not replay.accepted and "replayed" in replay.message
    # bounded: after MAX_RESUBMISSIONS replacements the rejection is final
    for k in range(2, MAX_RESUBMISSIONS + 1):
        d.storage.set_verdicts({addr(1): (False, reason)})
        assert submit(ln, 1, [9, k]).accepted
    d.storage.set_verdicts({addr(1): (False, reason)})
    out = submit(ln, 1, [11, 12])
    assert not out.accepted and out.code == "ALREADY_EXISTS" and "most allowed" in out.message


def test_own_provable_fault_or_good_standing_cannot_be_replaced(daemon: tuple[LocalNet, Daemon]) -> None:
    ln, d = daemon
    assert submit(ln, 2, [1, 1]).accepted
    d.storage.set_verdicts({addr(2): (False, PROVABLE_PREFIX + "signed point shares do not match the wires")})
    out = submit(ln, 2, [2, 2])
    assert not out.accepted and "own provable fault" in out.message
    assert d.storage.submission(addr(2)).share_values() == [1, 1]
    assert submit(ln, 4, [1, 1]).accepted
    d.storage.set_verdicts({addr(4): (False, REASON_WRONG_POINTS)})
    out = submit(ln, 4, [2, 2])
    assert not out.accepted and "own provable fault" in out.message
    assert submit(ln, 3, [1, 1]).accepted
    d.storage.set_verdicts({addr(3): (True, "")})
    out = submit(ln, 3, [2, 2])  # a valid DO cannot swap its update after validation
    assert not out.accepted and "duplicate" in out.message
    assert d.storage.submission(addr(3)).share_values() == [1, 1] and d.storage.resubmissions(addr(3)) == 0
