"""Collaborative Groth16 over Shamir shares (PROTOCOL.md, "Collaborative Groth16").

One call of `prove_party` is one server's part. It does every heavy step locally on its shares
(QAP evaluations, FFTs, MSMs — through whatever `ProverEngine` it is given: Python or the snarkjs
engine) and talks only twice, whatever the circuit size:
  round 1: open [A], [B1], [B2] (degree t; spare shares are checked);
  round 2: open [C] (degree 2t, all 2t+1 servers; masked by a sharing of zero).
The result is an ordinary Groth16 proof. With `dealt` (prover/mpc/point_shares.py), the DOs'
blocks enter A, B1, B2 and C as point shares the DOs computed themselves, and this party's own
MSMs cover only the wires it holds in the clear (sparse) plus H. Which transport carries the messages is the `Net`'s
business; this module never sees a socket.

Privacy: before round 1 a party's messages are degree-t shares blinded by the joint r and s, so
A, B are uniformly random group elements as in any Groth16 proof; C is opened from a degree-2t
sharing re-randomised by z, so its points reveal nothing beyond C itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omniplus.prover.curve import g1_add, g2_add
from omniplus.prover.field import R
from omniplus.prover.groth16_prove import (
    SECTION_C,
    SECTION_H,
    Engine,
    commit_a,
    commit_b1,
    commit_b2,
    commit_c_base,
    finish_c,
    h_scalars,
    qap_evaluations,
)
from omniplus.prover.mpc.audit import Deviation
from omniplus.prover.mpc.net import Net, NetError, need_parties
from omniplus.prover.mpc.opening import InconsistentOpening, open_points
from omniplus.prover.mpc.randomness import Rng, joint_sharings
from omniplus.prover.proof import Proof
from omniplus.prover.zkey import Zkey

ProverEngine = Engine  # MSMs over zkey sections + FFTs: NativeEngine or prover.engine.SnarkjsEngine


@dataclass
class PartyRandomness:
    """One party's shares of the proof's blinding values, made jointly ahead of time."""

    r: int  # degree t
    s: int  # degree t
    z: int  # degree 2t share of zero


def joint_randomness(net: Net, t: int, rng: Rng, tag: str) -> PartyRandomness:
    rs = joint_sharings(net, f"{tag}/rs", 2, t, rng)
    (z,) = joint_sharings(net, f"{tag}/z", 1, 2 * t, rng, zero=True)
    return PartyRandomness(r=rs[0], s=rs[1], z=z)


@dataclass
class Dealt:
    """Shares of the witness MSMs a DO computed itself (point_shares.py), and what is left.

    `clear` is the witness with the dealt wires set to 0; `a, b1, b2, c` are this party's shares
    of Σ w_i A_i, Σ w_i B1_i, Σ w_i B2_i, Σ w_i L_i over the dealt wires."""

    clear: Sequence[int]
    a: object
    b1: object
    b2: object
    c: object
    msm_engine: object = None  # engine for the MSMs over `clear` (a sparse one); default: the engine
    by_dos: bool = True  # the points came from DOs: a round-1 failure may be theirs (DealtPointsFailed)


class DealtPointsFailed(NetError):
    """Round 1 failed a check that a DO's point shares alone can break (its shares off a degree-t
    curve, or B1/B2 points of different scalars): nobody is named here; point_shares.blame runs.
    `cause` is the error the same failure gives without point shares (it may name a server),
    raised when blame clears every DO."""

    def __init__(self, message: str, cause: NetError) -> None:
        super().__init__(message)
        self.cause = cause


def local_commitments(zk: Zkey, engine: ProverEngine, w: Sequence[int], rnd: PartyRandomness,
                      dealt: Dealt | None = None):
    """This party's shares of A, B1, B2 and of the witness part of C (no communication).

    The single prover's steps, run on shares: a, b are degree-t, c = a·b is degree 2t, which
    PROTOCOL.md allows (after reconstruction the H scalars are the same). H always needs every
    wire's share; the linear MSMs split into the dealt points plus MSMs over `dealt.clear`."""
    a, b, c = qap_evaluations(zk, w)
    h = h_scalars(a, b, c, engine)
    if dealt is None:
        return (commit_a(zk, engine, w, rnd.r), commit_b1(zk, engine, w, rnd.s),
                commit_b2(zk, engine, w, rnd.s), commit_c_base(zk, engine, w, h))
    x, me = dealt.clear, dealt.msm_engine or engine
    c_base = g1_add(g1_add(me.msm_g1(SECTION_C, x[zk.n_public + 1:]), engine.msm_g1(SECTION_H, h)), dealt.c)
    return (g1_add(commit_a(zk, me, x, rnd.r), dealt.a), g1_add(commit_b1(zk, me, x, rnd.s), dealt.b1),
            g2_add(commit_b2(zk, me, x, rnd.s), dealt.b2), c_base)


