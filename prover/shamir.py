"""Shamir secret sharing over the BN254 scalar field, as pure functions.

Party j holds the share at x = j (1..n). A degree-t sharing needs t+1 shares to open; the
collaborative prover's products are degree 2t and need 2t+1 (PROTOCOL.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from omniplus.prover.field import R, batch_inv


def _rand(rng: Any) -> int:
    """A uniform field element from rng: an object with field() (prover.mpc Rng), a
    random.Random-like randrange, or None for the OS CSPRNG."""
    if rng is None:
        return secrets.randbelow(R)
    if hasattr(rng, "field"):
        return int(rng.field()) % R
    return rng.randrange(R)


def poly_eval(coeffs: Sequence[int], x: int) -> int:
    """Horner: Σ coeffs[i]·x^i mod r."""
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % R
    return acc


def share(secret: int, t: int, n: int, rng: Any = None) -> list[int]:
    """Shares [f(1), ..., f(n)] of a random degree-t polynomial f with f(0) = secret."""
    if t < 0 or n < t + 1:
        raise ValueError(f"need n ≥ t+1 shares (t={t}, n={n})")
    coeffs = [secret % R] + [_rand(rng) for _ in range(t)]
    return [poly_eval(coeffs, x) for x in range(1, n + 1)]


def share_at(secret: int, t: int, xs: Sequence[int], rng: Any = None) -> list[int]:
    """Shares [f(x) for x in xs] of a random degree-t polynomial f with f(0) = secret: a sharing
    among a subset of the parties (a round that leaves a server out deals at its parties' points)."""
    if t < 0 or len(xs) < t + 1:
        raise ValueError(f"need at least t+1 points (t={t}, points={list(xs)})")
    if len(set(xs)) != len(xs) or any(x % R == 0 for x in xs):
        raise ValueError(f"share points must be distinct and non-zero, got {list(xs)}")
    coeffs = [secret % R] + [_rand(rng) for _ in range(t)]
    return [poly_eval(coeffs, x) for x in xs]


def lagrange_at(xs: Sequence[int], x: int) -> list[int]:
    """λ_j with f(x) = Σ λ_j f(xs[j]) for every f of degree < len(xs)."""
    xs = [v % R for v in xs]
    if len(set(xs)) != len(xs):
        raise ValueError("interpolation points must be distinct")
    nums, dens = [], []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = num * (x - xm) % R
                den = den * (xj - xm) % R
        nums.append(num)
        dens.append(den)
    return [n * d % R for n, d in zip(nums, batch_inv(dens), strict=True)]


def lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    """λ_j with f(0) = Σ λ_j f(xs[j]): the weights that open a sharing (also in the exponent)."""
    return lagrange_at(xs, 0)


def reconstruct(points: Mapping[int, int]) -> int:
    """f(0) of the lowest-degree polynomial through all given points (use t+1 of them for a
    degree-t sharing; use degree_ok first if spare shares should be checked)."""
    if not points:
        raise ValueError("no shares to reconstruct from")
    xs = list(points)
    lam = lagrange_at_zero(xs)
    return sum(lj * points[x] for lj, x in zip(lam, xs, strict=True)) % R


def degree_ok(points: Mapping[int, int], t: int) -> bool:
    """Do all points lie on one polynomial of degree ≤ t? (Always true with ≤ t+1 points.)"""
    xs = sorted(points)
    if len(xs) <= t + 1:
        return True
    base = xs[: t + 1]
    for x in xs[t + 1:]:
        lam = lagrange_at(base, x)
        if sum(lj * points[b] for lj, b in zip(lam, base, strict=True)) % R != points[x] % R:
            return False
    return True
