"""Which aggregates a server agrees to open (PROTOCOL.md v2, step 3; issue 10 "aggregates only of
agreed batches"). The coordinator proposes; every server decides alone, from its own storage:

* N_min <= |set| <= N (one DO alone, or any too-small set, would publish single updates);
* every DO of the set was validated by this server and is not invalid;
* no DO is in the opened aggregate of another batch index (no DO in two opened aggregates, so
  differences of aggregates never reveal an update: {A,B} then {B} is refused);
* a retry at an index repeats the identical set (slot order included);
* every DO signed the model version equal to the batch index (a stale update is refused);
* before the aggregate is opened the round re-checks the set and screens it, and pins the DOs it
  keeps (Storage.pin_kept): every retry at that index opens the same aggregate;
* a pinned set whose joint proof failed this server's verification MAX_FAILED_PROOFS times is
  given up (Storage.burn_batch): its DOs are never batched again, the index takes another set.

The agreement is written to sqlite (Storage.record_opened_batch, one transaction) before the
round starts, so a restarted server holds the coordinator to what it agreed to.
"""

from __future__ import annotations

from collections.abc import Sequence

from omniplus.servers.storage import Rejected, Storage, StoredSubmission

MIN_BATCH_FLOOR = 2
MAX_FAILED_PROOFS = 3  # attempts whose proof failed local verification before a pinned set is given up
# A set is given up at most once until a batch is proven again: a server that keeps failing proofs
# (at n = 2t+1 it cannot be excluded) then stalls the market with an alert instead of burning
# every DO's submission one set after another.
MAX_GIVEN_UP_IN_A_ROW = 1
BURNED_PREFIX = "given up: "  # reason of a DO in a given-up batch (final: see servers/verdicts.py)


def burned_reason(batch_index: int, failures: int) -> str:
    return (f"{BURNED_PREFIX}batch {batch_index}'s joint proof failed verification {failures} times after its "
            "aggregate was opened (a server deviated, or an invalid update passed both checks); not paid, "
            "and never batched again in this task, so no update is in two opened aggregates")


def next_model_version(storage: Storage) -> int:
    """The lowest batch index this server may still open: one past the highest it opened."""
    opened = storage.opened_batches()
    return max(opened) + 1 if opened else 0


def check_fresh(storage: Storage, model_version: int) -> None:
    """Submit-time check: an update trained from a model version whose batch index this server
    has already opened (or passed) can never be batched; refuse it before storing anything."""
    nxt = next_model_version(storage)
    if model_version < nxt:
        raise Rejected("FAILED_PRECONDITION",
                       f"stale update: trained from model version {model_version}, but batches up to "
                       f"{nxt - 1} are already opened; retrain from model version {nxt} or later")


def agree_batch(storage: Storage, batch_index: int, dos: Sequence[bytes], *, min_batch: int,
                max_batch: int | None) -> list[StoredSubmission]:
    """Check the proposed batch against every rule above and durably record it; the submissions
    in slot order. Rejected (a gRPC status name and a one-line reason) otherwise, nothing written."""
    dos = [bytes(d) for d in dos]
    n_min = max(MIN_BATCH_FLOOR, int(min_batch))
    if len(set(dos)) != len(dos):
        raise Rejected("INVALID_ARGUMENT", "a DO appears twice in the batch")
    if len(dos) < n_min:
        raise Rejected("FAILED_PRECONDITION",
                       f"batch {batch_index} has {len(dos)} DO(s), below N_min = {n_min}: never opened")
    if max_batch is not None and len(dos) > max_batch:
        raise Rejected("INVALID_ARGUMENT", f"batch {batch_index} has {len(dos)} DOs, above N = {max_batch}")
    opened = storage.opened_batches()
    if batch_index in opened and opened[batch_index] != dos:
        raise Rejected("FAILED_PRECONDITION", f"batch {batch_index} was already opened for another DO set; "
                       "a retry must repeat the identical set")
    for index, members in opened.items():
        pin = storage.pinned(index) if index != batch_index else None
        if pin is not None:  # only the kept DOs of a pinned set are in its aggregate
            members = pin[0]
        if index != batch_index and set(members) & set(dos):
            d = sorted(set(members) & set(dos))[0]
            raise Rejected("FAILED_PRECONDITION", f"DO 0x{d.hex()} is already in the opened aggregate of batch {index}")
    by = {s.do_address: s for s in storage.submissions(dos=dos)}
    pinned = storage.pinned(batch_index) if batch_index in opened else None
    # A retry of a pinned set: the DOs the re-check or the screening left out are invalid by now;
    # the round opens only the pinned kept DOs, which must still be valid.
    must_be_valid = dos if pinned is None else pinned[0]
    for a in must_be_valid:
        s = by.get(a)
        if s is None:
            raise Rejected("FAILED_PRECONDITION", f"no stored submission for 0x{a.hex()}")
        if s.state not in ("valid", "batched", "paid"):
            raise Rejected("FAILED_PRECONDITION", f"DO 0x{a.hex()} is {s.state}, not valid on this server")
        if s.model_version != batch_index:
            raise Rejected("FAILED_PRECONDITION",
                           f"DO 0x{a.hex()} trained from model version {s.model_version}, batch {batch_index} "
                           f"needs model version {batch_index} (stale or early update)")
    storage.record_opened_batch(batch_index, dos)
    return [by[a] for a in dos]
