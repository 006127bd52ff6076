"""Quantisation of ML updates: stochastic rounding is unbiased with error < 1 step; the de-quantised
aggregate equals the float sum within the bound; B admits every clipped update, ×100 breaks it."""

from __future__ import annotations

import math
import random

import pytest
import torch

from omniplus.core.errors import InputError
from omniplus.ml.attacks import apply_attack
from omniplus.ml.model import check_public, make_model, private_params, public_params, public_size
from omniplus.ml.updates import (
    QuantSpec,
    clip_l2,
    dequantize,
    fedavg_delta,
    flatten,
    quantize_chunked,
    quantize_update,
    unflatten_into,
)
from omniplus.prover.quantize import stochastic_round

SPEC = QuantSpec(clip=2.0, target=60.0, bits=6, dims=100)


def test_stochastic_round_error_below_one_and_unbiased() -> None:
    rng = random.Random(1)
    xs = [rng.uniform(-20, 20) for _ in range(200)]
    q = stochastic_round(xs, seed=2)
    assert all(abs(a - b) < 1 for a, b in zip(q, xs, strict=True))
    assert all(v in (math.floor(x), math.floor(x) + 1) for v, x in zip(q, xs, strict=True))
    # unbiased: the mean of many roundings of 0.3 tends to 0.3 (± 4 standard errors)
    n = 20000
    mean = sum(stochastic_round([0.3] * n, seed=3)) / n
    assert abs(mean - 0.3) < 4 * math.sqrt(0.21 / n)
    assert stochastic_round([2.0, -3.0], seed=0) == [2, -3]  # integers stay put
    with pytest.raises(InputError):
        stochastic_round([float("nan")])


def test_clip_and_norm_bound_admits_every_honest_update() -> None:
    gen = torch.Generator().manual_seed(0)
    for i in range(20):
        u = torch.randn(90, generator=gen, dtype=torch.float64) * (0.1 + i)
        assert float(clip_l2(u, SPEC.clip).norm()) <= SPEC.clip + 1e-9
        q = quantize_update(u, SPEC, seed=i)
        assert len(q) == SPEC.dims  # zero-padded to the circuit's d
        assert all(-(1 << 5) <= v < (1 << 5) for v in q)
        assert sum(v * v for v in q) <= SPEC.norm_bound
        bad = quantize_update(apply_attack("scale", clip_l2(u, SPEC.clip), i), SPEC, seed=i, clip=False)
        if float(u.norm()) > 0.05:
            assert sum(v * v for v in bad) > SPEC.norm_bound  # ×100: rejected by the servers


def test_per_chunk_clipping_keeps_every_chunk_in_its_own_bound() -> None:
    """One layer far larger than the others: a global clip would let it use the whole norm budget
    and put that chunk over B; per-chunk clipping keeps every chunk in B and leaves small chunks alone."""
    gen = torch.Generator().manual_seed(4)
    u = torch.cat([torch.randn(100, generator=gen, dtype=torch.float64) * 50,  # a huge layer
                   torch.randn(150, generator=gen, dtype=torch.float64) * 0.01])
    chunks = quantize_chunked(u, SPEC, seed=1)
    assert len(chunks) == 3 and all(len(c) == SPEC.dims for c in chunks)
    assert all(sum(v * v for v in c) <= SPEC.norm_bound for c in chunks)
    assert chunks[2][50:] == [0] * 50  # the last chunk is zero-padded
    small = quantize_update(u[100:200], SPEC, seed=1_000_003 + 1)
    assert chunks[1] == small  # a chunk inside its bound is not scaled down by the big one
    unclipped = quantize_chunked(u, SPEC, seed=1, clip=False)
    assert sum(v * v for v in unclipped[0]) > SPEC.norm_bound  # without clipping chunk 0 breaks B


def test_dequantised_aggregate_equals_float_sum_within_bound() -> None:
    gen = torch.Generator().manual_seed(1)
    ups = [clip_l2(torch.randn(100, generator=gen, dtype=torch.float64), SPEC.clip) for _ in range(5)]
    qs = [quantize_update(u, SPEC, seed=i) for i, u in enumerate(ups)]
    agg = [sum(c) for c in zip(*qs, strict=True)]  # what the servers open and post on-chain
    err = (dequantize(agg, SPEC) - sum(ups)).abs().max()
    assert float(err) < len(ups) / SPEC.scale  # each DO contributes < 1 step per coordinate
    mean = fedavg_delta(agg, len(ups), SPEC)
    assert float((mean - sum(ups) / len(ups)).abs().max()) < 1 / SPEC.scale
    with pytest.raises(InputError):
        fedavg_delta(agg, 0, SPEC)


def test_public_private_split_and_flatten_roundtrip() -> None:
    m = make_model({"in_features": 64, "hidden": [8], "classes": 10}, 0)
    assert check_public(m, ["fc1"]) == ["fc1"] and public_size(m, ["fc1"]) == 64 * 8 + 8
    assert {id(p) for p in private_params(m, ["fc1"])} == {id(m.fc2.weight), id(m.fc2.bias)}
    v = flatten(public_params(m, ["fc1"]))
    unflatten_into(public_params(m, ["fc1"]), torch.zeros_like(v))
    assert float(flatten(public_params(m, ["fc1"])).abs().sum()) == 0
    unflatten_into(public_params(m, ["fc1"]), v)
    assert torch.equal(flatten(public_params(m, ["fc1"])), v)
    with pytest.raises(InputError):
        check_public(m, ["fc1", "fc2"])  # something must stay private
    with pytest.raises(InputError):
        check_public(m, ["conv9"])
