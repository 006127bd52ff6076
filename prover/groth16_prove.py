"""The Groth16 prover (snarkjs' algorithm) as small pure steps.

Each step is linear in the witness except the products a·b, so the collaborative prover runs
the same functions on Shamir shares (constants like α are added to every share: Lagrange
weights at 0 sum to 1). The heavy parts go through an Engine — native Python here, or
prover.engine.SnarkjsEngine (same method signatures) — so either can do a server's local work.

Steps:
 1. qap_evaluations: a_k = ⟨A_k, w⟩, b_k = ⟨B_k, w⟩ on the domain from section 4 (which already
    holds the extra A rows for the public wires), c_k = a_k·b_k.
 2. h_scalars: for each of a, b, c: iFFT, coefficient i × ω_2n^i, FFT (values on the odd points
    of the 2n-domain); then a·b − c. Section 9 holds the matching Lagrange points over δ.
 3. commitments: A = α + Σ w_i A_i + r·δ1; B2 = β2 + Σ w_i B2_i + s·δ2; B1 likewise in G1;
    C = Σ_private w_i L_i + Σ h_k H_k + s·A + r·B1 − rs·δ1.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any, Protocol

from gmpy2 import mpz

from omniplus.core.errors import ProofError
from omniplus.prover import msm as M
from omniplus.prover.curve import G1Point, G2Point, g1_add, g1_mul, g1_neg, g2_add, g2_mul
from omniplus.prover.field import R
from omniplus.prover.ntt import coset_generator, intt, ntt
from omniplus.prover.proof import Proof
from omniplus.prover.zkey import Zkey

SECTION_A, SECTION_B1, SECTION_B2, SECTION_C, SECTION_H = 5, 6, 7, 8, 9


class Engine(Protocol):
    """MSMs over zkey sections and FFTs on snarkjs' domain (prover.engine.SnarkjsEngine fits)."""

    def msm_g1(self, section: int, scalars: Sequence[int], start: int = 0) -> G1Point: ...

    def msm_g2(self, section: int, scalars: Sequence[int], start: int = 0) -> G2Point: ...

    def fft(self, values: Sequence[int]) -> list[int]: ...

    def ifft(self, values: Sequence[int]) -> list[int]: ...


class NativeEngine:
    """The Engine in pure Python over a parsed Zkey (Pippenger MSMs, radix-2 NTT)."""

    def __init__(self, zkey: Zkey) -> None:
        self.zkey = zkey
        self._g1 = {SECTION_A: zkey.a, SECTION_B1: zkey.b1, SECTION_C: zkey.c, SECTION_H: zkey.h}

    def n_points(self, section: int) -> int:
        return len(self.zkey.b2) if section == SECTION_B2 else len(self._points(section))

    def _points(self, section: int) -> list:
        try:
            return self._g1[section]
        except KeyError:
            raise ProofError(f"msm_g1: no G1 points in zkey section {section}") from None

    def msm_g1(self, section: int, scalars: Sequence[int], start: int = 0) -> G1Point:
        pts = self._points(section)
        if start < 0 or start + len(scalars) > len(pts):
            raise ProofError(f"msm_g1: section {section} has {len(pts)} points, asked for "
                             f"{start}..{start + len(scalars)}")
        return M.msm_g1(pts[start:start + len(scalars)], scalars)

    def msm_g2(self, section: int, scalars: Sequence[int], start: int = 0) -> G2Point:
        if section != SECTION_B2:
            raise ProofError(f"msm_g2: no G2 points in zkey section {section}")
        pts = self.zkey.b2
        if start < 0 or start + len(scalars) > len(pts):
            raise ProofError(f"msm_g2: section 7 has {len(pts)} points, asked for "
                             f"{start}..{start + len(scalars)}")
        return M.msm_g2(pts[start:start + len(scalars)], scalars)

    def msm_g1_at(self, section: int, indices: Sequence[int], scalars: Sequence[int]) -> G1Point:
        """Σ scalars[k]·P[indices[k]] (a sparse MSM: only the chosen points)."""
        pts = self._points(section)
        if indices and not 0 <= min(indices) <= max(indices) < len(pts):
            raise ProofError(f"msm_g1_at: section {section} has {len(pts)} points")
        return M.msm_g1([pts[i] for i in indices], scalars)

    def msm_g2_at(self, section: int, indices: Sequence[int], scalars: Sequence[int]) -> G2Point:
        if section != SECTION_B2:
            raise ProofError(f"msm_g2_at: no G2 points in zkey section {section}")
        pts = self.zkey.b2
        if indices and not 0 <= min(indices) <= max(indices) < len(pts):
            raise ProofError(f"msm_g2_at: section 7 has {len(pts)} points")
        return M.msm_g2([pts[i] for i in indices], scalars)

    def fft(self, values: Sequence[int]) -> list[int]:
        return ntt(values)

    def ifft(self, values: Sequence[int]) -> list[int]:
        return intt(values)


# --- step 1 -------------------------------------------------------------------------------------

