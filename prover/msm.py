"""Multi-scalar multiplication Σ k_i·P_i on G1 and G2: Pippenger's bucket method in Python.

Why the special cases: the gradient circuit's witness is mostly bits, so most scalars are 0
(skipped) or 1 (one mixed addition each). Scalars above r/2 are negated (k → r − k, P → −P),
so small negative values (signed gradients) are small too. The remaining scalars are split
into "small" (≤ 32 bits) and "large" groups, each run through Pippenger with a window chosen
from its size and its largest bit length: a batch of 4-bit values costs one window, not 22.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gmpy2 import mpz

from omniplus.prover import curve as C
from omniplus.prover.field import R

SMALL_BITS = 32
_HALF_R = R // 2


@dataclass(frozen=True)
class _Group:
    """The operations Pippenger needs, for one group (G1 or G2) in Jacobian form."""

    inf: Any
    is_inf: Callable[[Any], bool]
    add: Callable[[Any, Any], Any]
    add_aff: Callable[[Any, Any, Any], Any]
    dbl: Callable[[Any], Any]
    from_aff: Callable[[Any, Any], Any]
    neg_y: Callable[[Any], Any]
    to_affine: Callable[[Any], Any]


def _g1_aff(p: Any) -> tuple[Any, Any]:
    return mpz(p[0]), mpz(p[1])


def _g2_aff(p: Any) -> tuple[Any, Any]:
    return (mpz(p[0][0]), mpz(p[0][1])), (mpz(p[1][0]), mpz(p[1][1]))


_QM = mpz(C.Q)

G1_OPS = _Group(
    inf=C.G1_JAC_INF,
    is_inf=lambda p: p[2] == 0,
    add=C.g1_jac_add,
    add_aff=C.g1_jac_add_affine,
    dbl=C.g1_jac_double,
    from_aff=lambda x, y: (x, y, mpz(1)),
    neg_y=lambda y: (-y) % _QM,
    to_affine=C.g1_from_jac,
)

G2_OPS = _Group(
    inf=C.G2_JAC_INF,
    is_inf=C.g2_jac_is_inf,
    add=C.g2_jac_add,
    add_aff=C.g2_jac_add_affine,
    dbl=C.g2_jac_double,
    from_aff=lambda x, y: (x, y, C.FQ2_ONE),
    neg_y=C.fq2_neg,
    to_affine=C.g2_from_jac,
)


def choose_window(n: int, bits: int) -> int:
    """Window c minimising ⌈bits/c⌉·(n + 2^(c+1)) bucket additions (+ c doublings per window)."""
    best_c, best_cost = 1, None
    for c in range(1, min(bits, 20) + 1):
        windows = -(-bits // c)
        cost = windows * (n + (2 << c) + c)
        if best_cost is None or cost < best_cost:
            best_c, best_cost = c, cost
    return best_c


def _pippenger(items: list[tuple[Any, Any, int]], g: _Group) -> Any:
    """Σ k·(x, y) over items with k > 0, in Jacobian form."""
    if not items:
        return g.inf
    bits = max(k for _, _, k in items).bit_length()
    c = choose_window(len(items), bits)
    mask = (1 << c) - 1
    n_windows = -(-bits // c)
    add, add_aff, from_aff = g.add, g.add_aff, g.from_aff
    result = g.inf
    for w in range(n_windows - 1, -1, -1):
        if not g.is_inf(result):
            for _ in range(c):
                result = g.dbl(result)
        shift = w * c
        buckets: list[Any] = [None] * (mask + 1)
        for x, y, k in items:
            d = (k >> shift) & mask
            if d:
                b = buckets[d]
                buckets[d] = from_aff(x, y) if b is None else add_aff(b, x, y)
        running = g.inf
        total = g.inf
        started = False
        for d in range(mask, 0, -1):
            b = buckets[d]
            if b is not None:
                running = add(running, b)
                started = True
            if started:
                total = add(total, running)
        result = add(result, total)
    return result


def _msm(points: Sequence[Any], scalars: Sequence[int], g: _Group, to_aff: Callable) -> Any:
    if len(points) != len(scalars):
        raise ValueError(f"msm: {len(points)} points but {len(scalars)} scalars")
    ones = g.inf
    small: list[tuple[Any, Any, int]] = []
    large: list[tuple[Any, Any, int]] = []
    for p, k in zip(points, scalars, strict=True):
        if p is None:
            continue
        k = int(k) % R
        if k == 0:
            continue
        x, y = to_aff(p)
        if k > _HALF_R:
            k = R - k
            y = g.neg_y(y)
        if k == 1:
            ones = g.add_aff(ones, x, y)
        elif k.bit_length() <= SMALL_BITS:
            small.append((x, y, k))
        else:
            large.append((x, y, k))
    acc = g.add(ones, _pippenger(small, g))
    return g.add(acc, _pippenger(large, g))


def msm_g1_jac(points: Sequence[C.G1Point], scalars: Sequence[int]) -> Any:
    """Σ k_i·P_i as a Jacobian G1 tuple (skip the final inversion when summing further)."""
    return _msm(points, scalars, G1_OPS, _g1_aff)


def msm_g1(points: Sequence[C.G1Point], scalars: Sequence[int]) -> C.G1Point:
    """Σ k_i·P_i over G1 (affine API points, None = infinity; scalars any ints, reduced mod r)."""
    return C.g1_from_jac(msm_g1_jac(points, scalars))


def msm_g2_jac(points: Sequence[C.G2Point], scalars: Sequence[int]) -> Any:
    return _msm(points, scalars, G2_OPS, _g2_aff)


def msm_g2(points: Sequence[C.G2Point], scalars: Sequence[int]) -> C.G2Point:
    """Σ k_i·P_i over G2."""
    return C.g2_from_jac(msm_g2_jac(points, scalars))


def naive_msm_g1(points: Sequence[C.G1Point], scalars: Sequence[int]) -> C.G1Point:
    """Reference: one scalar multiplication per point (tests only)."""
    acc = C.G1_JAC_INF
    for p, k in zip(points, scalars, strict=True):
        acc = C.g1_jac_add(acc, C.g1_jac_mul(C.g1_to_jac(p), k))
    return C.g1_from_jac(acc)


def naive_msm_g2(points: Sequence[C.G2Point], scalars: Sequence[int]) -> C.G2Point:
    acc = C.G2_JAC_INF
    for p, k in zip(points, scalars, strict=True):
        acc = C.g2_jac_add(acc, C.g2_jac_mul(C.g2_to_jac(p), int(k) % R))
    return C.g2_from_jac(acc)
