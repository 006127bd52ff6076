"""BN254 points: the API types, fast Jacobian arithmetic, py_ecc conversion and zkey byte layout.

API types (DESIGN.md): G1 = (x, y) ints or None for infinity; G2 = ((x0, x1), (y0, y1)) with
x = x0 + x1·u, or None. Internally the group law runs on Jacobian tuples of gmpy2 ints (G1) and
of Fq2 pairs (G2) as plain functions: several times faster than py_ecc's FQ objects, which
matters for the MSMs.
"""

from __future__ import annotations

from typing import Any

from gmpy2 import invert, mpz

from omniplus.core.errors import ProofError
from omniplus.prover.field import Q, R, from_mont, int_to_le, to_mont

G1Point = tuple[int, int] | None
Fq2 = tuple[int, int]
G2Point = tuple[Fq2, Fq2] | None

_Q = mpz(Q)
_ZERO = mpz(0)
_ONE = mpz(1)

G1_GEN: tuple[int, int] = (1, 2)
G2_GEN: tuple[Fq2, Fq2] = (
    (10857046999023057135944570762232829481370756359578518086990519993285655852781,
     11559732032986387107991004021392285783925812861821192530917403151452391805634),
    (8495653923123431417604973247489272438418190587263600148770280649306958101930,
     4082367875863433681332203403145435568316851327593401208105741076214120093531),
)

# --- Fq2 = Fq[u]/(u^2 + 1) on tuples ----------------------------------------------------------


def fq2_add(a: Any, b: Any) -> Any:
    return ((a[0] + b[0]) % _Q, (a[1] + b[1]) % _Q)


def fq2_sub(a: Any, b: Any) -> Any:
    return ((a[0] - b[0]) % _Q, (a[1] - b[1]) % _Q)


def fq2_mul(a: Any, b: Any) -> Any:
    t0 = a[0] * b[0]
    t1 = a[1] * b[1]
    return ((t0 - t1) % _Q, ((a[0] + a[1]) * (b[0] + b[1]) - t0 - t1) % _Q)


def fq2_sqr(a: Any) -> Any:
    return (((a[0] + a[1]) * (a[0] - a[1])) % _Q, (2 * a[0] * a[1]) % _Q)


def fq2_scale(a: Any, k: int) -> Any:
    return ((a[0] * k) % _Q, (a[1] * k) % _Q)


def fq2_neg(a: Any) -> Any:
    return ((-a[0]) % _Q, (-a[1]) % _Q)


def fq2_inv(a: Any) -> Any:
    d = invert((a[0] * a[0] + a[1] * a[1]) % _Q, _Q)
    return ((a[0] * d) % _Q, (-a[1] * d) % _Q)


def _fq2_is_zero(a: Any) -> bool:
    return a[0] == 0 and a[1] == 0


FQ2_ZERO = (_ZERO, _ZERO)
FQ2_ONE = (_ONE, _ZERO)
B1 = mpz(3)
# b' = 3 / (9 + u) for the twist
B2 = fq2_mul((mpz(3), _ZERO), fq2_inv((mpz(9), _ONE)))

# --- checks -------------------------------------------------------------------------------------


def g1_on_curve(p: G1Point) -> bool:
    """Coordinates in range and y² = x³ + 3 (infinity counts as on the curve)."""
    if p is None:
        return True
    x, y = p
    if not (0 <= x < Q and 0 <= y < Q):
        return False
    return (y * y - x * x * x - 3) % Q == 0


def g2_on_curve(p: G2Point) -> bool:
    """Coordinates in range and y² = x³ + 3/(9+u)."""
    if p is None:
        return True
    (x0, x1), (y0, y1) = p
    if not all(0 <= v < Q for v in (x0, x1, y0, y1)):
        return False
    x = (mpz(x0), mpz(x1))
    y = (mpz(y0), mpz(y1))
    return _fq2_is_zero(fq2_sub(fq2_sqr(y), fq2_add(fq2_mul(fq2_sqr(x), x), B2)))


