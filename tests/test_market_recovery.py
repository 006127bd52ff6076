"""The market's recovery check: a coordinate a DO clamped (a spike beyond 2^(k−1)−1 quantised units) is off
by the clamp, not by rounding; the map is diagonal, so it is counted apart and the rest must meet the bound."""

from __future__ import annotations

import torch

from omniplus.market_run import clamped_coordinates, recovery_check
from omniplus.ml.perturb import Recovered
from omniplus.ml.updates import QuantSpec


def _got(values: list[float]) -> Recovered:
    """body (2), t (1×1), p (1), mm (1×1), m (1), count: 7 coordinates in upload order."""
    v = torch.tensor(values, dtype=torch.float64)
    return Recovered(v[:2], v[2:3].reshape(1, 1), v[3:4], v[4:5].reshape(1, 1), v[5:6], float(v[6]))


def test_clamped_coordinates_are_counted_apart_and_the_rest_must_meet_the_bound() -> None:
    spec = QuantSpec(clip=1.0, target=100.0, bits=4, dims=7)  # limit 7
    rows = [[0, 7, 1, -2, 3, 0, 1], [1, 2, -8, 0, 0, 0, 1]]
    mask = clamped_coordinates(rows, spec)
    assert mask.tolist() == [False, True, True, False, False, False, False]
    truth, bound = torch.zeros(7, dtype=torch.float64), torch.ones(7, dtype=torch.float64)
    got = _got([0.5, 9.0, -4.0, 0.2, 0.1, 0.0, 0.9])
    assert not recovery_check(got, truth, bound)["within_bound"]  # without the mask the clamp breaks it
    rc = recovery_check(got, truth, bound, mask)
    assert rc["within_bound"] and rc["clamped"] == 2 and rc["clamped_worst_ratio"] > 8
    assert abs(rc["worst_ratio"] - 0.9) < 1e-3
    bad = _got([0.5, 9.0, -4.0, 1.5, 0.1, 0.0, 0.9])  # an unclamped coordinate over its bound still fails
    assert not recovery_check(bad, truth, bound, mask)["within_bound"]
