"""Field, NTT, curve, MSM and Shamir: properties against naive references."""

from __future__ import annotations

import random

import pytest

from omniplus.prover import curve as C
from omniplus.prover.field import ROOTS, Q, R, batch_inv, from_mont, inv, mont_from_bytes, mont_to_bytes, to_mont
from omniplus.prover.msm import msm_g1, msm_g2, naive_msm_g1, naive_msm_g2
from omniplus.prover.ntt import coset_generator, coset_shift, intt, naive_dft, ntt
from omniplus.prover.shamir import degree_ok, lagrange_at, lagrange_at_zero, poly_eval, reconstruct, share


def test_roots_table_matches_snarkjs_definition():
    assert ROOTS[28] == pow(5, (R - 1) >> 28, R)
    for k in range(1, 29):
        w = ROOTS[k]
        assert pow(w, 1 << k, R) == 1 and pow(w, 1 << (k - 1), R) == R - 1


def test_inverse_and_montgomery():
    rng = random.Random(1)
    xs = [rng.randrange(R) for _ in range(20)] + [0, 1]
    for x, y in zip(xs, batch_inv(xs), strict=True):
        assert (x * y) % R == (1 if x else 0)
        if x:
            assert y == inv(x)
    with pytest.raises(ZeroDivisionError):
        inv(0)
    for p in (R, Q):
        x = rng.randrange(p)
        assert from_mont(to_mont(x, p), p) == x
        assert mont_from_bytes(mont_to_bytes(x, p), p) == x
        assert int.from_bytes(mont_to_bytes(x, p), "little") == x * 2**256 % p


@pytest.mark.parametrize("log_n", [0, 1, 2, 3, 5])
def test_ntt_matches_naive_dft(log_n):
    rng = random.Random(log_n)
    v = [rng.randrange(R) for _ in range(1 << log_n)]
    assert ntt(v) == naive_dft(v, ROOTS[log_n])
    assert intt(ntt(v)) == v


def test_coset_shift_evaluates_on_odd_points_of_double_domain():
    rng = random.Random(7)
    n = 8
    coeffs = [rng.randrange(R) for _ in range(n)]
    g = coset_generator(n)
    assert g == ROOTS[4]
    odd = ntt(coset_shift(coeffs, g))
    w2n = ROOTS[4]
    assert odd == [poly_eval(coeffs, pow(w2n, 2 * k + 1, R)) for k in range(n)]


def test_curve_ops_match_py_ecc():
    from py_ecc.optimized_bn128 import G1, G2, multiply

    k = 123456789123456789
    assert C.g1_mul(C.G1_GEN, k) == C.g1_from_pyecc(multiply(G1, k))
    assert C.g2_mul(C.G2_GEN, k) == C.g2_from_pyecc(multiply(G2, k))
    p = C.g1_mul(C.G1_GEN, 5)
    assert C.g1_add(p, p) == C.g1_mul(C.G1_GEN, 10)
    assert C.g1_add(p, C.g1_neg(p)) is None
    q = C.g2_mul(C.G2_GEN, 5)
    assert C.g2_add(q, q) == C.g2_mul(C.G2_GEN, 10)
    assert C.g2_from_pyecc(C.g2_to_pyecc(q)) == q
    assert C.g1_from_pyecc(C.g1_to_pyecc(p)) == p
    assert C.g1_mul(p, R) is None and C.g1_mul(None, 3) is None


def test_curve_checks_and_byte_layout():
    p = C.g1_mul(C.G1_GEN, 77)
    q = C.g2_mul(C.G2_GEN, 77)
    assert C.g1_on_curve(p) and not C.g1_on_curve((p[0], p[1] + 1))
    assert C.g2_in_subgroup(q) and not C.g2_on_curve((q[0], (q[1][0] + 1, q[1][1])))
    # a point on the twist outside the r-torsion: find x with x³ + b' a square, cofactor ≠ 1
    bad = _twist_point_not_in_subgroup()
    assert C.g2_on_curve(bad) and not C.g2_in_subgroup(bad)
    assert C.decode_g1(C.encode_g1(p)) == p and C.decode_g1(C.encode_g1(None)) is None
    assert C.decode_g2(C.encode_g2(q)) == q and C.decode_g2(bytes(128)) is None
    assert C.decode_g1_array(C.encode_g1(p) + bytes(64), 2) == [p, None]
    assert C.decode_g2_array(C.encode_g2(q) * 2, 2) == [q, q]