def g2_in_subgroup(p: G2Point) -> bool:
    """On the curve and of order r (the twist has a large cofactor; G1 has none)."""
    if not g2_on_curve(p):
        return False
    if p is None:
        return True
    return g2_jac_is_inf(g2_jac_mul(g2_to_jac(p), R))


# --- G1 Jacobian ----------------------------------------------------------------------------------

G1Jac = tuple[Any, Any, Any]
G1_JAC_INF: G1Jac = (_ONE, _ONE, _ZERO)


def g1_to_jac(p: G1Point) -> G1Jac:
    if p is None:
        return G1_JAC_INF
    return (mpz(p[0]), mpz(p[1]), _ONE)


def g1_jac_double(p: G1Jac) -> G1Jac:
    """dbl-2009-l (a = 0)."""
    X, Y, Z = p
    if Z == 0 or Y == 0:
        return G1_JAC_INF
    A = X * X % _Q
    B = Y * Y % _Q
    C = B * B % _Q
    D = 2 * ((X + B) ** 2 - A - C) % _Q
    E = 3 * A
    F = E * E % _Q
    X3 = (F - 2 * D) % _Q
    return (X3, (E * (D - X3) - 8 * C) % _Q, 2 * Y * Z % _Q)


def g1_jac_add(p: G1Jac, q: G1Jac) -> G1Jac:
    """add-2007-bl; handles infinity and doubling."""
    X1, Y1, Z1 = p
    X2, Y2, Z2 = q
    if Z1 == 0:
        return q
    if Z2 == 0:
        return p
    Z1Z1 = Z1 * Z1 % _Q
    Z2Z2 = Z2 * Z2 % _Q
    U1 = X1 * Z2Z2 % _Q
    U2 = X2 * Z1Z1 % _Q
    S1 = Y1 * Z2 * Z2Z2 % _Q
    S2 = Y2 * Z1 * Z1Z1 % _Q
    H = (U2 - U1) % _Q
    r = 2 * (S2 - S1) % _Q
    if H == 0:
        return g1_jac_double(p) if r == 0 else G1_JAC_INF
    I = 4 * H * H % _Q
    J = H * I % _Q
    V = U1 * I % _Q
    X3 = (r * r - J - 2 * V) % _Q
    Y3 = (r * (V - X3) - 2 * S1 * J) % _Q
    Z3 = ((Z1 + Z2) ** 2 - Z1Z1 - Z2Z2) * H % _Q
    return (X3, Y3, Z3)


def g1_jac_add_affine(p: G1Jac, x2: Any, y2: Any) -> G1Jac:
    """madd-2007-bl: Jacobian + affine (x2, y2), the inner loop of the bucket method."""
    X1, Y1, Z1 = p
    if Z1 == 0:
        return (x2, y2, _ONE)
    Z1Z1 = Z1 * Z1 % _Q
    U2 = x2 * Z1Z1 % _Q
    S2 = y2 * Z1 * Z1Z1 % _Q
    H = (U2 - X1) % _Q
    r = 2 * (S2 - Y1) % _Q
    if H == 0:
        return g1_jac_double(p) if r == 0 else G1_JAC_INF
    HH = H * H % _Q
    I = 4 * HH
    J = H * I % _Q
    V = X1 * I % _Q
    X3 = (r * r - J - 2 * V) % _Q
    return (X3, (r * (V - X3) - 2 * Y1 * J) % _Q, ((Z1 + H) ** 2 - Z1Z1 - HH) % _Q)


def g1_jac_neg(p: G1Jac) -> G1Jac:
    return (p[0], (-p[1]) % _Q, p[2])


def g1_jac_mul(p: G1Jac, k: int) -> G1Jac:
    """Double-and-add (scalars reduced mod r; not constant time — the prover's r, s are masked
    by proof randomness only against verifiers, and this code never runs on keys)."""
    k %= R
    acc = G1_JAC_INF
    for bit in bin(k)[2:] if k else "":
        acc = g1_jac_double(acc)
        if bit == "1":
            acc = g1_jac_add(acc, p)
    return acc


