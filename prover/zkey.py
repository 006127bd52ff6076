"""The Groth16 .zkey proving key written by snarkjs.

Sections: 1 protocol id (1 = Groth16); 2 header (n8q, q, n8r, r, nVars, nPublic, domainSize,
α1, β1, β2, γ2, δ1, δ2); 3 IC (nPublic+1 G1); 4 coefficients; 5 A (nVars G1); 6 B1 (nVars G1);
7 B2 (nVars G2); 8 C/L (private wires nPublic+1..nVars-1, G1); 9 H (domainSize G1, the odd
Lagrange points of the 2n-domain over δ); 10 contributions (ignored here).

Section 4 is u32 count then records (u32 matrix m ∈ {0: A, 1: B}, u32 constraint c,
u32 signal s, 32-byte value). The value is coef·R² mod r with R = 2^256: snarkjs multiplies it
in Montgomery form by a *plain* witness value and gets the Montgomery form of coef·w. We store
the plain coefficient (value·R⁻² mod r) in `coeffs`. Points are LE Montgomery, see curve.py.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from omniplus.core.errors import SetupError
from omniplus.prover.binfile import read_binfile
from omniplus.prover.curve import (
    G1_BYTES,
    G2_BYTES,
    G1Point,
    G2Point,
    decode_g1,
    decode_g1_array,
    decode_g2,
    decode_g2_array,
    g1_on_curve,
    g2_on_curve,
)
from omniplus.prover.field import N8, Q, R, log2_exact

MAGIC = b"zkey"

# Coefficient records as stored: value·R⁻² turns the stored value into the plain coefficient.
_R2_INV = pow(pow(2, 512, R), -1, R)


@dataclass
class Coeff:
    """One non-zero QAP coefficient: matrix (0 = A, 1 = B), constraint row, signal, plain value."""

    matrix: int
    constraint: int
    signal: int
    value: int


@dataclass
class Zkey:
    """A parsed Groth16 proving key (points in the API representation of curve.py)."""

    path: str
    n_vars: int
    n_public: int
    domain_size: int
    alpha1: G1Point
    beta1: G1Point
    beta2: G2Point
    gamma2: G2Point
    delta1: G1Point
    delta2: G2Point
    ic: list[G1Point] = field(default_factory=list)
    coeffs: list[Coeff] = field(default_factory=list)
    a: list[G1Point] = field(default_factory=list)
    b1: list[G1Point] = field(default_factory=list)
    b2: list[G2Point] = field(default_factory=list)
    c: list[G1Point] = field(default_factory=list)
    h: list[G1Point] = field(default_factory=list)

    @property
    def power(self) -> int:
        return log2_exact(self.domain_size)

    def vkey(self) -> dict:
        """The verification key JSON as snarkjs exports it (without vk_alphabeta_12, which verify skips)."""
        from omniplus.prover.proof import g1_to_json, g2_to_json

        return {
            "protocol": "groth16",
            "curve": "bn128",
            "nPublic": self.n_public,
            "vk_alpha_1": g1_to_json(self.alpha1),
            "vk_beta_2": g2_to_json(self.beta2),
            "vk_gamma_2": g2_to_json(self.gamma2),
            "vk_delta_2": g2_to_json(self.delta2),
            "IC": [g1_to_json(p) for p in self.ic],
        }


def read_zkey(path: str | os.PathLike, *, points: bool = True, check_points: bool = False) -> Zkey:
    """Parse a Groth16 zkey. points=False reads only the header and IC (cheap, e.g. for params).

    Header points are always curve-checked; check_points=True also checks every bulk point.
    SetupError naming the file on any inconsistency.
    """
    bf = read_binfile(path, MAGIC, max_version=1, error=SetupError)
    s1 = bf.section(1)
    if len(s1) != 4 or struct.unpack_from("<I", s1, 0)[0] != 1:
        raise bf.fail("not a Groth16 zkey (protocol id in section 1 is not 1)")
    h = bytes(bf.section(2))
    need = 4 + N8 + 4 + N8 + 12 + 3 * G1_BYTES + 3 * G2_BYTES
    if len(h) != need:
        raise bf.fail(f"header section has {len(h)} bytes, expected {need}")
    n8q = struct.unpack_from("<I", h, 0)[0]
    qv = int.from_bytes(h[4:36], "little")
    n8r = struct.unpack_from("<I", h, 36)[0]
    rv = int.from_bytes(h[40:72], "little")
    if n8q != N8 or n8r != N8 or qv != Q or rv != R:
        raise bf.fail("not a BN254 (bn128) zkey")
    n_vars, n_public, domain_size = struct.unpack_from("<III", h, 72)
    try:
        log2_exact(domain_size)
    except ValueError as exc:
        raise bf.fail(f"domain size {domain_size} is not a power of two") from exc
    if n_public + 1 > n_vars:
        raise bf.fail(f"nPublic {n_public} ≥ nVars {n_vars}")
    pos = 84
    pts: list = []
    for kind in ("g1", "g1", "g2", "g2", "g1", "g2"):
        if kind == "g1":
            p = decode_g1(h, pos)
            pos += G1_BYTES
            ok = g1_on_curve(p)
        else:
            p = decode_g2(h, pos)
            pos += G2_BYTES
            ok = g2_on_curve(p)
        if not ok or p is None:
            raise bf.fail(f"header point {len(pts) + 1} is not on the curve")
        pts.append(p)
    zk = Zkey(str(path), n_vars, n_public, domain_size, *pts)
    zk.ic = _g1s(bf, 3, n_public + 1, check_points)
    if not points:
        return zk
    zk.coeffs = _coeffs(bf, zk)
    zk.a = _g1s(bf, 5, n_vars, check_points)
    zk.b1 = _g1s(bf, 6, n_vars, check_points)
    s7 = bf.section(7)
    if len(s7) != n_vars * G2_BYTES:
        raise bf.fail(f"section 7 (B2) has {len(s7)} bytes, expected {n_vars} G2 points")
    zk.b2 = decode_g2_array(s7, n_vars)
    if check_points and not all(g2_on_curve(p) for p in zk.b2):
        raise bf.fail("section 7 (B2) holds a point off the curve")
    zk.c = _g1s(bf, 8, n_vars - n_public - 1, check_points)
    zk.h = _g1s(bf, 9, domain_size, check_points)
    return zk


def _g1s(bf, stype: int, count: int, check: bool) -> list[G1Point]:
    sec = bf.section(stype)
    if len(sec) != count * G1_BYTES:
        raise bf.fail(f"section {stype} has {len(sec)} bytes, expected {count} G1 points "
                      f"({count * G1_BYTES} bytes)")
    out = decode_g1_array(sec, count)
    if check and not all(g1_on_curve(p) for p in out):
        raise bf.fail(f"section {stype} holds a point off the curve")
    return out


def _coeffs(bf, zk: Zkey) -> list[Coeff]:
    sec = bytes(bf.section(4))
    if len(sec) < 4:
        raise bf.fail("section 4 (coefficients) too short")
    (n,) = struct.unpack_from("<I", sec, 0)
    rec = 12 + N8
    if len(sec) != 4 + n * rec:
        raise bf.fail(f"section 4 has {len(sec)} bytes, expected {n} records of {rec} bytes")
    out: list[Coeff] = []
    rows = zk.domain_size
    unpack = struct.unpack_from
    fb = int.from_bytes
    r2i = _R2_INV
    for off in range(4, len(sec), rec):
        m, c, s = unpack("<III", sec, off)
        v = fb(sec[off + 12:off + rec], "little")
        if m > 1 or c >= rows or s >= zk.n_vars or v >= R:
            raise bf.fail(f"section 4 record {(off - 4) // rec}: bad (matrix {m}, row {c}, "
                          f"signal {s})")
        out.append(Coeff(m, c, s, v * r2i % R))
    return out