def _twist_point_not_in_subgroup():
    """A point on y² = x³ + b' for the first small x with a square root (Fq2 square root for
    q ≡ 3 mod 4, Adj–Rodríguez-Henríquez alg. 9). The twist's cofactor is ≈ q, so such a
    point is outside the order-r subgroup."""
    from py_ecc.fields import optimized_bn128_FQ2 as FQ2

    b2 = FQ2([int(C.B2[0]), int(C.B2[1])])
    minus_one = FQ2([Q - 1, 0])
    for x0 in range(1, 100):
        x = FQ2([x0, 0])
        a = x * x * x + b2
        a1 = a ** ((Q - 3) // 4)
        alpha = a1 * a1 * a
        if alpha ** Q * alpha == minus_one:
            continue  # not a square
        x_0 = a1 * a
        y = FQ2([0, 1]) * x_0 if alpha == minus_one else (alpha + FQ2([1, 0])) ** ((Q - 1) // 2) * x_0
        assert y * y == a
        return ((x0, 0), (int(y.coeffs[0]), int(y.coeffs[1])))
    raise AssertionError("no x below 100 gives a twist point")


def _points(n, rng):
    base = C.g1_to_jac(C.g1_mul(C.G1_GEN, rng.randrange(1, R)))
    step = C.g1_to_jac(C.g1_mul(C.G1_GEN, rng.randrange(1, R)))
    out = []
    for _ in range(n):
        base = C.g1_jac_add(base, step)
        out.append(C.g1_from_jac(base))
    return out


@pytest.mark.parametrize("kind", ["random", "bits", "small", "negative", "mixed"])
def test_msm_g1_matches_naive(kind):
    rng = random.Random(hash(kind) & 0xFFFF)
    pts = _points(40, rng) + [None]
    gen = {
        "random": lambda: rng.randrange(R),
        "bits": lambda: rng.randrange(2),
        "small": lambda: rng.randrange(1 << 12),
        "negative": lambda: (-rng.randrange(1 << 12)) % R,
        "mixed": lambda: rng.choice([0, 1, R - 1, 2, 1 << 40, rng.randrange(R), R + 3]),
    }[kind]
    ks = [gen() for _ in pts]
    assert msm_g1(pts, ks) == naive_msm_g1(pts, ks)


def test_msm_edge_cases():
    p = C.g1_mul(C.G1_GEN, 9)
    assert msm_g1([], []) is None
    assert msm_g1([p, p, C.g1_neg(p)], [3, 3, 6]) is None  # cancels through a doubling
    assert msm_g1([p, p], [1, 1]) == C.g1_mul(p, 2)
    with pytest.raises(ValueError):
        msm_g1([p], [1, 2])


def test_msm_g2_matches_naive():
    rng = random.Random(5)
    pts = [C.g2_mul(C.G2_GEN, rng.randrange(1, R)) for _ in range(12)] + [None]
    ks = [rng.choice([0, 1, R - 1, 7, rng.randrange(R)]) for _ in pts]
    assert msm_g2(pts, ks) == naive_msm_g2(pts, ks)


def test_shamir_properties():
    rng = random.Random(11)
    for t, n in [(1, 3), (2, 5), (0, 2)]:
        secret = rng.randrange(R)
        s = share(secret, t, n, rng)
        pts = dict(zip(range(1, n + 1), s, strict=True))
        assert degree_ok(pts, t)
        for subset in ([1, 2, 3][: t + 1], list(range(n - t, n + 1))):
            assert reconstruct({x: pts[x] for x in subset}) == secret
        if n > t + 1:
            bad = dict(pts)
            bad[n] = (bad[n] + 1) % R
            assert not degree_ok(bad, t)
            assert degree_ok(bad, n - 1)
    # linear: shares of a + b open to a + b; products of two degree-1 sharings are degree 2
    a, b = 5, 7
    sa, sb = share(a, 1, 3, rng), share(b, 1, 3, rng)
    prod = {x: sa[x - 1] * sb[x - 1] % R for x in (1, 2, 3)}
    assert reconstruct(prod) == 35 and degree_ok(prod, 2) and not degree_ok(prod, 1)
    assert reconstruct({x: sa[x - 1] + sb[x - 1] for x in (1, 2)}) == 12
    lam = lagrange_at_zero([1, 2, 3])
    assert sum(lam) % R == 1
    assert lagrange_at([1, 2, 3], 2) == [0, 1, 0]
    with pytest.raises(ValueError):
        lagrange_at_zero([1, 1])
    with pytest.raises(ValueError):
        share(1, 3, 2, rng)


def test_shamir_accepts_the_mpc_rng():
    from omniplus.prover.mpc.randomness import Rng

    s = share(9, 1, 3, Rng(b"seed"))
    assert s == share(9, 1, 3, Rng(b"seed")) and reconstruct({1: s[0], 3: s[2]}) == 9