def g1_from_jac(p: G1Jac) -> G1Point:
    X, Y, Z = p
    if Z == 0:
        return None
    zi = invert(Z, _Q)
    zi2 = zi * zi % _Q
    return (int(X * zi2 % _Q), int(Y * zi2 * zi % _Q))


def g1_add(p: G1Point, q: G1Point) -> G1Point:
    return g1_from_jac(g1_jac_add(g1_to_jac(p), g1_to_jac(q)))


def g1_neg(p: G1Point) -> G1Point:
    return None if p is None else (p[0], (-p[1]) % Q)


def g1_mul(p: G1Point, k: int) -> G1Point:
    return g1_from_jac(g1_jac_mul(g1_to_jac(p), k))


# --- G2 Jacobian over Fq2 -------------------------------------------------------------------------

G2Jac = tuple[Any, Any, Any]
G2_JAC_INF: G2Jac = (FQ2_ONE, FQ2_ONE, FQ2_ZERO)


def g2_to_jac(p: G2Point) -> G2Jac:
    if p is None:
        return G2_JAC_INF
    (x0, x1), (y0, y1) = p
    return ((mpz(x0), mpz(x1)), (mpz(y0), mpz(y1)), FQ2_ONE)


def g2_jac_is_inf(p: G2Jac) -> bool:
    return _fq2_is_zero(p[2])


def g2_jac_double(p: G2Jac) -> G2Jac:
    X, Y, Z = p
    if _fq2_is_zero(Z) or _fq2_is_zero(Y):
        return G2_JAC_INF
    A = fq2_sqr(X)
    B = fq2_sqr(Y)
    C = fq2_sqr(B)
    D = fq2_scale(fq2_sub(fq2_sub(fq2_sqr(fq2_add(X, B)), A), C), 2)
    E = fq2_scale(A, 3)
    F = fq2_sqr(E)
    X3 = fq2_sub(F, fq2_scale(D, 2))
    Y3 = fq2_sub(fq2_mul(E, fq2_sub(D, X3)), fq2_scale(C, 8))
    return (X3, Y3, fq2_scale(fq2_mul(Y, Z), 2))


def g2_jac_add(p: G2Jac, q: G2Jac) -> G2Jac:
    X1, Y1, Z1 = p
    X2, Y2, Z2 = q
    if _fq2_is_zero(Z1):
        return q
    if _fq2_is_zero(Z2):
        return p
    Z1Z1 = fq2_sqr(Z1)
    Z2Z2 = fq2_sqr(Z2)
    U1 = fq2_mul(X1, Z2Z2)
    U2 = fq2_mul(X2, Z1Z1)
    S1 = fq2_mul(fq2_mul(Y1, Z2), Z2Z2)
    S2 = fq2_mul(fq2_mul(Y2, Z1), Z1Z1)
    H = fq2_sub(U2, U1)
    r = fq2_scale(fq2_sub(S2, S1), 2)
    if _fq2_is_zero(H):
        return g2_jac_double(p) if _fq2_is_zero(r) else G2_JAC_INF
    I = fq2_sqr(fq2_scale(H, 2))
    J = fq2_mul(H, I)
    V = fq2_mul(U1, I)
    X3 = fq2_sub(fq2_sub(fq2_sqr(r), J), fq2_scale(V, 2))
    Y3 = fq2_sub(fq2_mul(r, fq2_sub(V, X3)), fq2_scale(fq2_mul(S1, J), 2))
    Z3 = fq2_mul(fq2_sub(fq2_sub(fq2_sqr(fq2_add(Z1, Z2)), Z1Z1), Z2Z2), H)
    return (X3, Y3, Z3)


