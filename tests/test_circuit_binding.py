"""Binding: ρ known answer against an independent encoder, F by Horner, pack/unpack round-trip."""

from __future__ import annotations

import random

import pytest
from eth_abi.packed import encode_packed
from eth_utils import keccak

from omniplus.circuits.params import CircuitParams, R
from omniplus.core.errors import InputError
from omniplus.prover.binding import (
    BindingContext,
    binding_F,
    binding_preimage,
    binding_rho,
    pack_aggregate,
    public_inputs,
    unpack_words,
)

PARAMS = CircuitParams(batch=3, dims=40, bits=16, norm_bound=10**9)  # w=19, c=13, M=4


def test_derived_values():
    p = PARAMS.check()
    assert (p.norm_bits, p.offset, p.word_bits, p.per_word, p.n_words) == (30, 3 << 15, 19, 13, 4)
    assert CircuitParams.from_json(p.to_json()) == p


def test_rho_matches_independent_encode_packed():
    ctx = BindingContext(chain_id=31337, market="0x5FbDB2315678afecb367f032d93F642f64180aa3", task_id=7,
                         batch_index=2, payees=("0x" + "11" * 20, "0x" + "22" * 20))
    words = [123, 2**252 + 5, 0, 9]
    # Solidity pads address[] elements to 32 bytes; eth_abi's packed address[] does not, so the
    # payees are encoded as uint256[] here (same bytes as Solidity's abi.encodePacked).
    ref = encode_packed(
        ["uint256", "address", "uint256", "uint256", "uint256", "uint256[]", "uint256[]"],
        [ctx.chain_id, ctx.market, ctx.task_id, ctx.batch_index, len(ctx.payees),
         [int(p, 16) for p in ctx.payees], words],
    )
    assert binding_preimage(ctx, words) == ref
    assert len(ref) == 32 + 20 + 3 * 32 + 2 * 32 + 4 * 32
    assert binding_rho(ctx, words) == int.from_bytes(keccak(ref), "big") % R
    # A frozen known answer so an accidental layout change is caught even if both sides move.
    empty = BindingContext()
    assert binding_preimage(empty, [1]).hex() == (
        (31337).to_bytes(32, "big").hex() + "00" * 20 + "00" * 96 + (1).to_bytes(32, "big").hex()
    )


def test_rho_depends_on_every_field():
    base = BindingContext(payees=("0x" + "11" * 20,))
    words = [1, 2, 3, 4]
    rho = binding_rho(base, words)
    variants = [
        BindingContext(chain_id=1, payees=base.payees),
        BindingContext(market="0x" + "01" * 20, payees=base.payees),
        BindingContext(task_id=1, payees=base.payees),
        BindingContext(batch_index=1, payees=base.payees),
        BindingContext(payees=("0x" + "12" * 20,)),
        BindingContext(),
    ]
    assert all(binding_rho(v, words) != rho for v in variants)
    assert binding_rho(base, [1, 2, 3, 5]) != rho


def test_F_is_horner_of_powers():
    words = [5, 7, 11, 13]
    rho = 123456789
    assert binding_F(words, rho) == sum(w * pow(rho, m + 1, R) for m, w in enumerate(words)) % R


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
    words, rho, F = public_inputs(PARAMS, BindingContext(), rows)
    assert unpack_words(PARAMS, words) == [-1] * 40
    assert F == binding_F(words, rho)
