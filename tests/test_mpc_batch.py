"""The collaborative prover in-process: validation, aggregate, one proof per batch, and privacy.

The transport is the in-process hub (the gRPC transport is tested in test_network_*); the
proofs are real and are checked by snarkjs' own verifier and the Python verifier.
"""

from __future__ import annotations

import json
import random

import pytest

from omniplus.prover.binding import (
    BindingContext,
    binding_ctx,
    pack_aggregate,
    pack_scores,
    public_signals,
    unpack_scores,
    unpack_words,
)
from omniplus.prover.contribution import scores
from omniplus.prover.field import R
from omniplus.prover.groth16_prove import NativeEngine
from omniplus.prover.groth16_verify import verify
from omniplus.prover.mpc.batch import make_block, run_batch_party, share_block, witness_shares
from omniplus.prover.mpc.groth16 import joint_randomness, prove_party
from omniplus.prover.mpc.layout import load_layout
from omniplus.prover.mpc.net import LocalHub, NetError, run_parties
from omniplus.prover.mpc.randomness import Rng
from omniplus.prover.mpc.validation import REASON_INCONSISTENT, REASON_INVALID
from omniplus.prover.proof import proof_to_json
from omniplus.prover.samples import valid_row
from omniplus.prover.shamir import lagrange_at
from omniplus.prover.snarkjs_verify import snarkjs_verify
from omniplus.prover.zkey import read_zkey

PAYEES = {f"do{i}": "0x" + f"{i + 1:02x}" * 20 for i in range(6)}


@pytest.fixture(scope="module")
def batch_env(small_setup):
    return small_setup, load_layout(small_setup), read_zkey(small_setup.zkey)


def share_all(blocks: dict[str, list[int]], t: int, n: int) -> dict[int, dict[str, list[int]]]:
    per: dict[int, dict[str, list[int]]] = {j: {} for j in range(1, n + 1)}
    for do, block in blocks.items():
        for j, s in share_block(block, t, n).items():
            per[j][do] = s
    return per


def run_batch(env, shares, n, t, engine_factory=None, seeds=None, ctx=None):
    setup, layout, zk = env
    engine = (engine_factory or NativeEngine)(zk)

    def body(net):
        rng = Rng(seeds[net.party]) if seeds else Rng()
        return run_batch_party(net, t, setup, zk, layout, engine, shares[net.party], PAYEES,
                               ctx or BindingContext(), rng, "batch0")

    return run_parties(n, body)


@pytest.mark.parametrize(("n", "t"), [(3, 1), (5, 2)])
def test_joint_proof_verifies_and_excludes_invalid(batch_env, tmp_path, n, t) -> None:
    setup, layout, _ = batch_env
    params = setup.params
    rng = random.Random(n)
    rows = {"do0": valid_row(params, rng), "do1": valid_row(params, rng)}
    blocks = {do: make_block(setup, layout, row) for do, row in rows.items()}
    bad = make_block(setup, layout, [0] * params.dims)
    bad[layout.block_names.index("g[0]")] = 2 ** params.bits  # out of range, bits unchanged
    blocks["do2"] = bad
    shares = share_all(blocks, t, n)

    outcomes = run_batch(batch_env, shares, n, t)
    first = outcomes[0]
    assert all(o.proof == first.proof and o.verdicts == first.verdicts for o in outcomes)
    assert first.verdicts == {"do0": None, "do1": None, "do2": REASON_INVALID}
    assert first.included == ["do0", "do1"]
    expected = [a + b for a, b in zip(rows["do0"], rows["do1"], strict=True)]
    assert first.aggregate == expected
    assert unpack_words(params, first.words) == expected
    ctx = BindingContext.for_batch(chain_id=31337, market="0x" + "00" * 20, task_id=0, batch_index=0,
                                   payees=(PAYEES["do0"], PAYEES["do1"]))
    # the servers' opened scores are prover/contribution.py's on the same quantised rows, and they
    # are the proof's public score words (slot order)
    assert first.scores == scores([rows["do0"], rows["do1"]])
    assert first.public == [binding_ctx(ctx), *first.words, *pack_scores(params, first.scores)]
    assert unpack_scores(params, first.public[1 + params.n_words:]) == first.scores + [0] * (params.batch - 2)

    vkey = json.loads(setup.vkey.read_text())
    assert verify(vkey, first.proof, first.public)
    (tmp_path / "proof.json").write_text(json.dumps(proof_to_json(first.proof)))
    (tmp_path / "public.json").write_text(json.dumps([str(x) for x in first.public]))
    assert snarkjs_verify(setup.vkey, tmp_path / "public.json", tmp_path / "proof.json")
    # the same proof does not verify for other payees (another ctx), nor for any other word
    assert not verify(vkey, first.proof, [(first.public[0] + 1) % R, *first.public[1:]])
    for m in range(len(first.public) - 1):  # every aggregate word and every score word
        other = list(first.public)
        other[1 + m] += 1
        assert not verify(vkey, first.proof, other)
    # other scores for the same rows (do0 credited one more, do1 one less) do not verify either
    shifted = pack_scores(params, [first.scores[0] + 1, first.scores[1] - 1])
    assert not verify(vkey, first.proof, [*first.public[: 1 + params.n_words], *shifted])


