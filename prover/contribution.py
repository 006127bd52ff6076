"""Proof-of-Contribution scores: what each DO of a batch is paid by.

The score of slot i is its agreement with the rest of the batch,

    s_i = <g_i, a - g_i> = <g_i, a> - ||g_i||^2,   a = sum_j g_j,

an integer of the quantised updates. It is the exact Shapley value of the pairwise-agreement game
v(S) = ||sum_{j in S} g_j||^2 - sum_{j in S} ||g_j||^2 (the marginal of i to S is 2<g_i, g_S>, and a
random order puts each other DO before i with probability 1/2), so a zero update scores 0, a
sign-flipped one scores negative, and noise orthogonal to the others scores about 0. It costs one
multiplication per coordinate per DO on shares and in the circuit (||g_i||^2 is already there for
the norm check).

Plain functions on ints: the servers run `select` on opened scores, the circuit recomputes the
scores of the selected slots, the contract splits the batch budget with the same floor as
`split_budget`, and the ML benches call all three on cleartext updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Update = Sequence[int]


def scores(updates: Sequence[Update]) -> list[int]:
    """s_i = <g_i, a - g_i> for every row (all rows of one length)."""
    rows = [[int(x) for x in row] for row in updates]
    if not rows:
        return []
    d = len(rows[0])
    if any(len(r) != d for r in rows):
        raise ValueError("updates have different lengths")
    agg = [sum(col) for col in zip(*rows, strict=True)]
    return [sum(g * (a - g) for g, a in zip(row, agg, strict=True)) for row in rows]


def score_bound(*, batch: int, norm_bound: int) -> int:
    """|s_i| <= (N-1)·B for rows with ||g||^2 <= B (Cauchy–Schwarz on <g_i, sum_{j!=i} g_j>)."""
    return max(batch - 1, 0) * norm_bound


@dataclass(frozen=True)
class Selection:
    """Who stays in a batch after scoring, and why the others left.

    kept: indices (into the candidates) in their original order; dropped: (index, score at the
    time it was dropped), lowest first; final: the kept DOs' scores within the kept set.
    """

    kept: tuple[int, ...]
    dropped: tuple[tuple[int, int], ...]
    final: tuple[int, ...]

    def ok(self, n_min: int) -> bool:
        return len(self.kept) >= n_min


def select(updates: Sequence[Update], *, min_score: int = 0, n_min: int = 1) -> Selection:
    """Drop the single lowest score <= min_score, rescore the rest, repeat.

    One at a time because a drop changes everybody else's score (a, the aggregate, moves). Stops
    when every score is above min_score, or when a drop would leave fewer than n_min (then the
    batch cannot go ahead: `ok(n_min)` is False and `kept` is what was left).
    """
    kept = list(range(len(updates)))
    dropped: list[tuple[int, int]] = []
    while kept:
        s = scores([updates[i] for i in kept])
        low = min(range(len(kept)), key=lambda j: (s[j], kept[j]))
        if s[low] > min_score:
            return Selection(kept=tuple(kept), dropped=tuple(dropped), final=tuple(s))
        dropped.append((kept[low], s[low]))
        del kept[low]
        if len(kept) < n_min:
            break
    return Selection(kept=tuple(kept), dropped=tuple(dropped), final=tuple(scores([updates[i] for i in kept])))


def split_budget(budget: int, payee_scores: Sequence[int]) -> tuple[list[int], int]:
    """(amount per payee, dust): floor(budget·s_i / sum s), the same rounding as RollupMarket.

    Every score must be positive (the contract reverts on a payee with s <= minScore, and
    minScore >= 0); the dust (< number of payees) goes back to the MO at finish().
    """
    if budget < 0:
        raise ValueError("budget must be non-negative")
    if any(s <= 0 for s in payee_scores):
        raise ValueError("every payee needs a positive score")
    total = sum(payee_scores)
    if total == 0:
        return [], budget
    amounts = [budget * s // total for s in payee_scores]
    return amounts, budget - sum(amounts)
