"""Binding: ctx known answer against an independent ABI encoder, public inputs [ctx, W…], pack/unpack."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from eth_abi import encode
from eth_utils import keccak

from omniplus.circuits.params import CircuitParams, R
from omniplus.core.errors import InputError
from omniplus.prover.binding import (
    BindingContext,
    binding_ctx,
    ctx_preimage,
    pack_aggregate,
    pack_scores,
    public_inputs,
    public_signals,
    unpack_scores,
    unpack_words,
)
from omniplus.prover.contribution import scores

PARAMS = CircuitParams(batch=3, dims=40, bits=16, norm_bound=10**9)  # w=19, c=13, M=4


def test_derived_values():
    p = PARAMS.check()
    assert (p.norm_bits, p.offset, p.word_bits, p.per_word, p.n_words) == (30, 3 << 15, 19, 13, 4)
    assert CircuitParams.from_json(p.to_json()) == p


def test_ctx_matches_independent_abi_encode():
    ctx = BindingContext.for_batch(chain_id=31337, market="0x5FbDB2315678afecb367f032d93F642f64180aa3",
                                   task_id=7, batch_index=2, payees=("0x" + "11" * 20, "0x" + "22" * 20),
                                   model_version=2)
    payees_h = keccak(b"".join(b"\0" * 12 + bytes.fromhex(p[2:]) for p in ctx.payees))
    ref = encode(["uint256", "address", "uint256", "uint256", "uint256", "bytes32"],
                 [ctx.chain_id, ctx.market, ctx.task_id, ctx.batch_index, ctx.model_version, payees_h])
    assert ctx_preimage(ctx) == ref
    assert len(ref) == 6 * 32
    assert binding_ctx(ctx) == int.from_bytes(keccak(ref), "big") % R
    assert public_signals(ctx, [5, 6], [7]) == [binding_ctx(ctx), 5, 6, 7]


def test_ctx_depends_on_every_field():
    base = BindingContext.for_batch(chain_id=31337, market="0x" + "00" * 20, task_id=0, batch_index=0,
                                    payees=("0x" + "11" * 20,))
    ctx0 = binding_ctx(base)
    variants = [
        replace(base, chain_id=1),
        replace(base, market="0x" + "01" * 20),
        replace(base, task_id=1),
        replace(base, batch_index=1),
        replace(base, model_version=1),
        replace(base, payees=("0x" + "12" * 20,)),
        replace(base, payees=()),
    ]
    assert all(binding_ctx(v) != ctx0 for v in variants)


def test_for_batch_normalises_payees():
    a = BindingContext.for_batch(chain_id=1, market="0x" + "AB" * 20, task_id=b"\x01" * 32, batch_index=3,
                                 payees=["0x" + "CD" * 20])
    b = BindingContext.for_batch(chain_id=1, market="0x" + "ab" * 20, task_id=int.from_bytes(b"\x01" * 32, "big"),
                                 batch_index=3, payees=[bytes.fromhex("cd" * 20)], model_version=3)
    assert a == b and binding_ctx(a) == binding_ctx(b)


def test_pack_unpack_round_trip():
    rng = random.Random(1)
    lim = PARAMS.offset
    for agg in ([0] * 40, [-lim] * 40, [lim - PARAMS.batch] * 40,
                [rng.randint(-lim, lim - 3) for _ in range(40)]):
        words = pack_aggregate(PARAMS, agg)
        assert len(words) == PARAMS.n_words
        assert all(0 <= w < 2 ** (PARAMS.word_bits * PARAMS.per_word) < 2**253 for w in words)
        assert unpack_words(PARAMS, words) == agg
    # negatives given as field elements pack the same way
    assert pack_aggregate(PARAMS, [(-5) % R] + [0] * 39) == pack_aggregate(PARAMS, [-5] + [0] * 39)


def test_pack_layout_slot_zero_low_bits():
    p = CircuitParams(batch=2, dims=3, bits=8, norm_bound=100)  # w=10, offset=256
    assert pack_aggregate(p, [1, 2, -3]) == [(1 + 256) + ((2 + 256) << 10) + ((-3 + 256) << 20)]


def test_pack_unpack_errors():
    with pytest.raises(InputError, match="coordinates"):
        pack_aggregate(PARAMS, [0] * 39)
    with pytest.raises(InputError, match="coordinate 3"):
        pack_aggregate(PARAMS, [0, 0, 0, 1 << 20] + [0] * 36)
    with pytest.raises(InputError, match="packed words"):
        unpack_words(PARAMS, [0] * 3)
    with pytest.raises(InputError, match="outside"):
        unpack_words(PARAMS, [0, 0, 0, 1 << 247])
    bad = pack_aggregate(PARAMS, [0] * 40)
    bad[-1] += 1 << (PARAMS.word_bits * 5)  # last word uses only 40 - 39 = 1 slot
    with pytest.raises(InputError, match="non-zero slot"):
        unpack_words(PARAMS, bad)


def test_public_inputs_consistent():
    rows = [[1] * 40, [-2] * 40]
    words, signals = public_inputs(PARAMS, BindingContext(), rows)
    assert unpack_words(PARAMS, words) == [-1] * 40
    assert signals == [binding_ctx(BindingContext()), *words, *pack_scores(PARAMS, scores(rows))]
    # s_i = <g_i, a - g_i> with a = -1 everywhere: 40·(1·-2) and 40·(-2·1); the empty slot scores 0
    assert unpack_scores(PARAMS, signals[1 + len(words):]) == [-80, -80, 0]


def test_score_packing_round_trip_and_range():
    off = PARAMS.score_offset
    assert off == 2 * 10**9 and PARAMS.score_bits == (2 * off).bit_length() + 1
    for vals in ([off, -off, 0], [1, -1], [5]):
        words = pack_scores(PARAMS, vals)
        assert len(words) == PARAMS.n_score_words
        assert unpack_scores(PARAMS, words) == vals + [0] * (PARAMS.batch - len(vals))
    assert pack_scores(PARAMS, [(-3) % R]) == pack_scores(PARAMS, [-3])  # field form of a negative
    with pytest.raises(InputError, match="outside"):
        pack_scores(PARAMS, [off + 1])
    with pytest.raises(InputError, match="4 scores for 3"):
        pack_scores(PARAMS, [0, 0, 0, 0])
    with pytest.raises(InputError, match="exceeds"):
        unpack_scores(PARAMS, [(2 * off + 1)])
