"""The DO role, end to end: a quantised row → its witness block → Shamir shares → share j to
server j only, signed with the DO's key; and what the servers and the chain say afterwards.

Every path that submits an update (`omniplus do submit`, the market roles in omniplus.market_run,
the devnet) comes through `submit_update`, so there is one place where a block is built and one
place where the DO's refusal rules live: an honest client refuses an out-of-bound row itself
(`check=True`); an attacker in a test or the demo builds its block without the check, so only the
servers' validation on shares stands between it and a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omniplus.core.errors import ChainError, OmniplusError
from omniplus.servers.client import Outcome, TaskRef, pins_of, status, submit_block


class NotRegistered(ChainError):
    """The DO is not registered for this task on RollupMarket."""


class SubmissionRefused(OmniplusError):
    """A server refused the DO's share (the message names the server and its reason)."""


def update_block(setup: Any, layout: Any, row: Sequence[int], *, check: bool = True) -> tuple[list[int], list[int]]:
    """(wire indices, values) of the DO's witness block in protocol order (prover.mpc.batch)."""
    from omniplus.prover.field import R
    from omniplus.prover.mpc.batch import make_block
    from omniplus.prover.witness import do_block

    wires = list(layout.slot_wires[0])
    if check:
        return wires, make_block(setup, layout, list(row))
    values = do_block(setup, 0, list(row), check=False)
    return wires, [values[w] % R for w in wires]


def point_sharer(setup: Any, layout: Any, values: Sequence[int], engine: Any = None) -> Callable[[int, int], dict]:
    """For submit_block: the DO's point shares of its block (prover/mpc/point_shares.py).

    The DO computes its block's A, B1, B2, L sums for every batch slot itself — its values are
    mostly bits, so this is cheap — and the servers then skip those full-field MSMs on shares.
    `engine`: the node engine on the setup's zkey by default."""
    def make(t: int, n: int) -> dict:
        from omniplus.prover.mpc.point_shares import make_point_shares

        eng = engine
        if eng is None:
            from omniplus.prover.engine import SnarkjsEngine

            eng = SnarkjsEngine(setup.zkey)
        n_public = eng.zkey.n_public if hasattr(eng, "zkey") else eng.n_public  # native or node engine
        return make_point_shares(eng, layout, n_public, list(values), t, n)

    return make


def require_registered(market: Any, address: str) -> None:
    if not market.contract.functions.registered(address).call():
        raise NotRegistered(
            f"DO {address} is not registered for task {market.address}: register on the market first "
            "(one registration per task)"
        )


@dataclass(frozen=True)
class Destination:
    """Where a DO's shares go: the servers' public addresses (server 1 first). `fingerprints`:
    each server's certificate sha256, pinned; empty = the task's on-chain committee (submit_update
    always checks them against it; server_status without a chain needs them given)."""

    servers: Sequence[str]
    fingerprints: Sequence[bytes] = ()
    threshold: int = 1
    timeout: float = 30.0


def submit_update(*, key: str, market: Any, setup: Any, layout: Any, row: Sequence[int], to: Destination,
                  check: bool = True, progress: Callable[[str], None] | None = None,
                  model_version: int | None = None,
                  points: bool | Callable[[int, int], dict] = True) -> list[Outcome]:
    """Build, share and send one DO's update; raises SubmissionRefused if any server refuses.

    Before anything is shared the task is checked to be canonical for this DO's setup (market code,
    verifier code, N, d, k, B, M, w, c, n servers and t+1; contracts/canonical.py). The signature
    carries the model version the update was trained from (default: the batches on-chain now).
    points: also send the block's point shares (prover/mpc/point_shares.py), which make the
    servers' proof several times cheaper on the gradient circuit; a callable (t, n) -> {j: bytes}
    replaces them (fault tests: a DO whose point shares are not those of its block)."""
    from omniplus.servers.client import check_task_before_sharing
    from omniplus.servers.signing import address_of, checksum

    facts = check_task_before_sharing(market.w3, market.address, setup, len(to.servers), to.threshold)
    pinned = tuple(bytes(f) for f in facts.committee.fingerprints)
    if to.fingerprints and tuple(bytes(f) for f in to.fingerprints) != pinned:
        raise SubmissionRefused(f"task {market.address}: the given certificate fingerprints are not the task's "
                                "committee; nothing shared")
    address = checksum(address_of(key))
    require_registered(market, address)
    version = market.batches_submitted() if model_version is None else model_version
    wires, values = update_block(setup, layout, row, check=check)
    task = TaskRef.parse(market.address, market.chain_id)
    outcomes = submit_block(key, task, list(to.servers), wires, values, pins_of(pinned), t=to.threshold,
                            timeout=to.timeout, progress=progress, model_version=version,
                            point_shares=(points if callable(points) else
                                          point_sharer(setup, layout, values) if points else None))
    bad = [o for o in outcomes if not o.accepted]
    if bad:
        raise SubmissionRefused(f"DO {address}: refused by server {bad[0].server}: {bad[0].message}")
    return outcomes


def server_status(*, key: str, market_address: str, chain_id: int, to: Destination,
                  market: Any = None) -> list[dict]:
    """Each server's verdict on this DO's own submission (signed requests; a server answers
    nobody else about it). Pins: `to.fingerprints`, else the committee read from `market`."""
    from omniplus.core.errors import InputError

    fps = list(to.fingerprints)
    if not fps:
        if market is None:
            raise InputError("no certificate fingerprints to pin: give --rpc (the task's committee) or --fingerprints")
        fps = list(market.committee().fingerprints)
    if len(fps) != len(to.servers):
        raise InputError(f"{len(fps)} certificate fingerprints for {len(to.servers)} servers")
    task = TaskRef.parse(market_address, chain_id)
    rows = []
    for j, addr in enumerate(to.servers, start=1):
        st = status(addr, j, task, key, pins_of(fps), timeout=to.timeout)
        rows.append({"server": j, "state": st.state, "reason": st.reason, "batch_index": st.batch_index,
                     "score": int(st.score) if st.score else None})  # contribution screening score
    return rows


def chain_outcome(market: Any, do: str) -> dict:
    """What the chain says: the batch whose payees include this DO, and its credit / withdrawals."""
    batch = next((e for e in market.batch_events() if do.lower() in (p.lower() for p in e.payees)), None)
    withdrawn = market.contract.events.Withdrawn().get_logs(from_block=market.deploy_block(),
                                                            argument_filters={"payee": do})
    slot = [p.lower() for p in batch.payees].index(do.lower()) if batch else None
    return {
        "included_in_batch": batch.index if batch else None,
        "batch_tx": batch.tx_hash if batch else None,
        # the proven contribution score and the wei it earned (the BatchSubmitted event)
        "score": batch.scores[slot] if batch and slot is not None and slot < len(batch.scores) else None,
        "paid_wei": batch.amounts[slot] if batch and slot is not None and slot < len(batch.amounts) else 0,
        "credit_wei": market.credit(do),
        "withdrawn_wei": sum(int(e["args"]["amount"]) for e in withdrawn),
    }
