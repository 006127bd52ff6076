"""Pay by contribution in one simulated batch/round (ml/pay_round.py): who is kept, who is paid, and
that every wei of the budget is accounted for."""

from __future__ import annotations

import random

import pytest
import torch

from omniplus.core.errors import InputError
from omniplus.ml.pay_round import PayRule, market_round, passes_screen, reference_update, settle_batch
from omniplus.ml.updates import QuantSpec

D = 64
SPEC = QuantSpec(clip=1.0, target=60.0, bits=6, dims=D)
B = SPEC.norm_bound


def _honest(rng: random.Random, base: list[int], noise: int = 3) -> list[int]:
    return [max(-32, min(31, b + rng.randint(-noise, noise))) for b in base]


def _batch(seed: int = 1) -> tuple[list[list[int]], list[int]]:
    rng = random.Random(seed)
    base = [rng.choice((-4, 4)) for _ in range(D)]
    honest = [_honest(rng, base) for _ in range(3)]
    return honest + [[0] * D, [-x for x in honest[0]]], base


def test_zero_and_signflip_get_nothing_and_budget_is_conserved() -> None:
    rows, _ = _batch()
    budget = 10**18 + 7
    out = settle_batch([10, 11, 12, 13, 14], rows, SPEC, B, budget, PayRule(screen_cos=None))
    assert out.kept == (10, 11, 12)
    assert out.reasons[13] == "score" and out.reasons[14] == "score"
    assert 13 not in out.paid and 14 not in out.paid
    assert all(out.paid[i] > 0 for i in out.kept)
    assert sum(out.paid.values()) + out.dust == budget and 0 <= out.dust < len(out.kept)
    assert out.aggregate == [sum(c) for c in zip(*rows[:3], strict=True)]


def test_equal_pay_pays_every_valid_do_the_same() -> None:
    rows, _ = _batch()
    big = [x * 100 for x in rows[0]]  # x100 breaks the bound
    out = settle_batch(list(range(6)), [*rows, big], SPEC, B, 1001, PayRule(mode="equal"))
    assert out.reasons == {5: "bound"}
    assert set(out.paid.values()) == {1001 // 5} and out.dust == 1001 - 5 * (1001 // 5)


def test_colluding_signflippers_pass_the_batch_score_but_not_the_screen() -> None:
    """Two sign-flippers sending one shared vector at the full norm vouch for each other."""
    rng = random.Random(3)
    base = [rng.choice((-2, 2)) for _ in range(D)]
    honest = [_honest(rng, base, noise=8) for _ in range(3)]  # noisy: pairwise cosine ~ 0.2
    flip = [-x * 4 for x in base]  # norm 64, inside the bound
    assert sum(x * x for x in flip) <= B
    members, batch = [0, 1, 2, 3, 4], [*honest, flip, flip]
    plain = settle_batch(members, batch, SPEC, B, 10**6, PayRule(screen_cos=None))
    assert plain.paid.get(3, 0) > 0 and plain.paid.get(4, 0) > 0  # the reason for the screen
    ref = [x * 5 for x in base]
    screened = settle_batch(members, batch, SPEC, B, 10**6, PayRule(screen_cos=0.1), reference=ref)
    assert screened.reasons[3] == screened.reasons[4] == "screen"
    assert set(screened.kept) <= {0, 1, 2} and screened.kept and sum(screened.paid.values()) + screened.dust == 10**6


def test_screen_is_an_exact_cosine_threshold() -> None:
    r = [3, 4] + [0] * (D - 2)  # |r| = 5
    assert passes_screen([3, 4] + [0] * (D - 2), r, 0.99)
    assert not passes_screen([-3, -4] + [0] * (D - 2), r, 0.0)  # negative agreement never passes
    assert passes_screen([4, 3] + [0] * (D - 2), r, 0.96)  # cos = 24/25 exactly
    assert not passes_screen([4, 3] + [0] * (D - 2), r, 0.9601)


def test_batch_below_n_min_pays_nobody() -> None:
    rows, _ = _batch()
    out = settle_batch([0, 1, 2], [rows[0], rows[3], rows[4]], SPEC, B, 500, PayRule(n_min=2, screen_cos=None))
    assert out.paid == {} and out.dust == 500 and out.aggregate is None


def test_round_conserves_and_krum_does_not_change_pay() -> None:
    rows, base = _batch(5)
    rng = random.Random(9)
    batches = [([0, 1, 2, 3, 4], rows)] + [([10 * k, 10 * k + 1, 10 * k + 2], [_honest(rng, base) for _ in range(3)])
                                           for k in range(1, 4)]
    ref = [x * 5 for x in base]
    plain = market_round(batches, SPEC, B, 999, PayRule(), ref)
    krum = market_round(batches, SPEC, B, 999, PayRule(mu=0.25), ref)
    assert [b.paid for b in plain.batches] == [b.paid for b in krum.batches]
    assert all(sum(b.paid.values()) + b.dust == 999 for b in plain.batches)
    assert plain.delta is not None and plain.delta.shape == (D,)
    assert len(krum.used) < len(plain.used)


def test_reference_update_adds_unit_directions() -> None:
    own, last = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 10.0, 5.0])  # last is cut to d
    assert torch.allclose(reference_update(own, last), torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(reference_update(own), torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_bad_rule_is_refused() -> None:
    with pytest.raises(InputError):
        PayRule(mode="shapley")
    with pytest.raises(InputError):
        PayRule(screen_cos=1.5)
