"""Multi-Krum over batch aggregates (OmniLytics Algorithm 1, after Blanchard et al. 2017).

The MO sees only batch aggregates, never single updates; if at most a fraction μ of them is
corrupted, it keeps the m aggregates with the smallest sum of squared distances to their
|T| − μ|P| − 2 nearest neighbours, removing each pick from the candidates as it goes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from omniplus.core.errors import InputError


def default_m(count: int, mu: float) -> int:
    """The paper's bound m < (1 − 2μ)|P| − 2, at least 1."""
    return max(1, math.ceil((1 - 2 * mu) * count - 2) - 1)


def multi_krum(aggregates: Sequence[torch.Tensor], mu: float, m: int | None = None) -> list[int]:
    """Indices of the selected aggregates, in the order picked."""
    if not 0 <= mu < 0.5 + 1e-12:
        raise InputError(f"mu must be in [0, 0.5], got {mu}")
    P = len(aggregates)
    if P == 0:
        return []
    m = default_m(P, mu) if m is None else m
    if not 1 <= m <= P:
        raise InputError(f"m={m} must be between 1 and the number of aggregates ({P})")
    X = torch.stack([a.to(torch.float64).reshape(-1) for a in aggregates])
    dist = torch.cdist(X, X) ** 2
    candidates = list(range(P))
    chosen: list[int] = []
    for _ in range(m):
        k = max(1, len(candidates) - int(mu * P) - 2)
        best, best_score = candidates[0], math.inf
        for r in candidates:
            others = sorted(float(dist[r, o]) for o in candidates if o != r)
            score = sum(others[:k])
            if score < best_score:
                best, best_score = r, score
        candidates.remove(best)
        chosen.append(best)
    return chosen
