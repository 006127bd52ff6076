"""Contribution screening on shares (prover/mpc/screening.py): the same selection as the
cleartext reference (prover/contribution.py), over the in-process Net, before the aggregate."""

from __future__ import annotations

import json
import random

import pytest

from omniplus.circuits.params import CircuitParams
from omniplus.prover import contribution
from omniplus.prover.binding import BindingContext
from omniplus.prover.groth16_prove import NativeEngine
from omniplus.prover.groth16_verify import verify
from omniplus.prover.mpc.batch import g_values, make_block, run_batch_party, share_block
from omniplus.prover.mpc.layout import load_layout
from omniplus.prover.mpc.net import LocalHub, NetError, run_parties
from omniplus.prover.mpc.randomness import Rng
from omniplus.prover.mpc.screening import (
    is_low_score,
    low_score_reason,
    score_shares,
    screen,
    select_on_scores,
    signed,
)
from omniplus.prover.samples import agreeing_rows, valid_row
from omniplus.prover.zkey import read_zkey

PARAMS = CircuitParams(batch=4, dims=8, bits=6, norm_bound=2000)  # the devnet's parameters
PAYEES = {f"do{i}": "0x" + f"{i + 1:02x}" * 20 for i in range(6)}


def attack_rows(seed: int) -> dict[str, list[int]]:
    """Two honest DOs, a free-rider (zero update) and a sign-flipper (its honest update negated)."""
    h = agreeing_rows(PARAMS, random.Random(seed), 3)
    return {"do0": h[0], "do1": h[1], "do2": [0] * PARAMS.dims, "do3": [-x for x in h[2]]}


def reference(rows: dict[str, list[int]], min_score: int = 0, n_min: int = 2) -> contribution.Selection:
    ids = sorted(rows)
    return contribution.select([rows[d] for d in ids], min_score=min_score, n_min=n_min)


# ------------------------------------------------------------------ pure functions
def test_local_score_shares_of_clear_values_are_the_reference_scores() -> None:
    rng = random.Random(3)
    for _ in range(20):
        rows = [valid_row(PARAMS, rng) for _ in range(rng.randrange(1, 6))]
        assert [signed(s) for s in score_shares(rows)] == contribution.scores(rows)
    assert score_shares([]) == []
    with pytest.raises(ValueError):
        score_shares([[1, 2], [3]])


