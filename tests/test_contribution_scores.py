"""The contribution score: Shapley value of the agreement game, selection, budget split."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from omniplus.prover.contribution import score_bound, scores, select, split_budget


def _shapley(rows: list[list[int]]) -> list[Fraction]:
    """Brute-force Shapley values of v(S) = ||sum_S g||^2 - sum_S ||g||^2."""
    n = len(rows)

    def v(members: tuple[int, ...]) -> int:
        agg = [sum(rows[i][c] for i in members) for c in range(len(rows[0]))]
        return sum(x * x for x in agg) - sum(sum(x * x for x in rows[i]) for i in members)

    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        total = Fraction(0)
        for size in range(n):
            for subset in itertools.combinations(others, size):
                weight = Fraction(math.factorial(size) * math.factorial(n - size - 1), math.factorial(n))
                total += weight * (v(tuple(sorted(subset + (i,)))) - v(subset))
        out.append(total)
    return out


def test_score_is_the_exact_shapley_value_of_the_agreement_game() -> None:
    rng = random.Random(7)
    rows = [[rng.randint(-8, 7) for _ in range(5)] for _ in range(4)]
    assert [Fraction(s) for s in scores(rows)] == _shapley(rows)


def test_zero_and_sign_flipped_updates_score_at_most_zero() -> None:
    honest = [[3, 1, -2, 4], [2, 2, -1, 3], [4, 0, -2, 5]]
    flipped = [-x for x in honest[0]]
    s = scores(honest + [[0, 0, 0, 0], flipped])
    assert all(x > 0 for x in s[:3]) and s[3] == 0 and s[4] < 0


def test_selection_drops_lowest_one_at_a_time_and_rescores() -> None:
    honest = [[3, 1, -2, 4], [2, 2, -1, 3], [4, 0, -2, 5]]
    rows = honest + [[0, 0, 0, 0], [-3, -1, 2, -4]]
    sel = select(rows, min_score=0, n_min=2)
    assert sel.kept == (0, 1, 2)
    assert [i for i, _ in sel.dropped] == [4, 3]
    assert list(sel.final) == scores(honest)
    assert sel.ok(2)


def test_selection_reports_failure_below_n_min() -> None:
    sel = select([[1, 0], [-1, 0], [0, 0]], min_score=0, n_min=2)
    assert not sel.ok(2)


def test_score_bound_holds_for_rows_in_the_norm_bound() -> None:
    rng = random.Random(3)
    for _ in range(50):
        rows = [[rng.randint(-4, 3) for _ in range(6)] for _ in range(3)]
        bound = max(sum(x * x for x in r) for r in rows)
        assert all(abs(s) <= score_bound(batch=3, norm_bound=bound) for s in scores(rows))


def test_split_budget_conserves_exactly_and_refuses_non_positive_scores() -> None:
    amounts, dust = split_budget(10**18 + 7, [3, 5, 11])
    assert sum(amounts) + dust == 10**18 + 7 and 0 <= dust < 3
    assert amounts == [(10**18 + 7) * s // 19 for s in (3, 5, 11)]
    with pytest.raises(ValueError):
        split_budget(100, [4, 0])
    with pytest.raises(ValueError):
        scores([[1, 2], [3]])