def prove_party(net: Net, t: int, zk: Zkey, engine: ProverEngine, w: Sequence[int],
                rnd: PartyRandomness, tag: str, dealt: Dealt | None = None) -> Proof:
    """One server's run of the collaborative prover; every party returns the same proof.

    Runs on the round's parties (`net.parties`, which may leave a named server out): C is a
    degree-2t opening, so at least 2t+1 of them."""
    need_parties(net, t, "the collaborative prover's degree-2t opening")
    A_j, B1_j, B2_j, LH_j = local_commitments(zk, engine, w, rnd, dealt)
    by_dos = dealt is not None and dealt.by_dos
    try:
        (A, B1), (B2,) = open_points(net, f"{tag}/round1", [A_j, B1_j], [B2_j], degree=t)
    except InconsistentOpening as exc:
        if by_dos:  # a DO's point share off its curve looks like a server's bad point: blame DOs first
            raise DealtPointsFailed(str(exc), locate_round1(exc)) from None
        raise locate_round1(exc) from None
    if not b_consistent(B1, B2, engine):
        # all points lie on one curve, yet B1 and B2 disagree: every server's B1/B2 shares were
        # made from different s or witness shares, which no single deviating server can do
        # consistently across the spare point -- fail without naming anyone
        err = NetError(f"{tag}/round1: e(B1, G2) != e(G1, B2) on the opened points")
        if by_dos:  # or one DO's B1 and B2 points are of different scalars
            raise DealtPointsFailed(str(err), err)
        raise err
    # C_j = base + s_j·A + r_j·B1 − (r_j s_j − z_j)·δ1: degree 2t, the zero sharing z masks it.
    C_j = finish_c(zk, LH_j, A, B1, rnd.r, rnd.s, rs=(rnd.r * rnd.s - rnd.z) % R)
    (C,), _ = open_points(net, f"{tag}/round2", [C_j], [], degree=2 * t)
    return Proof(a=A, b=B2, c=C)


def b_consistent(B1, B2, engine=None) -> bool:  # type: ignore[no-untyped-def]
    """e(B1, G2) = e(G1, B2): the G1 and G2 halves of B encode the same scalar (PROTOCOL.md round 1).

    In the engine's node worker when it has one (milliseconds; two Python pairings take ≈ 1 s,
    more than the rest of a small proof)."""
    from omniplus.prover.curve import G1_GEN, G2_GEN, g1_neg
    from omniplus.prover.groth16_verify import pairing_product_is_one

    pairs = [(B1, G2_GEN), (g1_neg(G1_GEN), B2)]
    inner = getattr(engine, "inner", engine)
    if hasattr(inner, "pairing_eq"):
        return bool(inner.pairing_eq(pairs))
    return pairing_product_is_one(pairs)


def locate_round1(exc: InconsistentOpening) -> NetError:
    """Round 1's points are off one curve: name the server whose point is off, if we can.

    With n = 2t+1 one spare point cannot say whose point is wrong, but B has a second relation:
    the opening without the bad party satisfies e(B1, G2) = e(G1, B2), the others (almost surely)
    do not. A wrong point in A alone breaks no such relation: that is detected, not located
    (the caller re-runs under fresh randomness; docs/DESIGN.md, "Threat model"). With two or
    more spare points (n ≥ 2t+2 parties in the round) the points locate it by themselves: the
    one party without whom every other point lies on one curve (A included)."""
    alone = [x for x, ok in exc.alone.items() if ok]
    if len(alone) == 1 and len(exc.alone) == len(exc.without):
        return Deviation(alone[0], f"{exc} -- every other party's points lie on one curve, its do not")
    good = [x for x, (g1, g2) in exc.without.items() if b_consistent(g1[1], g2[0])]
    bad_b = [x for x, (g1, g2) in exc.without.items() if not b_consistent(g1[1], g2[0])]
    if len(good) == 1 and bad_b:
        return Deviation(good[0], f"{exc} -- its B1/B2 share breaks e(B1, G2) = e(G1, B2)")
    return exc
