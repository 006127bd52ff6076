"""Which aggregates a server opens across retries and failed proofs (servers/batch_policy.py,
servers/storage.py), on a real sqlite state directory: the pinned kept set, the given-up batch,
and the Status nonces that survive a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from omniplus.prover.mpc.validation import REASON_INVALID
from omniplus.servers import batch_policy
from omniplus.servers.admission import StatusNonces
from omniplus.servers.storage import Rejected, Storage
from omniplus.servers.verdicts import may_resubmit


def addr(i: int) -> bytes:
    return bytes([i]) * 20


def store(st: Storage, *dos: int, version: int = 0) -> None:
    for i in dos:
        st.accept_submission(do_address=addr(i), payee=addr(i), server_index=1, n_servers=3, threshold=1,
                             wires=[1], shares=b"\x00" * 32, payload_hash=bytes([i]) * 32, nonce=bytes([i]) * 32,
                             expiry=int(time.time()) + 600, signature=b"s" * 65, model_version=version)
    st.set_verdicts({addr(i): (True, "") for i in dos})


def agree(st: Storage, index: int, dos: list[int]) -> None:
    batch_policy.agree_batch(st, index, [addr(i) for i in dos], min_batch=2, max_batch=4)


def test_a_retry_opens_the_pinned_set_and_nothing_else(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    store(st, 1, 2, 3, 4)
    agree(st, 0, [1, 2, 3, 4])
    # the re-check left DO 4 out before anything was opened: pinned with its verdict
    st.pin_kept(0, [addr(1), addr(2), addr(3)], '{"kept": []}', {addr(4): (None, REASON_INVALID)})
    assert st.submission(addr(4)).state == "invalid" and may_resubmit(st.submission(addr(4)).reason)
    assert st.pinned(0) == ([addr(1), addr(2), addr(3)], '{"kept": []}')
    agree(st, 0, [1, 2, 3, 4])  # the identical retry is agreed although DO 4 is invalid by now
    with pytest.raises(Rejected, match="another kept set"):
        st.pin_kept(0, [addr(1), addr(2)], "{}", {})  # a retry can never open a different subset
    st.pin_kept(0, [addr(1), addr(2), addr(3)], "{}", {})  # the same set again: a no-op
    with pytest.raises(Rejected, match="another DO set"):
        agree(st, 0, [1, 2, 3])
    with pytest.raises(Rejected, match="outside the agreed set"):
        st.pin_kept(0, [addr(1), addr(9)], "{}", {})
    with pytest.raises(Rejected, match="not agreed"):
        st.pin_kept(1, [addr(1), addr(2)], "{}", {})
    st.close()


def test_a_left_out_do_may_be_batched_later_but_a_kept_one_never(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    store(st, 1, 2, 3, 4)
    store(st, 5, version=1)
    agree(st, 0, [1, 2, 3, 4])
    st.pin_kept(0, [addr(1), addr(2), addr(3)], "{}", {addr(4): (None, REASON_INVALID)})
    st.mark_batched([addr(1), addr(2), addr(3)], 0)
    with pytest.raises(Rejected, match="already in the opened aggregate of batch 0"):
        agree(st, 1, [3, 5])
    # DO 4 was never in an opened aggregate: once valid again (a fresh resubmission) it may join
    # batch 1 -- but its update is for model version 0, so the stale check still refuses it
    st.set_verdicts({addr(4): (True, "")})
    with pytest.raises(Rejected, match="model version"):
        agree(st, 1, [4, 5])
    st.close()


def test_a_set_whose_proof_keeps_failing_is_given_up_and_never_reopened(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    store(st, 1, 2, 3, 4, 5, 6)
    agree(st, 0, [1, 2, 3, 4])
    st.pin_kept(0, [addr(1), addr(2), addr(3), addr(4)], "{}", {})
    assert [st.note_failed_proof(0) for _ in range(batch_policy.MAX_FAILED_PROOFS)] == [1, 2, 3]
    reason = batch_policy.burned_reason(0, 3)
    assert st.burn_batch(0, reason) == [addr(1), addr(2), addr(3), addr(4)]
    assert st.opened_batch(0) is None and st.pinned(0) is None
    for i in (1, 2, 3, 4):
        s = st.submission(addr(i))
        assert s.state == "invalid" and s.reason.startswith(batch_policy.BURNED_PREFIX)
        assert not may_resubmit(s.reason)  # final: the update is in an opened aggregate
    for bad in ([1, 2, 3, 4], [4, 5], [1, 6]):
        with pytest.raises(Rejected):
            agree(st, 0, bad)
    agree(st, 0, [5, 6])  # the index takes a disjoint set
    # even if a burned DO were somehow valid again, opened_dos still holds it
    st.set_verdicts({addr(2): (True, "")})
    with pytest.raises(Rejected, match="given-up batch 0"):
        st.record_opened_batch(1, [addr(2), addr(5)])
    st.close()


def test_status_nonces_survive_a_restart(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    nonces = StatusNonces(storage=st)
    now = time.time()
    nonces.use(addr(1), b"n" * 32, now)
    with pytest.raises(Rejected, match="replayed"):
        nonces.use(addr(1), b"n" * 32, now)
    nonces.use(addr(2), b"n" * 32, now)  # the same nonce from another DO is its own
    st.close()
    st = Storage(tmp_path)  # a restarted server: a fresh in-memory set, the disk remembers
    with pytest.raises(Rejected, match="replayed"):
        StatusNonces(storage=st).use(addr(1), b"n" * 32, now)
    StatusNonces(storage=st).use(addr(1), b"m" * 32, now)
    st.close()


def test_given_up_batches_are_counted_until_one_is_proven(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    store(st, 1, 2, 3, 4)
    assert st.given_up_run() == 0
    agree(st, 0, [1, 2])
    st.pin_kept(0, [addr(1), addr(2)], "{}", {})
    st.burn_batch(0, batch_policy.burned_reason(0, 3))
    assert st.given_up_run() == 1 >= batch_policy.MAX_GIVEN_UP_IN_A_ROW  # the next one is not given up
    agree(st, 0, [3, 4])
    st.mark_batched([addr(3), addr(4)], 0)
    assert st.given_up_run() == 0
    st.close()
    assert Storage(tmp_path).given_up_run() == 0  # on disk, like the rest