@pytest.mark.parametrize("seed", range(30))
def test_selection_on_a_score_oracle_is_contribution_select(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(1, 7)
    rows = {f"do{i}": (valid_row(PARAMS, rng) if rng.random() < 0.5 else agreeing_rows(PARAMS, rng, 1)[0])
            for i in range(n)}
    if rng.random() < 0.3:
        rows["do0"] = [0] * PARAMS.dims
    min_score, n_min = rng.choice((0, 0, 50, -50)), rng.randrange(1, 4)
    ids = sorted(rows)
    got = select_on_scores(ids, lambda kept: contribution.scores([rows[d] for d in kept]),
                           min_score=min_score, n_min=n_min)
    want = reference(rows, min_score, n_min)
    assert got.kept == tuple(ids[i] for i in want.kept)
    assert got.dropped == tuple((ids[i], s) for i, s in want.dropped)
    assert got.ok == want.ok(n_min)
    if got.ok:
        assert got.final == want.final
    assert all(s <= min_score for _, s in got.dropped)


def test_reasons_name_the_score_and_the_threshold() -> None:
    why = low_score_reason(-12, 0)
    assert "-12" in why and "≤ minScore 0" in why and is_low_score(why)
    assert not is_low_score("update violates the circuit")


# ------------------------------------------------------------------ over the in-process Net
def shared_g(rows: dict[str, list[int]], t: int, n: int) -> dict[int, dict[str, list[int]]]:
    per: dict[int, dict[str, list[int]]] = {j: {} for j in range(1, n + 1)}
    for do, row in rows.items():
        for j, s in share_block(row, t, n).items():
            per[j][do] = s
    return per


@pytest.mark.parametrize(("n", "t"), [(3, 1), (5, 2)])
def test_screening_on_shares_drops_the_free_rider_and_the_sign_flipper(n: int, t: int) -> None:
    rows = attack_rows(n)
    shares = shared_g(rows, t, n)
    outs = run_parties(n, lambda net: screen(net, t, shares[net.party], min_score=0, n_min=2, rng=Rng(),
                                             tag="screen"))
    first = outs[0]
    assert all(o == first for o in outs)  # every server reaches the same selection
    assert first.ok and first.kept == ("do0", "do1")
    assert [d for d, _ in first.dropped] == ["do3", "do2"]  # the flipper first, then the free-rider
    assert first.rounds[0] == dict(zip(sorted(rows), contribution.scores([rows[d] for d in sorted(rows)]),
                                       strict=True))
    assert first.final == tuple(contribution.scores([rows["do0"], rows["do1"]]))
    assert all(s > 0 for s in first.final)
    want = reference(rows)
    assert first.dropped == tuple((sorted(rows)[i], s) for i, s in want.dropped)


def test_a_server_with_a_wrong_share_is_detected_with_spare_points() -> None:
    """n = 4, t = 1: four points of a degree-2 opening (one spare), so one off point is caught."""
    n, t = 4, 1
    rows = attack_rows(1)
    shares = shared_g(rows, t, n)
    shares[4]["do0"][0] += 1  # server 4's share is off its polynomial
    with pytest.raises(NetError, match="degree-2"):
        run_parties(n, lambda net: screen(net, t, shares[net.party], min_score=0, n_min=2, rng=Rng(), tag="s"))


# ------------------------------------------------------------------ in the batch, before the aggregate
@pytest.fixture(scope="module")
def env4():
    from omniplus.prover.setup_cache import cached_setup

    setup = cached_setup(PARAMS)[0]
    return setup, load_layout(setup), read_zkey(setup.zkey)


class Recording:
    """A Net that notes every tag it sends (to show what was, and was not, opened)."""

    def __init__(self, net, tags):  # type: ignore[no-untyped-def]
        self.inner, self.tags = net, tags
        self.party, self.n = net.party, net.n

    def sign(self, data):  # type: ignore[no-untyped-def]
        return self.inner.sign(data)

    def verify(self, party, data, sig):  # type: ignore[no-untyped-def]
        return self.inner.verify(party, data, sig)

    def broadcast(self, tag, payload):  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        return self.inner.broadcast(tag, payload)

    def exchange(self, tag, payloads):  # type: ignore[no-untyped-def]
        self.tags.append(tag)
        return self.inner.exchange(tag, payloads)


def run_screened_batch(env, rows, n_min):  # type: ignore[no-untyped-def]
    setup, layout, zk = env
    blocks = {do: make_block(setup, layout, row) for do, row in rows.items()}
    per: dict[int, dict[str, list[int]]] = {j: {} for j in range(1, 4)}
    for do, block in blocks.items():
        for j, s in share_block(block, 1, 3).items():
            per[j][do] = s
    engine = NativeEngine(zk)
    tags: list[str] = []
    hub = LocalHub(3, timeout=300)
    import threading

    outs: dict[int, object] = {}
    errors: list[BaseException] = []

    def party(j: int) -> None:
        try:
            net = Recording(hub.net(j), tags) if j == 1 else hub.net(j)
            outs[j] = run_batch_party(net, 1, setup, zk, layout, engine, per[j], PAYEES, BindingContext(), Rng(),
                                      "b0", min_score=0, n_min=n_min)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            hub.abort(str(exc))

    threads = [threading.Thread(target=party, args=(j,)) for j in (1, 2, 3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(600)
    if errors:
        raise errors[0]
    return outs, tags, blocks


def test_the_aggregate_is_opened_only_of_the_kept_dos_and_the_proof_verifies(env4) -> None:
    setup, layout, _ = env4
    rows = attack_rows(7)
    outs, tags, blocks = run_screened_batch(env4, rows, n_min=2)
    first = outs[1]
    assert all(o.included == first.included and o.aggregate == first.aggregate for o in outs.values())
    assert first.included == ["do0", "do1"]
    assert first.aggregate == [a + b for a, b in zip(rows["do0"], rows["do1"], strict=True)]
    assert first.verdicts["do0"] is None and first.verdicts["do1"] is None
    assert is_low_score(first.verdicts["do2"]) and "score 0 " in first.verdicts["do2"]
    assert is_low_score(first.verdicts["do3"])
    assert first.screening is not None
    assert first.screening.final == tuple(contribution.scores([rows["do0"], rows["do1"]]))
    assert [[signed(x) for x in g_values(layout, blocks[d], PARAMS.dims)] for d in ("do0", "do1")] == [
        rows["do0"], rows["do1"]]
    screen_at = max(i for i, tg in enumerate(tags) if tg.startswith("b0/screen"))
    agg_at = min(i for i, tg in enumerate(tags) if tg.startswith("b0/aggregate"))
    assert screen_at < agg_at  # every score was opened before the aggregate
    vkey = json.loads(setup.vkey.read_text())
    assert verify(vkey, first.proof, first.public)


def test_too_few_left_after_screening_opens_no_aggregate(env4) -> None:
    rows = attack_rows(8)
    rows = {"do0": rows["do0"], "do2": rows["do2"], "do3": rows["do3"]}  # one honest DO, two attackers
    outs, tags, _ = run_screened_batch(env4, rows, n_min=2)
    first = outs[1]
    assert first.included == [] and first.aggregate == [] and first.proof is None
    assert first.screening is not None and not first.screening.ok
    assert not any("aggregate" in tg for tg in tags)
    # alone with the flipper, the honest DO scores the same as it (<h, f> both): the tie drops the
    # smaller id, then one of the two remaining is dropped and fewer than N_min are left
    want = reference(rows)
    assert not want.ok(2)
    assert first.screening.dropped == tuple((sorted(rows)[i], s) for i, s in want.dropped)
    assert all(is_low_score(first.verdicts[d]) for d, _ in first.screening.dropped)
