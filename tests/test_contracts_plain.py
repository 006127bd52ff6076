"""PlainMarket (OmniLytics SecModelUpdate) on a real anvil: the full flow, masks cancelling,
multi-Krum picking the honest rounds, payment and conservation."""

from __future__ import annotations

import random

import pytest

from omniplus.contracts.chain import Anvil
from omniplus.contracts.plain import MaskingKey, PlainMarket, fixed_point, masked_vector, pairwise_mask, to_int256
from omniplus.contracts.rollup import PLAIN_SCALE
from omniplus.core.errors import ChainError

DIMS = 300  # two chunks (250 + 50): exercises the chunked upload and distance passes
N = 2
R = 8
DEPOSIT = 10**18


@pytest.fixture(scope="module")
def node():
    with Anvil(accounts=2 + N * R + 4) as a:
        yield a


def conserved(m: PlainMarket) -> None:
    """Deposit = credits + refund (once finished); the balance is exactly what is still owed."""
    acc = m.accounts()
    assert acc["totalWithdrawn"] <= acc["totalCredited"] <= acc["deposit"]
    assert acc["balance"] == acc["deposit"] - acc["totalWithdrawn"] - acc["refunded"]
    if m.state == "Finished":
        assert acc["deposit"] == acc["totalCredited"] + acc["refunded"]


def run_round(m: PlainMarket, keys: list[str], vectors: list[list[int]], round_index: int) -> None:
    for k in keys:
        m.register(k)
    assert m.state == "ModelAggregate"
    mkeys = [MaskingKey() for _ in keys]
    for k, mk in zip(keys, mkeys, strict=True):
        m.post_public_key(k, mk.public_bytes)
    pks = m.public_keys(round_index)
    assert pks == [mk.public_bytes for mk in mkeys]
    for i, (k, mk, v) in enumerate(zip(keys, mkeys, vectors, strict=True)):
        mask = pairwise_mask(i, mk, pks, round_index, len(v))
        m.upload(k, masked_vector(v, mask))


def test_full_flow_krum_selects_honest_rounds(node):
    rng = random.Random(7)
    w3, mo = node.w3, node.keys[0]
    dos = node.keys[2:2 + N * R]
    m = PlainMarket.deploy(w3, mo, DIMS, DEPOSIT)
    assert m.state == "Setup"
    m.whitelist(mo, [a.address for a in node.accounts[2:2 + N * R]])
    model = fixed_point([rng.uniform(-1, 1) for _ in range(DIMS)])
    m.load_model(mo, model)
    m.start(mo, rounds=R, per_round=N, mu=(1, 4), m=4)
    assert m.state == "Register"

    truth = [rng.gauss(0, 0.05) for _ in range(DIMS)]
    byzantine = {2, 5}  # mu * R = 2 rounds of random vectors
    plain_sums = []
    for r in range(R):
        keys = dos[r * N:(r + 1) * N]
        if r in byzantine:
            vecs = [fixed_point([rng.uniform(-1, 1) for _ in range(DIMS)]) for _ in keys]
        else:
            vecs = [fixed_point([t + rng.gauss(0, 0.01) for t in truth]) for _ in keys]
        run_round(m, keys, vecs, r)
        plain_sums.append([sum(col) for col in zip(*vecs, strict=True)])
        conserved(m)
    assert m.state == "OutlierSuppression"
    # the pairwise masks cancel exactly: the contract's sum is the sum of the plain vectors
    for r in range(R):
        assert m.round_sum(r) == [to_int256(s) for s in plain_sums[r]]
    # the MO's view: A_r = sum / N / 1e8 close to the truth for honest rounds
    a0 = [s / N / PLAIN_SCALE for s in m.round_sum(0)]
    assert max(abs(x - t) for x, t in zip(a0, truth, strict=True)) < 0.05

    m.suppress_outliers(mo, chunks_per_tx=1)  # two transactions: one chunk each, selection in the last
    assert m.state == "Payment"
    selected = m.selected_rounds()
    assert len(selected) == 4
    assert not set(selected) & byzantine

    share = DEPOSIT // (4 * N)
    for r in range(R):
        for k, acct in zip(dos[r * N:(r + 1) * N], node.accounts[2 + r * N:2 + (r + 1) * N], strict=True):
            assert m.credit(acct.address) == (share if r in selected else 0)
            if r in selected:
                before = w3.eth.get_balance(acct.address)
                rc = m.withdraw(k)
                fee = rc["gasUsed"] * rc["effectiveGasPrice"]
                assert w3.eth.get_balance(acct.address) == before + share - fee
            else:
                with pytest.raises(ChainError, match="NothingToWithdraw"):
                    m.withdraw(k)
        conserved(m)
    with pytest.raises(ChainError, match="NotModelOwner"):
        m.finish(dos[0])
    m.finish(mo)
    assert m.state == "Finished"
    conserved(m)
    assert m.accounts()["balance"] == 0


