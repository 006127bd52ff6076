"""Point shares (prover/mpc/point_shares.py): DOs share their blocks' MSM contributions as points.

Real proofs through the in-process hub, checked by snarkjs' verifier and the Python verifier; a DO
whose point shares disagree with its wire shares is named and its batch is still proven; and the
view t servers get of a DO's point shares is independent of its block (an exact coupling).
"""

from __future__ import annotations

import json
import random

import pytest

from omniplus.prover.binding import BindingContext, binding_ctx, pack_scores
from omniplus.prover.contribution import scores
from omniplus.prover.curve import G1_GEN, G2_GEN, g1_add, g1_mul, g2_mul
from omniplus.prover.field import R
from omniplus.prover.groth16_prove import SECTION_B2, NativeEngine
from omniplus.prover.groth16_verify import verify
from omniplus.prover.mpc.batch import make_block, run_batch_party, share_block
from omniplus.prover.mpc.layout import load_layout
from omniplus.prover.mpc.net import run_parties
from omniplus.prover.mpc.point_shares import (
    REASON_INCONSISTENT_POINTS,
    REASON_WRONG_POINTS,
    Contribution,
    block_contributions,
    decode_contributions,
    encode_contributions,
    make_point_shares,
    share_contributions,
)
from omniplus.prover.mpc.randomness import Rng
from omniplus.prover.proof import proof_to_json
from omniplus.prover.samples import valid_row
from omniplus.prover.shamir import lagrange_at_zero
from omniplus.prover.snarkjs_verify import snarkjs_verify
from omniplus.prover.zkey import read_zkey

PAYEES = {f"do{i}": "0x" + f"{i + 1:02x}" * 20 for i in range(4)}


@pytest.fixture(scope="module")
def env(small_setup):
    return small_setup, load_layout(small_setup), read_zkey(small_setup.zkey)


def submissions(env, rows, t, n, do_engine):
    """Each DO's wire shares and point shares, {server: {do: ...}} (as the daemons store them)."""
    setup, layout, zk = env
    wires = {j: {} for j in range(1, n + 1)}
    points = {j: {} for j in range(1, n + 1)}
    for do, row in rows.items():
        block = make_block(setup, layout, row)
        for j, s in share_block(block, t, n).items():
            wires[j][do] = s
        for j, p in make_point_shares(do_engine, layout, zk.n_public, block, t, n).items():
            points[j][do] = p
    return wires, points


def run(env, wires, points, t, n, engine):
    setup, layout, zk = env

    def body(net):
        return run_batch_party(net, t, setup, zk, layout, engine, wires[net.party], PAYEES, BindingContext(),
                               Rng(), "pts", points=points[net.party])

    outs = run_parties(n, body, timeout=600)
    assert all(o.proof == outs[0].proof for o in outs)
    return outs[0]


def check_proof(setup, o, tmp_path) -> None:
    vkey = json.loads(setup.vkey.read_text())
    assert verify(vkey, o.proof, o.public)
    (tmp_path / "proof.json").write_text(json.dumps(proof_to_json(o.proof)))
    (tmp_path / "public.json").write_text(json.dumps([str(x) for x in o.public]))
    assert snarkjs_verify(setup.vkey, tmp_path / "public.json", tmp_path / "proof.json")


@pytest.mark.parametrize(("n", "t"), [(3, 1), (5, 2)])
def test_proof_with_point_shares_verifies(env, tmp_path, n, t) -> None:
    setup, layout, zk = env
    rng = random.Random(10 + n)
    rows = {"do0": valid_row(setup.params, rng), "do1": valid_row(setup.params, rng)}
    wires, points = submissions(env, rows, t, n, NativeEngine(zk))
    o = run(env, wires, points, t, n, NativeEngine(zk))
    assert o.fast is True and o.point_blame == {}
    assert o.aggregate == [a + b for a, b in zip(rows["do0"], rows["do1"], strict=True)]
    ctx = BindingContext.for_batch(chain_id=31337, market="0x" + "00" * 20, task_id=0, batch_index=0,
                                   payees=(PAYEES["do0"], PAYEES["do1"]))
    # the score products t are full-scalar server wires next to the DOs' point shares
    assert o.scores == scores([rows["do0"], rows["do1"]])
    assert o.public == [binding_ctx(ctx), *o.words, *pack_scores(setup.params, o.scores)]
    check_proof(setup, o, tmp_path)


