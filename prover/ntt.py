"""Radix-2 NTT over the scalar field, matching snarkjs' Fr.fft / Fr.ifft bit for bit.

Natural order in and out; forward out_k = Σ_i a_i ω^(ik) with ω = ROOTS[log n] (snarkjs'
table — another primitive root gives another, equally valid, transform whose H scalars would
not match the zkey's section 9). The coset step multiplies coefficient i by ROOTS[log n + 1]^i,
as snarkjs' prover does before evaluating on the odd points of the 2n-domain.
"""

from __future__ import annotations

from collections.abc import Sequence

from gmpy2 import mpz

from omniplus.prover.field import ROOTS, R, inv, log2_exact

_R = mpz(R)


def _bitrev_perm(n: int) -> list[int]:
    bits = n.bit_length() - 1
    return [int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(n)]


_PERM_CACHE: dict[int, list[int]] = {}
_TW_CACHE: dict[tuple[int, int], list] = {}


def _twiddles(omega: int, m: int) -> list:
    """[w^0..w^(m-1)] for w = omega^(n/2m) — cached per (root, half-size)."""
    key = (omega, m)
    tw = _TW_CACHE.get(key)
    if tw is None:
        w = mpz(omega)
        tw = [mpz(1)] * m
        for j in range(1, m):
            tw[j] = tw[j - 1] * w % _R
        if len(_TW_CACHE) > 64:
            _TW_CACHE.clear()
        _TW_CACHE[key] = tw
    return tw


def _transform(values: Sequence[int], omega: int) -> list:
    n = len(values)
    log_n = log2_exact(n)
    perm = _PERM_CACHE.get(n)
    if perm is None:
        perm = _PERM_CACHE[n] = _bitrev_perm(n)
    a = [mpz(values[p]) % _R for p in perm]
    for s in range(1, log_n + 1):
        m = 1 << (s - 1)
        w_m = pow(omega, n >> s, R)
        tw = _twiddles(w_m, m)
        step = m << 1
        for start in range(0, n, step):
            for j in range(m):
                i = start + j
                u = a[i]
                v = a[i + m] * tw[j] % _R
                a[i] = (u + v) % _R
                a[i + m] = (u - v) % _R
    return a


def ntt(values: Sequence[int]) -> list[int]:
    """Evaluations on the size-n domain: out_k = Σ_i a_i ω^(ik), ω = ROOTS[log n]."""
    return [int(v) for v in _transform(values, ROOTS[log2_exact(len(values))])]


def intt(values: Sequence[int]) -> list[int]:
    """Coefficients from evaluations (the exact inverse of ntt, including 1/n)."""
    n = len(values)
    omega_inv = inv(ROOTS[log2_exact(n)])
    n_inv = mpz(inv(n))
    return [int(v * n_inv % _R) for v in _transform(values, omega_inv)]


def coset_shift(coeffs: Sequence[int], g: int) -> list[int]:
    """Coefficient i times g^i: evaluating the result on the domain evaluates on the coset g·D."""
    out = [0] * len(coeffs)
    acc = mpz(1)
    gm = mpz(g)
    for i, c in enumerate(coeffs):
        out[i] = int(c * acc % _R)
        acc = acc * gm % _R
    return out


def coset_generator(n: int) -> int:
    """ROOTS[log n + 1]: the shift snarkjs uses (a 2n-th root, so the coset is the odd half of
    the 2n-domain)."""
    return ROOTS[log2_exact(n) + 1]


def naive_dft(values: Sequence[int], omega: int) -> list[int]:
    """O(n²) reference transform for tests."""
    n = len(values)
    return [sum(values[i] * pow(omega, i * k, R) for i in range(n)) % R for k in range(n)]