def test_default_m_is_the_paper_bound_and_rejections(node):
    """m defaults to the largest integer below (1-2mu)|P|-2; wrong states and repeat DOs are refused."""
    w3, mo = node.w3, node.keys[0]
    keys = node.keys[2:2 + N * R]
    m = PlainMarket.deploy(w3, mo, 10, DEPOSIT)
    with pytest.raises(ChainError, match="ModelNotLoaded"):
        m.start(mo, rounds=R, per_round=N)
    with pytest.raises(ChainError, match="WrongState"):
        m.register(keys[0])
    m.load_model(mo, [1] * 10)
    m.start(mo, rounds=R, per_round=N, mu=(1, 4))
    with pytest.raises(ChainError, match="WrongState"):
        m.load_model(mo, [1] * 10)
    rng = random.Random(1)
    for r in range(R):
        ks = keys[r * N:(r + 1) * N]
        if r == 0:
            m.register(ks[0])
            with pytest.raises(ChainError, match="AlreadyRegistered"):
                m.register(ks[0])
            m.register(ks[1])
            with pytest.raises(ChainError, match="WrongState"):
                m.register(keys[-1])  # round full: aggregating
            with pytest.raises(ChainError, match="NotRoundMember"):
                m.upload(keys[-1], [0] * 10)
        else:
            for k in ks:
                m.register(k)
        for k in ks:
            m.upload(k, [rng.randrange(-100, 100) for _ in range(10)])
        if r == 0:
            with pytest.raises(ChainError, match="AlreadyIncorporated"):
                m.register(ks[0])
    # |P| = 8, f = 2: (1 - 0.5)*8 - 2 = 2, so m = 1
    assert m._get("krumParams", 8) == [2, 1]
    m.suppress_outliers(mo)
    assert len(m.selected_rounds()) == 1
    m.finish(mo)
    conserved(m)
    assert m.accounts()["refunded"] == DEPOSIT - (DEPOSIT // N) * N


def test_exit_early_and_failed_round(node):
    """exit() by the MO after some rounds; a timed-out round fails and its DOs may come back."""
    w3, mo = node.w3, node.keys[0]
    keys = node.keys[2:2 + N * R]
    m = PlainMarket.deploy(w3, mo, 5, DEPOSIT, round_timeout=60)
    m.load_model(mo, [0] * 5)
    m.start(mo, rounds=R, per_round=N, mu=(0, 4), m=0)
    # round 0 times out with one upload missing
    m.register(keys[0])
    m.register(keys[1])
    m.upload(keys[0], [1] * 5)
    with pytest.raises(ChainError, match="RoundNotExpired"):
        m.fail_round(keys[5])
    node.increase_time(61)
    m.fail_round(keys[5])
    assert m.current_round() == 1 and m.state == "Register"
    for r in range(3):  # rounds 1..3 complete; keys[0] may register again
        ks = keys[2 * r:2 * r + 2]
        for k in ks:
            m.register(k)
        for i, k in enumerate(ks):
            m.upload(k, [10 * r + i] * 5)
    m.register(keys[10])
    with pytest.raises(ChainError, match="NotModelOwner"):
        m.exit(keys[10])
    m.exit(mo)
    assert m.state == "OutlierSuppression"
    assert m.successful_rounds() == [1, 2, 3]
    m.suppress_outliers(mo)
    # mu = 0: f = 0, bound 3 - 2 = 1 so m = max(1, ...) = 1... capped at |P| - f - 2 = 1
    assert len(m.selected_rounds()) == 1
    m.finish(mo)
    conserved(m)
