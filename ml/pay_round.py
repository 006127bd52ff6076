"""One market round as the MO sees it, with pay by contribution (issue 12), on cleartext integers.

What the prover network does on shares and the contract does on-chain, in one process: per batch of
N DOs, (1) validation: the circuit's range and norm bound on each quantised update; (2) with
contribution pay, an optional screen against the MO's reference update (below); (3) `select` on the
batch scores s_i = <g_i, a - g_i> (prover/contribution.py: drop the lowest <= min_score, rescore,
keep >= n_min); (4) the batch budget split pro rata to the kept DOs' final scores (`split_budget`:
floor, dust back to the MO). Equal pay is today's market: every valid DO of the batch is aggregated
and paid budget // n. The MO then averages the batch aggregates, or keeps those multi-Krum selects
across the round's P batches (OmniLytics' μ) before its model step. Payment never depends on Krum.

Why the screen. The batch score is leave-one-out agreement *with the batch*, so DOs that agree with
each other vouch for each other: two colluding sign-flippers who send the same vector at the full
norm bound score <f, f> = ||f||^2 from each other, far above what honest, noisy updates earn from
disagreeing with them, and the same holds for a sybil pair sending one random vector. The screen
scores each update against a vector no DO controls directly, the MO's reference r (its own update on
its data plus its previous step: `reference_update`; published to the servers with the round, quantised
like an update), by the same kind of integer: c_i = <g_i, r>, kept only if
c_i > 0 and c_i^2 >= tau^2 ||g_i||^2 ||r||^2 (cosine >= tau, compared without square roots). On
shares it is linear in g_i (a degree-t opening of one scalar per DO, no multiplication); ||g_i||^2 is
what the norm check already computes. A screened-out DO is not in the batch: not aggregated, not
paid, told why, like a DO dropped by `select`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import torch

from omniplus.core.errors import InputError
from omniplus.ml.krum import multi_krum
from omniplus.ml.updates import QuantSpec, dequantize
from omniplus.prover.contribution import select, split_budget

Row = Sequence[int]
PAY_MODES = ("equal", "contribution")


@dataclass(frozen=True)
class PayRule:
    """How a batch is settled. mode: equal | contribution; min_score, n_min: the task's parameters;
    screen_cos: tau of the reference screen (None = no screen; contribution mode only); mu: multi-Krum
    over the round's batch aggregates before the MO's step (None = plain mean)."""

    mode: str = "contribution"
    min_score: int = 0
    n_min: int = 2
    screen_cos: float | None = 0.1
    mu: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in PAY_MODES:
            raise InputError(f"unknown pay mode {self.mode!r}; choose one of {', '.join(PAY_MODES)}")
        if self.n_min < 1:
            raise InputError("n_min must be at least 1")
        if self.screen_cos is not None and not 0 <= self.screen_cos < 1:
            raise InputError(f"screen cosine must be in [0, 1), got {self.screen_cos}")


@dataclass
class BatchOutcome:
    """One batch after settlement. members: DO ids in slot order; reasons: DO id → why it was left
    out ("bound", "screen", "score", "n_min"); paid: DO id → amount (only kept DOs); scores: the kept
    DOs' final batch scores (contribution mode); aggregate: sum of the kept rows, None if the batch
    did not go ahead (fewer than n_min left)."""

    members: tuple[int, ...]
    kept: tuple[int, ...] = ()
    reasons: dict[int, str] = field(default_factory=dict)
    scores: dict[int, int] = field(default_factory=dict)
    paid: dict[int, int] = field(default_factory=dict)
    dust: int = 0
    aggregate: list[int] | None = None


def reference_update(own: torch.Tensor, last_step: torch.Tensor | None = None) -> torch.Tensor:
    """The screen's reference: the direction of the MO's own update on its data, plus (from round 1 on)
    the direction of the MO's previous step, i.e. the mean of the last round's screened, kept updates.

    The MO's own update alone is noisy (a few dozen samples) and, once the MO has fitted its data,
    shrinks towards noise: in the bench it screened out about a third of honest DOs at tau = 0.1. The
    last step averages dozens of screened DOs, so honest updates agree with it far more, and colluders
    can only enter it by first passing a screen. Unit directions, so neither part dominates by scale."""
    ref = own.to(torch.float64).reshape(-1)
    n = float(ref.norm())
    ref = ref / n if n > 0 else ref
    if last_step is not None:
        last = last_step.to(torch.float64).reshape(-1)[: ref.numel()]
        m = float(last.norm())
        if m > 0:
            ref = ref + last / m
    return ref


def in_bound(row: Row, spec: QuantSpec, norm_bound: int) -> bool:
    """The servers' validation = the circuit's statement: every coordinate in the k-bit range, ||g||^2 <= B."""
    lim = spec.limit
    return len(row) == spec.dims and all(-lim - 1 <= x <= lim for x in row) and sum(x * x for x in row) <= norm_bound


def passes_screen(row: Row, reference: Row, tau: float) -> bool:
    """<g, r> > 0 and <g, r>^2 >= tau^2 ||g||^2 ||r||^2, exactly in integers (tau as a fraction)."""
    c = sum(int(g) * int(r) for g, r in zip(row, reference, strict=True))
    if c <= 0:
        return False
    t = Fraction(tau).limit_denominator(10**6)
    gg = sum(int(g) * int(g) for g in row)
    rr = sum(int(r) * int(r) for r in reference)
    return c * c * t.denominator ** 2 >= t.numerator ** 2 * gg * rr


def settle_batch(members: Sequence[int], rows: Sequence[Row], spec: QuantSpec, norm_bound: int, budget: int,
                 rule: PayRule, reference: Row | None = None) -> BatchOutcome:
    """Validate, (screen,) select and pay one batch; budget in wei, conserved exactly (paid + dust)."""
    if len(members) != len(rows):
        raise InputError(f"{len(members)} members but {len(rows)} rows")
    if budget < 0:
        raise InputError("budget must be non-negative")
    out = BatchOutcome(members=tuple(members), dust=budget)
    cand: list[int] = []  # slot indices still in
    for slot, row in enumerate(rows):
        if not in_bound(row, spec, norm_bound):
            out.reasons[members[slot]] = "bound"
        elif (rule.mode == "contribution" and rule.screen_cos is not None and reference is not None
              and not passes_screen(row, reference, rule.screen_cos)):
            out.reasons[members[slot]] = "screen"
        else:
            cand.append(slot)
    if rule.mode == "equal":
        kept = cand
        if len(kept) < rule.n_min:
            out.reasons.update({members[s]: "n_min" for s in kept})
            return out
        share = budget // len(kept)
        out.paid = {members[s]: share for s in kept}
    else:
        sel = select([rows[s] for s in cand], min_score=rule.min_score, n_min=rule.n_min)
        out.reasons.update({members[cand[j]]: "score" for j, _ in sel.dropped})
        kept = [cand[j] for j in sel.kept]
        if not sel.ok(rule.n_min):
            out.reasons.update({members[s]: "n_min" for s in kept})
            return out
        amounts, _ = split_budget(budget, list(sel.final))
        out.scores = {members[s]: sc for s, sc in zip(kept, sel.final, strict=True)}
        out.paid = {members[s]: a for s, a in zip(kept, amounts, strict=True)}
    out.kept = tuple(members[s] for s in kept)
    out.dust = budget - sum(out.paid.values())
    out.aggregate = [sum(c) for c in zip(*(rows[s] for s in kept), strict=True)]
    return out


@dataclass
class RoundOutcome:
    """The round: every batch's settlement, the batches multi-Krum kept, the MO's step (float, length d)."""

    batches: list[BatchOutcome]
    used: list[int]
    delta: torch.Tensor | None


def market_round(batches: Sequence[tuple[Sequence[int], Sequence[Row]]], spec: QuantSpec, norm_bound: int,
                 budget: int, rule: PayRule, reference: Row | None = None) -> RoundOutcome:
    """Settle P batches of one round and combine their aggregates into the MO's step.

    The step is the mean update of the DOs in the batches used (all that went ahead, or those
    multi-Krum picks from their mean updates), de-quantised as the MO does from on-chain sums."""
    outs = [settle_batch(m, rows, spec, norm_bound, budget, rule, reference) for m, rows in batches]
    live = [i for i, o in enumerate(outs) if o.aggregate is not None]
    if not live:
        return RoundOutcome(outs, [], None)
    means = [dequantize(outs[i].aggregate or [], spec) / len(outs[i].kept) for i in live]
    pick = list(range(len(live))) if rule.mu is None or len(live) < 3 else multi_krum(means, rule.mu)
    used = [live[j] for j in pick]
    total = sum(len(outs[i].kept) for i in used)
    delta = sum(dequantize(outs[i].aggregate or [], spec) for i in used) / total
    return RoundOutcome(outs, used, delta)
