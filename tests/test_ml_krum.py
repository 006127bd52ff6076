"""multi-Krum over batch aggregates (OmniLytics Algorithm 1) and the attacks."""

from __future__ import annotations

import pytest
import torch

from omniplus.core.errors import InputError
from omniplus.ml.attacks import apply_attack
from omniplus.ml.krum import default_m, multi_krum


def test_multi_krum_selects_honest_aggregates() -> None:
    gen = torch.Generator().manual_seed(0)
    honest = [torch.ones(20) + 0.05 * torch.randn(20, generator=gen) for _ in range(6)]
    bad = [torch.randn(20, generator=gen) * 10 for _ in range(2)]
    aggs = honest[:3] + bad + honest[3:]  # indices 3 and 4 are corrupted
    for mu, ms in ((0.25, (1, 2, 3)), (0.5, (1, 2))):  # m within the paper's bound (1 − 2μ)|P| − 2 and a bit
        for m in ms:
            chosen = multi_krum(aggs, mu, m)
            assert len(chosen) == m and len(set(chosen)) == m
            assert not {3, 4} & set(chosen)
    assert default_m(8, 0.25) == 1 and default_m(20, 0.25) >= 7
    with pytest.raises(InputError):
        multi_krum(aggs, 0.25, m=9)


def test_attacks() -> None:
    u = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    assert torch.equal(apply_attack("scale", u, 0), u * 100)
    assert torch.equal(apply_attack("signflip", u, 0), -u)
    r = apply_attack("random", u, 1)
    assert r.shape == u.shape and float(r.abs().max()) <= 10
    with pytest.raises(InputError):
        apply_attack("nope", u, 0)