def qap_evaluations(zkey: Zkey, witness: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(a, b, c) on the domain: a_k = ⟨A_k,w⟩, b_k = ⟨B_k,w⟩, c_k = a_k·b_k (all mod r).

    On shares, a and b are degree-t shares and c a degree-2t one (PROTOCOL.md allows either
    this local product or ⟨C_k,w⟩ from the .r1cs)."""
    n = zkey.domain_size
    acc = ([mpz(0)] * n, [mpz(0)] * n)
    w = [mpz(v) for v in witness]
    for cf in zkey.coeffs:
        row = acc[cf.matrix]
        row[cf.constraint] += cf.value * w[cf.signal]
    a = [int(v % R) for v in acc[0]]
    b = [int(v % R) for v in acc[1]]
    c = [x * y % R for x, y in zip(a, b, strict=True)]
    return a, b, c


# --- step 2 -------------------------------------------------------------------------------------

def odd_evaluations(values: Sequence[int], engine: Engine) -> list[int]:
    """Domain evaluations → evaluations on the coset ω_2n·D (the odd points of the 2n-domain)."""
    coeffs = engine.ifft(values)
    g = mpz(coset_generator(len(values)))
    acc = mpz(1)
    shifted = [0] * len(coeffs)
    for i, cv in enumerate(coeffs):
        shifted[i] = int(cv * acc % R)
        acc = acc * g % R
    return engine.fft(shifted)


def h_scalars(a: Sequence[int], b: Sequence[int], c: Sequence[int], engine: Engine) -> list[int]:
    """Scalars for section 9: a·b − c on the odd points (equal to snarkjs' buffPodd_T)."""
    ao = odd_evaluations(a, engine)
    bo = odd_evaluations(b, engine)
    co = odd_evaluations(c, engine)
    return [(x * y - z) % R for x, y, z in zip(ao, bo, co, strict=True)]


# --- step 3 -------------------------------------------------------------------------------------

def commit_a(zkey: Zkey, engine: Engine, witness: Sequence[int], r: int) -> G1Point:
    """A = α1 + Σ w_i A_i + r·δ1."""
    return g1_add(g1_add(zkey.alpha1, engine.msm_g1(SECTION_A, witness)), g1_mul(zkey.delta1, r))


def commit_b1(zkey: Zkey, engine: Engine, witness: Sequence[int], s: int) -> G1Point:
    """B1 = β1 + Σ w_i B1_i + s·δ1 (only used inside C)."""
    return g1_add(g1_add(zkey.beta1, engine.msm_g1(SECTION_B1, witness)), g1_mul(zkey.delta1, s))


def commit_b2(zkey: Zkey, engine: Engine, witness: Sequence[int], s: int) -> G2Point:
    """B = β2 + Σ w_i B2_i + s·δ2."""
    return g2_add(g2_add(zkey.beta2, engine.msm_g2(SECTION_B2, witness)), g2_mul(zkey.delta2, s))


def commit_c_base(zkey: Zkey, engine: Engine, witness: Sequence[int], h: Sequence[int]) -> G1Point:
    """Σ_private w_i L_i + Σ h_k H_k: the part of C that needs no opened values."""
    private = witness[zkey.n_public + 1:]
    return g1_add(engine.msm_g1(SECTION_C, private), engine.msm_g1(SECTION_H, h))


def finish_c(zkey: Zkey, c_base: G1Point, a: G1Point, b1: G1Point, r: int, s: int,
             rs: int | None = None) -> G1Point:
    """C = c_base + s·A + r·B1 − rs·δ1. On shares pass rs = the local product r_j·s_j."""
    rs = r * s % R if rs is None else rs
    out = g1_add(c_base, g1_mul(a, s))
    out = g1_add(out, g1_mul(b1, r))
    return g1_add(out, g1_neg(g1_mul(zkey.delta1, rs)))


def _random_scalar(rng: Any) -> int:
    if rng is None:
        return secrets.randbelow(R)
    if hasattr(rng, "field"):
        return int(rng.field()) % R
    return rng.randrange(R)


def check_witness(zkey: Zkey, witness: Sequence[int]) -> None:
    """Shape checks before spending time on MSMs."""
    if len(witness) != zkey.n_vars:
        raise ProofError(f"witness has {len(witness)} values, the zkey expects {zkey.n_vars}")
    if witness[0] % R != 1:
        raise ProofError(f"witness wire 0 is {witness[0]}, must be 1")


def prove(zkey: Zkey, witness: Sequence[int], rng: Any = None, engine: Engine | None = None,
          timings: dict[str, float] | None = None) -> tuple[Proof, list[int]]:
    """One Groth16 proof and its public signals (wires 1..nPublic). rng: None (OS randomness),
    a random.Random, or an object with field(); timings, if given, receives seconds per step."""
    check_witness(zkey, witness)
    engine = engine or NativeEngine(zkey)
    w = [int(v) % R for v in witness]
    t = {} if timings is None else timings
    t0 = time.perf_counter()
    a, b, c = qap_evaluations(zkey, w)
    t1 = time.perf_counter()
    h = h_scalars(a, b, c, engine)
    t2 = time.perf_counter()
    r = _random_scalar(rng)
    s = _random_scalar(rng)
    pa = commit_a(zkey, engine, w, r)
    pb = commit_b2(zkey, engine, w, s)
    pb1 = commit_b1(zkey, engine, w, s)
    base = commit_c_base(zkey, engine, w, h)
    pc = finish_c(zkey, base, pa, pb1, r, s)
    t3 = time.perf_counter()
    t.update(qap=t1 - t0, fft=t2 - t1, msm=t3 - t2, total=t3 - t0)
    return Proof(pa, pb, pc), w[1:zkey.n_public + 1]
