"""Share validation (consistency + validity) run by 3 and 5 in-process parties."""

from __future__ import annotations

import pytest

from omniplus.prover.field import R
from omniplus.prover.mpc.net import LocalHub, NetError, run_parties
from omniplus.prover.mpc.randomness import Rng, joint_coin, joint_sharings, poly_shares
from omniplus.prover.mpc.validation import REASON_INCONSISTENT, REASON_INVALID, BlockCircuit, residual, validate_blocks
from omniplus.prover.shamir import reconstruct

# Block: [g, b0, b1, b2]; bits boolean and g + 4 = b0 + 2 b1 + 4 b2, so g ∈ [-4, 4).
TOY = BlockCircuit(
    size=4,
    constraints=(
        ({1: 1}, {1: 1, -1: R - 1}, {}),
        ({2: 1}, {2: 1, -1: R - 1}, {}),
        ({3: 1}, {3: 1, -1: R - 1}, {}),
        ({-1: 1}, {1: 1, 2: 2, 3: 4}, {0: 1, -1: 4}),
    ),
)


def block(g: int) -> list[int]:
    v = g + 4
    return [g % R, v & 1, (v >> 1) & 1, (v >> 2) & 1]


def share_blocks(clear: dict[str, list[int]], t: int, n: int, seed: bytes) -> dict[int, dict[str, list[int]]]:
    rng = Rng(seed)
    per_party: dict[int, dict[str, list[int]]] = {j: {} for j in range(1, n + 1)}
    for do, values in clear.items():
        for j, shares in poly_shares(values, t, n, rng).items():
            per_party[j][do] = shares
    return per_party


def test_residual_is_zero_exactly_on_valid_blocks() -> None:
    rhos = [3, 5, 7, 11]
    for g in range(-4, 4):
        assert residual(TOY, block(g), rhos) == 0
    bad = block(1)
    bad[0] = 5 % R  # claims g = 5 with the bits of 1
    assert residual(TOY, bad, rhos) != 0


@pytest.mark.parametrize(("n", "t"), [(3, 1), (5, 2)])
def test_validation_accepts_valid_rejects_invalid_and_inconsistent(n: int, t: int) -> None:
    invalid = block(2)
    invalid[1] = 1  # bits now say 7, but g + 4 = 6
    clear = {"alice": block(-3), "bob": block(3), "carol": invalid, "dave": block(0)}
    shares = share_blocks(clear, t, n, b"seed")
    shares[1]["dave"][2] = (shares[1]["dave"][2] + 1) % R  # one server's share of dave is off the curve

    def body(net):
        return validate_blocks(net, t, TOY, shares[net.party], Rng(), round_id="r1")

    verdicts = run_parties(n, body)
    assert all(v == verdicts[0] for v in verdicts), "every server reaches the same verdicts"
    assert verdicts[0] == {"alice": None, "bob": None, "carol": REASON_INVALID, "dave": REASON_INCONSISTENT}


def test_validation_needs_2t_plus_1_parties() -> None:
    hub = LocalHub(2)
    with pytest.raises(NetError, match="2t\\+1"):
        validate_blocks(hub.net(1), 1, TOY, {}, Rng(), "r")


def test_joint_sharings_are_degree_t_and_zero_sharings_open_to_zero() -> None:
    n, t = 5, 2

    def body(net):
        rnd = joint_sharings(net, "rand", 3, t, Rng())
        zero = joint_sharings(net, "zero", 3, 2 * t, Rng(), zero=True)
        coin = joint_coin(net, "coin", Rng(), b"bind")
        return rnd, zero, coin

    out = run_parties(n, body)
    coins = {o[2] for o in out}
    assert len(coins) == 1
    for i in range(3):
        rnd_pts = {j + 1: out[j][0][i] for j in range(n)}
        zero_pts = {j + 1: out[j][1][i] for j in range(n)}
        # any t+1 of the random sharing give the same value
        a = reconstruct({x: rnd_pts[x] for x in (1, 2, 3)})
        b = reconstruct({x: rnd_pts[x] for x in (3, 4, 5)})
        assert a == b
        assert reconstruct(zero_pts) == 0


def test_a_party_that_dies_aborts_the_round_for_everyone() -> None:
    def body(net):
        if net.party == 2:
            raise RuntimeError("server 2 crashed")
        return joint_sharings(net, "rand", 1, 1, Rng())

    with pytest.raises(RuntimeError, match="server 2 crashed"):
        run_parties(3, body, timeout=30)