def test_snarkjs_engine_on_both_sides_and_a_do_without_point_shares(env, tmp_path) -> None:
    """DOs compute their points with the node engine, servers prove with it; a DO that sent no
    point shares enters the MSMs by its wire shares, in the same proof."""
    from omniplus.prover.engine import SnarkjsEngine

    setup, layout, zk = env
    eng = SnarkjsEngine(setup.zkey)
    rows = {"do0": valid_row(setup.params, random.Random(1)), "do1": valid_row(setup.params, random.Random(2))}
    wires, points = submissions(env, rows, 1, 3, eng)
    native_points = block_contributions(NativeEngine(zk), layout, zk.n_public, make_block(setup, layout, rows["do1"]))
    assert block_contributions(eng, layout, zk.n_public, make_block(setup, layout, rows["do1"])) == native_points
    for j in points:
        del points[j]["do1"]
    o = run(env, wires, points, 1, 3, eng)
    assert o.fast is True
    check_proof(setup, o, tmp_path)


def test_wrong_point_shares_are_named_and_the_batch_is_still_proven(env, tmp_path) -> None:
    """do1 shares (consistently) the points of another block than the one it shared as wires: the
    fast proof fails local verification, blame names do1, the same batch is proven from wire
    shares and pays both DOs."""
    setup, layout, zk = env
    eng = NativeEngine(zk)
    rows = {"do0": valid_row(setup.params, random.Random(3)), "do1": valid_row(setup.params, random.Random(4))}
    wires, points = submissions(env, rows, 1, 3, eng)
    other = make_block(setup, layout, valid_row(setup.params, random.Random(5)))
    for j, p in make_point_shares(eng, layout, zk.n_public, other, 1, 3).items():
        points[j]["do1"] = p
    o = run(env, wires, points, 1, 3, eng)
    assert o.fast is False
    assert o.point_blame == {1: REASON_WRONG_POINTS}
    assert o.included == ["do0", "do1"]
    assert o.aggregate == [a + b for a, b in zip(rows["do0"], rows["do1"], strict=True)]
    check_proof(setup, o, tmp_path)


def test_point_shares_off_the_curve_of_degree_t_are_named(env, tmp_path) -> None:
    """do0 gives server 3 a point share off its degree-1 curve: round 1's spare check fails,
    blame names do0, the batch is proven from wire shares."""
    setup, layout, zk = env
    eng = NativeEngine(zk)
    rows = {"do0": valid_row(setup.params, random.Random(6)), "do1": valid_row(setup.params, random.Random(7))}
    wires, points = submissions(env, rows, 1, 3, eng)
    bad = decode_contributions(points[3]["do0"], layout.n_slots)
    bad[0] = Contribution(g1_add(bad[0].a, G1_GEN), bad[0].b1, bad[0].b2, bad[0].c)
    points[3]["do0"] = encode_contributions(bad)
    o = run(env, wires, points, 1, 3, eng)
    assert o.fast is False and o.point_blame == {0: REASON_INCONSISTENT_POINTS}
    check_proof(setup, o, tmp_path)