def test_joint_proof_with_the_snarkjs_engine(batch_env) -> None:
    from omniplus.prover.engine import SnarkjsEngine

    setup, layout, zk = batch_env
    rows = {"do0": valid_row(setup.params, random.Random(7))}
    shares = share_all({d: make_block(setup, layout, r) for d, r in rows.items()}, 1, 3)
    outcomes = run_batch(batch_env, shares, 3, 1, engine_factory=lambda zk: SnarkjsEngine(setup.zkey))
    o = outcomes[0]
    assert verify(json.loads(setup.vkey.read_text()), o.proof, o.public)


def test_inconsistent_shares_exclude_the_do(batch_env) -> None:
    setup, layout, _ = batch_env
    rows = {"do0": valid_row(setup.params, random.Random(1)),
            "do1": valid_row(setup.params, random.Random(2))}
    shares = share_all({d: make_block(setup, layout, r) for d, r in rows.items()}, 1, 3)
    shares[2]["do1"][5] = (shares[2]["do1"][5] + 1) % R  # server 2 got a share off do1's polynomial
    o = run_batch(batch_env, shares, 3, 1)[0]
    assert o.verdicts == {"do0": None, "do1": REASON_INCONSISTENT}
    assert o.included == ["do0"] and o.aggregate == rows["do0"]


def test_a_wrong_share_from_a_server_is_caught_before_round_two(batch_env) -> None:
    """Server 3 corrupts one wire of its witness share after validation: with n = 2t+1 the
    degree-t openings of round 1 have a spare share, so every server stops there."""
    setup, layout, zk = batch_env
    row = valid_row(setup.params, random.Random(3))
    shares = share_all({"do0": make_block(setup, layout, row)}, 1, 3)
    words = pack_aggregate(setup.params, row)
    pub = public_signals(BindingContext(payees=(PAYEES["do0"],)), words, pack_scores(setup.params, [0]))
    engine = NativeEngine(zk)

    def body(net):
        w = witness_shares(setup, layout, [shares[net.party]["do0"]], pub, row)
        if net.party == 3:
            w[layout.slot_wires[0][3]] = (w[layout.slot_wires[0][3]] + 1) % R
        rnd = joint_randomness(net, 1, Rng(), "bad/blind")
        return prove_party(net, 1, zk, engine, w, rnd, "bad/prove")

    with pytest.raises(NetError, match="inconsistent"):
        run_parties(3, body, timeout=120)