def g2_jac_add_affine(p: G2Jac, x2: Any, y2: Any) -> G2Jac:
    """madd-2007-bl over Fq2 with the Fq2 products written out: the bucket loop of the G2 MSM
    spends its time here, and inlining halves it compared with the fq2_* helpers."""
    (X0, X1), (Y0, Y1), (Z0, Z1) = p
    if Z0 == 0 and Z1 == 0:
        return (x2, y2, FQ2_ONE)
    q = _Q
    a0, a1 = x2
    b0, b1 = y2
    zz0 = (Z0 + Z1) * (Z0 - Z1) % q  # Z1Z1 = Z²
    zz1 = 2 * Z0 * Z1 % q
    t0 = a0 * zz0
    t1 = a1 * zz1
    h0 = (t0 - t1 - X0) % q  # H = x2·Z1Z1 − X
    h1 = ((a0 + a1) * (zz0 + zz1) - t0 - t1 - X1) % q
    t0 = Z0 * zz0
    t1 = Z1 * zz1
    zc0 = (t0 - t1) % q  # Z³
    zc1 = ((Z0 + Z1) * (zz0 + zz1) - t0 - t1) % q
    t0 = b0 * zc0
    t1 = b1 * zc1
    r0 = 2 * (t0 - t1 - Y0) % q  # r = 2(y2·Z³ − Y)
    r1 = 2 * ((b0 + b1) * (zc0 + zc1) - t0 - t1 - Y1) % q
    if h0 == 0 and h1 == 0:
        return g2_jac_double(p) if r0 == 0 and r1 == 0 else G2_JAC_INF
    hh0 = (h0 + h1) * (h0 - h1) % q
    hh1 = 2 * h0 * h1 % q
    i0 = 4 * hh0
    i1 = 4 * hh1
    t0 = h0 * i0
    t1 = h1 * i1
    j0 = (t0 - t1) % q
    j1 = ((h0 + h1) * (i0 + i1) - t0 - t1) % q
    t0 = X0 * i0
    t1 = X1 * i1
    v0 = (t0 - t1) % q
    v1 = ((X0 + X1) * (i0 + i1) - t0 - t1) % q
    x30 = ((r0 + r1) * (r0 - r1) - j0 - 2 * v0) % q
    x31 = (2 * r0 * r1 - j1 - 2 * v1) % q
    d0 = v0 - x30
    d1 = v1 - x31
    t0 = r0 * d0
    t1 = r1 * d1
    e0 = Y0 * j0
    e1 = Y1 * j1
    y30 = (t0 - t1 - 2 * (e0 - e1)) % q
    y31 = ((r0 + r1) * (d0 + d1) - t0 - t1 - 2 * ((Y0 + Y1) * (j0 + j1) - e0 - e1)) % q
    s0 = Z0 + h0
    s1 = Z1 + h1
    z30 = ((s0 + s1) * (s0 - s1) - zz0 - hh0) % q
    z31 = (2 * s0 * s1 - zz1 - hh1) % q
    return ((x30, x31), (y30, y31), (z30, z31))


def g2_jac_neg(p: G2Jac) -> G2Jac:
    return (p[0], fq2_neg(p[1]), p[2])


def g2_jac_mul(p: G2Jac, k: int) -> G2Jac:
    """Double-and-add; k is NOT reduced mod r so the subgroup check can multiply by r."""
    acc = G2_JAC_INF
    for bit in bin(k)[2:] if k > 0 else "":
        acc = g2_jac_double(acc)
        if bit == "1":
            acc = g2_jac_add(acc, p)
    return acc


def g2_from_jac(p: G2Jac) -> G2Point:
    X, Y, Z = p
    if _fq2_is_zero(Z):
        return None
    zi = fq2_inv(Z)
    zi2 = fq2_sqr(zi)
    x = fq2_mul(X, zi2)
    y = fq2_mul(Y, fq2_mul(zi2, zi))
    return ((int(x[0]), int(x[1])), (int(y[0]), int(y[1])))


def g2_add(p: G2Point, q: G2Point) -> G2Point:
    return g2_from_jac(g2_jac_add(g2_to_jac(p), g2_to_jac(q)))


def g2_neg(p: G2Point) -> G2Point:
    return None if p is None else (p[0], ((-p[1][0]) % Q, (-p[1][1]) % Q))


def g2_mul(p: G2Point, k: int) -> G2Point:
    return g2_from_jac(g2_jac_mul(g2_to_jac(p), k % R))


# --- py_ecc conversion ------------------------------------------------------------------------------