# --- privacy: an exact coupling --------------------------------------------------------------------
class KnownLogEngine:
    """MSMs over bases k_i·G with known discrete logs k_i, so a test can solve for the coupling."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.logs: dict[tuple[int, int], int] = {}

    def log(self, section: int, i: int) -> int:
        return self.logs.setdefault((section, i), self.rng.randrange(1, R))

    def dlog(self, section: int, indices, scalars) -> int:
        return sum(self.log(section, i) * s for i, s in zip(indices, scalars, strict=True)) % R

    def msm_g1_at(self, section, indices, scalars):
        return g1_mul(G1_GEN, self.dlog(section, indices, scalars))

    def msm_g2_at(self, section, indices, scalars):
        return g2_mul(G2_GEN, self.dlog(section, indices, scalars))


class ScriptedRng:
    """Returns the given field elements in order (the DO's randomness, chosen by the test)."""

    def __init__(self, values) -> None:
        self.values = list(values)

    def field(self) -> int:
        return self.values.pop(0)


@pytest.mark.parametrize(("n", "t"), [(3, 1), (5, 2)])
def test_t_servers_view_of_point_shares_is_independent_of_the_block(env, n, t) -> None:
    """For two different blocks b, b' and every choice of the DO's random points for b, there is
    exactly one choice for b' (solved below from the known discrete logs) that gives servers
    1..t byte-identical point shares: the map randomness → view is a bijection in both worlds,
    so with uniform randomness the views have the same distribution."""
    setup, layout, zk = env
    eng = KnownLogEngine(1)
    b = make_block(setup, layout, valid_row(setup.params, random.Random(8)))
    b2 = make_block(setup, layout, valid_row(setup.params, random.Random(9)))
    assert b != b2
    p, p2 = (block_contributions(eng, layout, zk.n_public, x) for x in (b, b2))
    assert p != p2
    coalition = list(range(1, t + 1))
    # dlogs of the per-slot points in the order share_contributions draws randomness: A, B1, B2, C
    sections = (5, 6, SECTION_B2, 8)

    def point_logs(block):
        out = []
        for s in range(layout.n_slots):
            wires = layout.slot_wires[s]
            idx = {5: wires, 6: wires, SECTION_B2: wires, 8: [w - zk.n_public - 1 for w in wires]}
            out.append([eng.dlog(sec, idx[sec], block) for sec in sections])
        return out

    logs, logs2 = point_logs(b), point_logs(b2)
    rho = [random.Random(11).randrange(R) for _ in range(layout.n_slots * t * 4)]
    # world 1: coefficient k of point q of slot s is rho[(s*t + k)*4 + q]
    # world 2: choose rho2 with Σ_k j^k rho2 = Σ_k j^k rho + (log - log2) for every j in the coalition
    rho2 = []
    for s in range(layout.n_slots):
        for q in range(4):
            delta = (logs[s][q] - logs2[s][q]) % R
            # solve V·x = delta·1 for the coalition's Vandermonde V[j][k] = j^k (k = 1..t)
            x = _solve([[pow(j, k, R) for k in range(1, t + 1)] for j in coalition], [delta] * t)
            for k in range(t):
                rho2.append((s, k, q, (rho[(s * t + k) * 4 + q] + x[k]) % R))
    ordered2 = [v for _, _, _, v in sorted(rho2)]
    view1 = share_contributions(p, t, n, ScriptedRng(rho))
    view2 = share_contributions(p2, t, n, ScriptedRng(ordered2))
    for j in coalition:
        assert encode_contributions(view1[j]) == encode_contributions(view2[j])
    # and the full sharings still open to the two different blocks' points
    assert view1 != view2
    lam = lagrange_at_zero(list(range(1, t + 2)))
    a0 = None
    for lj, j in zip(lam, range(1, t + 2), strict=True):
        a0 = g1_add(a0, g1_mul(view2[j][0].a, lj))
    assert a0 == p2[0].a


def _solve(m, v):
    """Gaussian elimination mod r (tiny systems)."""
    n = len(m)
    a = [row[:] + [v[i]] for i, row in enumerate(m)]
    for c in range(n):
        piv = next(r for r in range(c, n) if a[r][c] % R)
        a[c], a[piv] = a[piv], a[c]
        inv = pow(a[c][c], -1, R)
        a[c] = [x * inv % R for x in a[c]]
        for r in range(n):
            if r != c and a[r][c]:
                f = a[r][c]
                a[r] = [(x - f * y) % R for x, y in zip(a[r], a[c], strict=True)]
    return [a[i][n] for i in range(n)]


# --- what Submit refuses ---------------------------------------------------------------------------
def _twist_point_outside_g2():
    """A point on the twist curve y² = x³ + 3/(9+u) that is not in the order-r subgroup."""
    from omniplus.prover.curve import B2, fq2_add, fq2_mul, fq2_sqr, g2_in_subgroup, g2_on_curve
    from omniplus.prover.field import Q

    def sqrt_fq(a):
        r = pow(a, (Q + 1) // 4, Q)
        return r if r * r % Q == a % Q else None

    for x0 in range(1, 100):
        x = (x0, 1)
        a0, a1 = (int(v) % Q for v in fq2_add(fq2_mul(fq2_sqr(x), x), B2))
        alpha = sqrt_fq((a0 * a0 + a1 * a1) % Q)  # sqrt of the norm
        if alpha is None:
            continue
        inv2 = pow(2, -1, Q)
        for delta in ((a0 + alpha) * inv2 % Q, (a0 - alpha) * inv2 % Q):
            y0 = sqrt_fq(delta)
            if y0:
                y1 = a1 * pow(2 * y0, -1, Q) % Q
                p = ((x0, 1), (y0, y1))
                if g2_on_curve(p) and not g2_in_subgroup(p):
                    return p
    raise AssertionError("no twist point found")


def test_submit_checks_refuse_malformed_point_shares(env) -> None:
    from omniplus.prover.mpc.point_shares import SLOT_BYTES, check_encoding
    from omniplus.servers import signing

    setup, layout, zk = env
    good = make_point_shares(NativeEngine(zk), layout, zk.n_public,
                             make_block(setup, layout, valid_row(setup.params, random.Random(1))), 1, 3)[1]
    assert check_encoding(good, layout.n_slots) is None
    assert "expected" in check_encoding(good[:-1], layout.n_slots)
    assert "expected" in check_encoding(good + bytes(SLOT_BYTES), layout.n_slots)
    off = bytearray(good)
    off[0] ^= 1  # A of slot 0 leaves the curve
    assert "not on G1" in check_encoding(bytes(off), layout.n_slots)
    c = decode_contributions(good, layout.n_slots)
    c[1] = Contribution(c[1].a, c[1].b1, _twist_point_outside_g2(), c[1].c)
    assert "subgroup" in check_encoding(encode_contributions(c), layout.n_slots)
    # the signed payload hash covers the point shares
    wires, shares = [3, 4], bytes(64)
    assert signing.payload_hash(wires, shares, good) != signing.payload_hash(wires, shares, bytes(off))
    assert signing.payload_hash(wires, shares, good) != signing.payload_hash(wires, shares)