def test_view_of_one_server_depends_only_on_its_shares_and_public_outputs(batch_env) -> None:
    """Privacy (t = 1, n = 3). Two batches with different updates but the same aggregate; every
    server coin is fixed, and the DOs' sharing polynomials are chosen so that server 1 holds
    the same shares in both. Then everything server 1 receives that is not masked by an honest
    server's fresh randomness must be byte-identical, and the masked openings must be exactly
    what its own share and the public outputs determine."""
    setup, layout, zk = batch_env
    params = setup.params
    lim = 2 ** (params.bits - 1) - 1
    x = [1, -2] + [0] * (params.dims - 2)
    y = [-1, 2] + [0] * (params.dims - 2)
    x2 = [2, -1] + [0] * (params.dims - 2)  # x + y == x2 + y2
    y2 = [-2, 1] + [0] * (params.dims - 2)
    assert max(map(abs, x + y + x2 + y2)) <= lim

    def coupled_shares(rows):
        blocks = {d: make_block(setup, layout, r) for d, r in rows.items()}
        per = {j: {} for j in (1, 2, 3)}
        for do, block in blocks.items():
            own = Rng(b"server1-view" + do.encode())
            for j in (1, 2, 3):
                per[j][do] = []
            for v in block:
                s1 = own.field()  # server 1's share: the same in both worlds
                slope = (s1 - v) % R  # f(x) = v + slope·x, f(1) = s1
                for j in (1, 2, 3):
                    per[j][do].append((v + slope * j) % R)
        return per

    seeds = {1: b"s1", 2: b"s2", 3: b"s3"}
    views = []
    for rows in ({"do0": x, "do1": y}, {"do0": x2, "do1": y2}):
        hub_views: dict[str, dict[int, bytes]] = {}
        shares = coupled_shares(rows)
        assert shares[1] == coupled_shares({"do0": x, "do1": y})[1]

        from omniplus.prover.mpc import net as net_mod
        from omniplus.prover.mpc.audit import _unpack

        class Recording(net_mod.LocalNet):
            """Keeps everything party 1 receives: its whole view of the protocol."""

            view: dict[str, dict[int, bytes]] = hub_views

            def broadcast(self, tag, payload):
                got = super().broadcast(tag, payload)
                if self.party == 1:
                    # committed broadcasts: the commitments and echoes are hashes of (fresh salt,
                    # reveal) and signatures; what a reveal carries past its salt is the message
                    if tag.endswith("/reveal"):
                        self.view[tag.removesuffix("/reveal")] = {
                            j: _unpack(p, 2, tag, j)[0][32:] for j, p in got.items()
                        }
                    elif not tag.endswith(("/commit", "/echo")):
                        self.view[tag] = got
                return got

            def exchange(self, tag, payloads):
                got = super().exchange(tag, payloads)
                if self.party == 1:
                    self.view[tag] = got
                return got

        hub = LocalHub(3)
        engine = NativeEngine(zk)
        outs = {}
        import threading

        def target(j, hub=hub, shares=shares, engine=engine, outs=outs):
            outs[j] = run_batch_party(Recording(hub, j), 1, setup, zk, layout, engine, shares[j], PAYEES,
                                      BindingContext(), Rng(seeds[j]), "batch0")

        threads = [threading.Thread(target=target, args=(j,)) for j in (1, 2, 3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        views.append((hub_views, outs[1]))

    (v1, o1), (v2, o2) = views
    assert o1.aggregate == o2.aggregate and o1.verdicts == o2.verdicts == {"do0": None, "do1": None}
    assert sorted(v1) == sorted(v2)
    # Independent of the data: the dealt randomness, the coins, and the aggregate opening (our
    # share of the sum and the sum itself are the same in both worlds).
    for tag in v1:
        if tag.endswith(("/mask", "/zero", "/coin", "/rs", "/z", "/aggregate")):
            assert v1[tag] == v2[tag], tag
    # Validation openings: the consistency value is masked by the joint random m (an honest
    # server's dealing is part of it), the validity value is a re-randomised sharing of 0.
    from omniplus.prover.mpc.codec import decode_g1, decode_g2, decode_scalars
    from omniplus.prover.mpc.opening import interpolate_at_zero

    for view in (v1, v2):
        pts = {j: decode_scalars(p) for j, p in view["batch0/validate/open"].items()}
        assert interpolate_at_zero({j: [p[1], p[3]] for j, p in pts.items()}, 2) == [0, 0]
    # Round 1: the other servers' shares of A and B2 are the degree-1 interpolation through our
    # own share and the public proof — they carry nothing beyond the proof.
    from omniplus.prover.curve import g1_add, g1_mul, g2_add, g2_mul

    for view, out in ((v1, o1), (v2, o2)):
        msg = view["batch0/prove/round1"]
        own_a = decode_g1(msg[1][:64], 1)[0]
        own_b2 = decode_g2(msg[1][128:], 1)[0]
        for j in (2, 3):
            lam = lagrange_at([0, 1], j)
            a_j = g1_add(g1_mul(out.proof.a, lam[0]), g1_mul(own_a, lam[1]))
            b_j = g2_add(g2_mul(out.proof.b, lam[0]), g2_mul(own_b2, lam[1]))
            assert decode_g1(msg[j][:64], 1)[0] == a_j
            assert decode_g2(msg[j][128:], 1)[0] == b_j


def test_batch_on_a_party_subset_matches_all_parties(batch_env) -> None:
    """n = 4, t = 1 with server 3 left out (as after it was named): validation and the whole batch
    proof run on parties {1, 2, 4} only, give the same verdicts as all four, and a proof that
    verifies. The DOs' shares stay at points 1..4; nothing is dealt at point 3."""
    setup, layout, zk = batch_env
    params = setup.params
    rng = random.Random(44)
    rows = {"do0": valid_row(params, rng), "do1": valid_row(params, rng), "do3": valid_row(params, rng)}
    blocks = {do: make_block(setup, layout, row) for do, row in rows.items()}
    bad = make_block(setup, layout, [0] * params.dims)
    bad[layout.block_names.index("g[0]")] = 2 ** params.bits
    blocks["do2"] = bad
    shares = share_all(blocks, 1, 4)
    shares[2]["do3"][5] = (shares[2]["do3"][5] + 1) % R  # off do3's polynomial at a point both runs use
    engine = NativeEngine(zk)
    seen: dict[int, tuple[int, ...]] = {}

    def body(net):
        seen[net.party] = net.parties
        return run_batch_party(net, 1, setup, zk, layout, engine, shares[net.party], PAYEES, BindingContext(),
                               Rng(), "batch0")

    full = run_parties(4, body)
    sub = run_parties(4, body, parties=(1, 2, 4))
    assert sub[2] is None and seen[1] == (1, 2, 4)
    outs = [o for o in sub if o is not None]
    assert len(outs) == 3 and all(o.proof == outs[0].proof and o.verdicts == outs[0].verdicts for o in outs)
    assert outs[0].verdicts == full[0].verdicts == {"do0": None, "do1": None, "do2": REASON_INVALID,
                                                    "do3": REASON_INCONSISTENT}
    assert outs[0].included == full[0].included == ["do0", "do1"]
    assert outs[0].aggregate == full[0].aggregate == [a + b for a, b in zip(rows["do0"], rows["do1"], strict=True)]
    assert outs[0].scores == full[0].scores
    vkey = json.loads(setup.vkey.read_text())
    assert verify(vkey, outs[0].proof, outs[0].public)
    assert outs[0].public == full[0].public


def test_party_subsets_are_checked() -> None:
    """A round's party set must be distinct ids of 1..n including the party; 2t+1 for degree 2t."""
    from omniplus.prover.mpc.net import check_parties
    from omniplus.prover.mpc.validation import validate_blocks

    with pytest.raises(NetError, match="twice"):
        check_parties([1, 1, 2], 4)
    with pytest.raises(NetError, match="outside"):
        check_parties([1, 2, 5], 4)
    with pytest.raises(NetError, match="does not include"):
        check_parties([1, 2, 4], 4, party=3)
    hub = LocalHub(4, parties=(1, 4))
    with pytest.raises(NetError, match="not in this round"):
        hub.net(2)
    with pytest.raises(NetError, match="2t\\+1"):
        validate_blocks(hub.net(1), 1, load_layout_stub(), {}, Rng(), "r")


def load_layout_stub():
    from omniplus.prover.mpc.validation import BlockCircuit

    return BlockCircuit(size=1, constraints=())


@pytest.mark.parametrize("which", ["a", "b1"])
def test_with_two_spares_a_wrong_round1_point_names_its_server(batch_env, which) -> None:
    """n = 4, t = 1 (two spare points): server 4's wrong A or B1 point in round 1 is located by
    the points alone -- every honest server names party 4 (the run fails with its Deviation)."""
    from omniplus.prover.curve import g1_add
    from omniplus.prover.mpc import groth16
    from omniplus.prover.mpc.audit import Deviation

    setup, layout, zk = batch_env
    row = valid_row(setup.params, random.Random(5))
    shares = share_all({"do0": make_block(setup, layout, row)}, 1, 4)
    pub = public_signals(BindingContext(payees=(PAYEES["do0"],)), pack_aggregate(setup.params, row),
                         pack_scores(setup.params, [0]))
    engine = NativeEngine(zk)
    caught: dict[int, int] = {}
    honest = groth16.local_commitments

    def body(net):
        w = witness_shares(setup, layout, [shares[net.party]["do0"]], pub, row)
        rnd = joint_randomness(net, 1, Rng(), "loc/blind")
        A, B1, B2, LH = honest(zk, engine, w, rnd)
        if net.party == 4:
            A, B1 = (g1_add(A, A), B1) if which == "a" else (A, g1_add(B1, B1))
        try:
            (_, _), (_,) = groth16.open_points(net, "loc/round1", [A, B1], [B2], degree=1)
        except groth16.InconsistentOpening as exc:
            err = groth16.locate_round1(exc)
            assert isinstance(err, Deviation)
            caught[net.party] = err.culprit
            return None
        return "opened"

    run_parties(4, body, timeout=120)
    assert caught == {1: 4, 2: 4, 3: 4, 4: 4}
