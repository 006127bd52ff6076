"""Random quantised updates for demos, benchmarks and tests: in bound, and out of bound."""

from __future__ import annotations

import random
from typing import Any


def valid_row(params: Any, rng: random.Random) -> list[int]:
    """A random quantised update inside the range and the norm bound."""
    lim = 1 << (params.bits - 1)
    span = lim
    while True:
        row = [rng.randrange(-span, span) for _ in range(params.dims)]
        if sum(x * x for x in row) <= params.norm_bound:
            return row
        span = max(1, span * 3 // 4)


def invalid_row(params: Any, rng: random.Random) -> list[int]:
    """Every coordinate in range but the squared norm above B (or, if that cannot happen, one
    coordinate out of range)."""
    lim = 1 << (params.bits - 1)
    if params.max_sq_norm <= params.norm_bound:
        return [lim] + [0] * (params.dims - 1)
    while True:
        row = [rng.choice((-1, 1)) * rng.randrange(lim // 2, lim) for _ in range(params.dims)]
        if sum(x * x for x in row) > params.norm_bound:
            return row


def agreement_base(params: Any, rng: random.Random) -> list[int]:
    """A common direction for `agreeing_row`: a valid row halved (so base + noise stays in bound)."""
    base = [x // 2 if x >= 0 else -((-x) // 2) for x in valid_row(params, rng)]
    if not any(base) and params.norm_bound >= 1:
        base = [1] + [0] * (params.dims - 1)
    return base


def agreeing_row(params: Any, rng: random.Random, base: list[int]) -> list[int]:
    """An update that agrees with every other row made from the same `base`: base + noise with
    ||noise||² ≤ ||base||²/16, so each DO's contribution score (prover/contribution.py) is about
    (N−1)·||base||² > 0, and the row stays inside the range and the norm bound."""
    target = sum(b * b for b in base) // 16
    span = max(1, 1 << (params.bits - 3))
    lo, hi = -(1 << (params.bits - 1)), (1 << (params.bits - 1)) - 1
    while True:
        noise = [rng.randrange(-span, span + 1) for _ in range(params.dims)]
        if sum(x * x for x in noise) <= target or span == 0:
            row = [min(hi, max(lo, b + (x if span else 0))) for b, x in zip(base, noise, strict=True)]
            if sum(x * x for x in row) <= params.norm_bound:
                return row
        span = span * 3 // 4


def agreeing_rows(params: Any, rng: random.Random, count: int) -> list[list[int]]:
    """`count` in-bound updates around one common direction (honest DOs of one task agree), so
    each one's contribution score <g_i, a - g_i> is positive: a base of about a quarter of the
    norm bound plus ±1 noise per coordinate."""
    lim = 1 << (params.bits - 1)
    base = valid_row(params, rng)
    while sum(x * x for x in base) * 4 > params.norm_bound and any(base):
        base = [x // 2 if x > 0 else -((-x) // 2) for x in base]
    if not any(base):
        base = [1] + [0] * (params.dims - 1)
    rows: list[list[int]] = []
    while len(rows) < count:
        row = [max(-lim, min(lim - 1, x + rng.choice((-1, 0, 1)))) for x in base]
        if sum(x * x for x in row) <= params.norm_bound:
            rows.append(row)
    return rows
