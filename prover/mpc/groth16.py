"""Collaborative Groth16 over Shamir shares (PROTOCOL.md, "Collaborative Groth16").

One call of `prove_party` is one server's part. It does every heavy step locally on its shares
(QAP evaluations, FFTs, MSMs — through whatever `ProverEngine` it is given: Python or the snarkjs
engine) and talks only twice, whatever the circuit size:
  round 1: open [A], [B1], [B2] (degree t; spare shares are checked);
  round 2: open [C] (degree 2t, all 2t+1 servers; masked by a sharing of zero).
The result is an ordinary Groth16 proof. Which transport carries the messages is the `Net`'s
business; this module never sees a socket.

Privacy: before round 1 a party's messages are degree-t shares blinded by the joint r and s, so
A, B are uniformly random group elements as in any Groth16 proof; C is opened from a degree-2t
sharing re-randomised by z, so its points reveal nothing beyond C itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prover.curve import g1_add, g1_mul, g1_neg, g2_add, g2_mul
from prover.field import R, root_of_unity
from prover.mpc.net import Net
from prover.mpc.opening import open_points
from prover.mpc.randomness import Rng, joint_sharings
from prover.proof import Proof
from prover.zkey import Zkey

SECTION_A, SECTION_B1, SECTION_B2, SECTION_C, SECTION_H = 5, 6, 7, 8, 9


class ProverEngine(Protocol):
    """MSMs over a zkey's point sections and FFTs on the scalar field (prover/engine.py's API)."""

    def msm_g1(self, section: int, scalars: Sequence[int], start: int = 0): ...

    def msm_g2(self, section: int, scalars: Sequence[int], start: int = 0): ...

    def fft(self, values: Sequence[int]) -> list[int]: ...

    def ifft(self, values: Sequence[int]) -> list[int]: ...


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


def qap_evaluations(zk: Zkey, w: Sequence[int]) -> tuple[list[int], list[int]]:
    """a_k = ⟨A_k, w⟩ and b_k = ⟨B_k, w⟩ on the domain (linear: works on shares too)."""
    a = [0] * zk.domain_size
    b = [0] * zk.domain_size
    for co in zk.coeffs:
        if co.matrix == 0:
            a[co.constraint] += co.value * w[co.signal]
        else:
            b[co.constraint] += co.value * w[co.signal]
    return [x % R for x in a], [x % R for x in b]


def h_scalars(engine: ProverEngine, a: list[int], b: list[int], c: list[int]) -> list[int]:
    """(a·b − c) on the odd points of the doubled domain: the scalars of the zkey's H section.

    Interpolate on the domain, shift coefficient i by ω_2n^i (the root snarkjs' section 9 was
    built for), evaluate again; a·b − c vanishes on the even points, so these are all we need.
    """
    n = len(a)
    inc = root_of_unity(n.bit_length())  # ω_{2n} = w[log n + 1]
    odd = []
    for values in (a, b, c):
        coeffs = engine.ifft(values)
        shifted = []
        f = 1
        for x in coeffs:
            shifted.append(x * f % R)
            f = f * inc % R
        odd.append(engine.fft(shifted))
    ao, bo, co = odd
    return [(x * y - z) % R for x, y, z in zip(ao, bo, co, strict=True)]


def local_commitments(zk: Zkey, engine: ProverEngine, w: Sequence[int], rnd: PartyRandomness):
    """This party's shares of A, B1, B2 and of the witness part of C (no communication)."""
    a_ev, b_ev = qap_evaluations(zk, w)
    c_ev = [x * y % R for x, y in zip(a_ev, b_ev, strict=True)]  # degree 2t on shares: fine, see PROTOCOL
    h = h_scalars(engine, a_ev, b_ev, c_ev)
    A = g1_add(g1_add(zk.alpha1, engine.msm_g1(SECTION_A, w)), g1_mul(zk.delta1, rnd.r))
    B1 = g1_add(g1_add(zk.beta1, engine.msm_g1(SECTION_B1, w)), g1_mul(zk.delta1, rnd.s))
    B2 = g2_add(g2_add(zk.beta2, engine.msm_g2(SECTION_B2, w)), g2_mul(zk.delta2, rnd.s))
    private = list(w[zk.n_public + 1 :])
    LH = g1_add(engine.msm_g1(SECTION_C, private), engine.msm_g1(SECTION_H, h))
    return A, B1, B2, LH


def prove_party(net: Net, t: int, zk: Zkey, engine: ProverEngine, w: Sequence[int],
                rnd: PartyRandomness, tag: str) -> Proof:
    """One server's run of the collaborative prover; every party returns the same proof."""
    A_j, B1_j, B2_j, LH_j = local_commitments(zk, engine, w, rnd)
    (A, B1), (B2,) = open_points(net, f"{tag}/round1", [A_j, B1_j], [B2_j], degree=t)
    rs_delta = g1_mul(zk.delta1, (rnd.r * rnd.s - rnd.z) % R)
    C_j = g1_add(g1_add(LH_j, g1_mul(A, rnd.s)), g1_add(g1_mul(B1, rnd.r), g1_neg(rs_delta)))
    (C,), _ = open_points(net, f"{tag}/round2", [C_j], [], degree=2 * t)
    return Proof(a=A, b=B2, c=C)