def g1_to_pyecc(p: G1Point) -> Any:
    """API point → py_ecc optimized_bn128 (projective FQ triple)."""
    from py_ecc.optimized_bn128 import FQ, Z1
    if p is None:
        return Z1
    return (FQ(p[0]), FQ(p[1]), FQ(1))


def g1_from_pyecc(p: Any) -> G1Point:
    from py_ecc.optimized_bn128 import is_inf, normalize
    if is_inf(p):
        return None
    x, y = normalize(p)
    return (int(x.n), int(y.n))


def g2_to_pyecc(p: G2Point) -> Any:
    from py_ecc.optimized_bn128 import FQ2, Z2
    if p is None:
        return Z2
    (x0, x1), (y0, y1) = p
    return (FQ2([x0, x1]), FQ2([y0, y1]), FQ2([1, 0]))


def g2_from_pyecc(p: Any) -> G2Point:
    from py_ecc.optimized_bn128 import is_inf, normalize
    if is_inf(p):
        return None
    x, y = normalize(p)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


# --- zkey byte layout: LE Montgomery coordinates, all-zero = infinity ----------------------------

G1_BYTES = 64
G2_BYTES = 128


def decode_g1(buf: bytes | memoryview, off: int = 0) -> G1Point:
    """One G1 point from zkey bytes (no curve check; see g1_on_curve)."""
    raw = bytes(buf[off:off + G1_BYTES])
    if len(raw) != G1_BYTES:
        raise ProofError(f"G1 point needs {G1_BYTES} bytes, got {len(raw)}")
    if not any(raw):
        return None
    return (from_mont(int.from_bytes(raw[:32], "little"), Q),
            from_mont(int.from_bytes(raw[32:], "little"), Q))


def decode_g2(buf: bytes | memoryview, off: int = 0) -> G2Point:
    raw = bytes(buf[off:off + G2_BYTES])
    if len(raw) != G2_BYTES:
        raise ProofError(f"G2 point needs {G2_BYTES} bytes, got {len(raw)}")
    if not any(raw):
        return None
    v = [from_mont(int.from_bytes(raw[i:i + 32], "little"), Q) for i in range(0, 128, 32)]
    return ((v[0], v[1]), (v[2], v[3]))


def encode_g1(p: G1Point) -> bytes:
    if p is None:
        return bytes(G1_BYTES)
    return int_to_le(to_mont(p[0], Q)) + int_to_le(to_mont(p[1], Q))


def encode_g2(p: G2Point) -> bytes:
    if p is None:
        return bytes(G2_BYTES)
    (x0, x1), (y0, y1) = p
    return b"".join(int_to_le(to_mont(v, Q)) for v in (x0, x1, y0, y1))


def decode_g1_array(buf: bytes | memoryview, count: int) -> list[G1Point]:
    """count consecutive G1 points (one pass over the buffer, batched Montgomery conversion)."""
    raw = bytes(buf)
    if len(raw) != count * G1_BYTES:
        raise ProofError(f"expected {count} G1 points ({count * G1_BYTES} bytes), got {len(raw)} bytes")
    rinv = from_mont(1, Q)
    out: list[G1Point] = []
    fb = int.from_bytes
    for off in range(0, len(raw), G1_BYTES):
        x = fb(raw[off:off + 32], "little")
        y = fb(raw[off + 32:off + 64], "little")
        if x == 0 and y == 0:
            out.append(None)
        else:
            out.append((x * rinv % Q, y * rinv % Q))
    return out


def decode_g2_array(buf: bytes | memoryview, count: int) -> list[G2Point]:
    raw = bytes(buf)
    if len(raw) != count * G2_BYTES:
        raise ProofError(f"expected {count} G2 points ({count * G2_BYTES} bytes), got {len(raw)} bytes")
    rinv = from_mont(1, Q)
    out: list[G2Point] = []
    fb = int.from_bytes
    for off in range(0, len(raw), G2_BYTES):
        v = [fb(raw[off + i:off + i + 32], "little") for i in (0, 32, 64, 96)]
        if not any(v):
            out.append(None)
        else:
            v = [c * rinv % Q for c in v]
            out.append(((v[0], v[1]), (v[2], v[3])))
    return out
