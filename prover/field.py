"""BN254 field constants and helpers shared by the parsers, the NTT, the curve code and the prover.

Arithmetic uses gmpy2 (the fastest big-int here); public functions return plain ints so the
values can go to JSON, py_ecc and other modules unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import gmpy2
from gmpy2 import mpz

# Scalar field (witness values, exponents) and base field (curve coordinates).
R = 21888242871839275222246405745257275088548364400416034343698204186575808495617
Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583

N8 = 32  # bytes per field element in every snarkjs file and on the wire
MONT_BITS = 256  # Montgomery radix 2^256, for both fields
R_MPZ = mpz(R)
Q_MPZ = mpz(Q)

# snarkjs' root table: nqr 5, two-adicity 28.
NQR = 5
TWO_ADICITY = 28


def inv(x: int, p: int = R) -> int:
    """Modular inverse; ZeroDivisionError on 0 so a bad denominator is never silent."""
    x %= p
    if x == 0:
        raise ZeroDivisionError("inverse of zero")
    return int(gmpy2.invert(x, p))


def batch_inv(xs: Sequence[int], p: int = R) -> list[int]:
    """Montgomery's trick: n inverses for one inversion and 3n multiplies. Zeros map to 0."""
    pm = mpz(p)
    vals = [mpz(x) % pm for x in xs]
    prefix = [mpz(1)] * len(vals)
    acc = mpz(1)
    for i, x in enumerate(vals):
        prefix[i] = acc
        if x:
            acc = acc * x % pm
    inv_acc = gmpy2.invert(acc, pm)
    out = [0] * len(vals)
    for i in range(len(vals) - 1, -1, -1):
        x = vals[i]
        if x:
            out[i] = int(inv_acc * prefix[i] % pm)
            inv_acc = inv_acc * x % pm
    return out


def _roots() -> list[int]:
    w = [0] * (TWO_ADICITY + 1)
    w[TWO_ADICITY] = int(gmpy2.powmod(NQR, (R - 1) >> TWO_ADICITY, R))
    for i in range(TWO_ADICITY - 1, -1, -1):
        w[i] = w[i + 1] * w[i + 1] % R
    return w


# ROOTS[k] is the primitive 2^k-th root snarkjs uses for a domain of size 2^k (ROOTS[0] = 1).
ROOTS: list[int] = _roots()
assert ROOTS[0] == 1 and ROOTS[1] == R - 1


def root_of_unity(log_n: int) -> int:
    """Primitive 2^log_n-th root from snarkjs' table (FFT on other roots would not match its zkey)."""
    if not 0 <= log_n <= TWO_ADICITY:
        raise ValueError(f"no 2^{log_n}-th root of unity in the scalar field")
    return ROOTS[log_n]


def log2_exact(n: int) -> int:
    """log2 of a power of two; ValueError otherwise."""
    if n <= 0 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1


# --- Montgomery and byte helpers -------------------------------------------------------------

def to_mont(x: int, p: int) -> int:
    """x·2^256 mod p: how snarkjs stores curve coordinates and zkey coefficients."""
    return (x << MONT_BITS) % p


def from_mont(x: int, p: int) -> int:
    """Inverse of to_mont."""
    return x * _RINV[p] % p


_RINV = {R: int(gmpy2.invert(1 << MONT_BITS, R)), Q: int(gmpy2.invert(1 << MONT_BITS, Q))}


def int_from_le(b: bytes | memoryview) -> int:
    """Little-endian bytes → int."""
    return int.from_bytes(b, "little")


def int_to_le(x: int, n: int = N8) -> bytes:
    """int → n little-endian bytes."""
    return int(x).to_bytes(n, "little")


def mont_to_bytes(x: int, p: int) -> bytes:
    """Field element → 32-byte little-endian Montgomery form."""
    return int_to_le(to_mont(x, p))


def mont_from_bytes(b: bytes | memoryview, p: int) -> int:
    """32-byte little-endian Montgomery form → canonical field element (no range check)."""
    return from_mont(int.from_bytes(b, "little"), p)


# ---------------------------------------------------------------- the one wire codec
class CodecError(ValueError):
    """Bytes that are not a whole number of canonical 32-byte little-endian elements."""


def ints_to_bytes(values: Sequence[int]) -> bytes:
    """Concatenated 32-byte little-endian values (callers reduce them first)."""
    return b"".join(int(v).to_bytes(N8, "little") for v in values)


def ints_from_bytes(data: bytes | memoryview, modulus: int = R, count: int | None = None,
                    what: str = "field elements") -> list[int]:
    """The inverse of ints_to_bytes; refuses partial elements, a wrong count and values ≥ modulus."""
    if len(data) % N8:
        raise CodecError(f"{what}: {len(data)} bytes is not a whole number of {N8}-byte elements")
    mv = memoryview(data)
    out = [int.from_bytes(mv[i:i + N8], "little") for i in range(0, len(mv), N8)]
    if count is not None and len(out) != count:
        raise CodecError(f"{what}: expected {count} elements, got {len(out)}")
    for i, v in enumerate(out):
        if v >= modulus:
            raise CodecError(f"{what}: element {i} is not a canonical field element")
    return out


def fr_to_bytes(values: Sequence[int]) -> bytes:
    """Scalars (any ints) reduced mod r, as the wire and the node worker carry them."""
    return ints_to_bytes([int(v) % R for v in values])
