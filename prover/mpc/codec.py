"""Bytes on the wire between parties: scalars as 32-byte little-endian canonical field elements,
G1 points as 64 bytes (x, y), G2 as 128 bytes (x.c0, x.c1, y.c0, y.c1), all zero = infinity.

Decoding refuses anything a well-behaved peer never sends (wrong length, value ≥ modulus, point
off the curve), so a malformed message stops the round with a clear error instead of poisoning it.
"""

from __future__ import annotations

from collections.abc import Sequence

from omniplus.prover.field import CodecError, Q, R, fr_to_bytes, ints_from_bytes, ints_to_bytes
from omniplus.prover.mpc.net import NetError

G1Point = tuple[int, int] | None
G2Point = tuple[tuple[int, int], tuple[int, int]] | None


def _ints_to_bytes(values: Sequence[int]) -> bytes:
    return ints_to_bytes(values)


def _ints_from_bytes(data: bytes, modulus: int, what: str, count: int | None = None) -> list[int]:
    try:
        return ints_from_bytes(data, modulus, count, what)
    except CodecError as exc:
        raise NetError(str(exc)) from None


def encode_scalars(values: Sequence[int]) -> bytes:
    return fr_to_bytes(values)


def decode_scalars(data: bytes, count: int | None = None, what: str = "scalars") -> list[int]:
    return _ints_from_bytes(data, R, what, count)


def encode_g1(points: Sequence[G1Point]) -> bytes:
    return _ints_to_bytes([c for p in points for c in ((0, 0) if p is None else p)])


def decode_g1(data: bytes, count: int, what: str = "G1 points") -> list[G1Point]:
    from omniplus.prover.curve import g1_on_curve

    coords = _ints_from_bytes(data, Q, what)
    if len(coords) != 2 * count:
        raise NetError(f"{what}: expected {count} points, got {len(coords) / 2:g}")
    out: list[G1Point] = []
    for i in range(count):
        x, y = coords[2 * i], coords[2 * i + 1]
        p = None if x == 0 and y == 0 else (x, y)
        if p is not None and not g1_on_curve(p):
            raise NetError(f"{what}: point {i} is not on G1")
        out.append(p)
    return out


def encode_g2(points: Sequence[G2Point]) -> bytes:
    flat: list[int] = []
    for p in points:
        flat += [0, 0, 0, 0] if p is None else [p[0][0], p[0][1], p[1][0], p[1][1]]
    return _ints_to_bytes(flat)


def decode_g2(data: bytes, count: int, what: str = "G2 points") -> list[G2Point]:
    from omniplus.prover.curve import g2_on_curve

    c = _ints_from_bytes(data, Q, what)
    if len(c) != 4 * count:
        raise NetError(f"{what}: expected {count} points, got {len(c) / 4:g}")
    out: list[G2Point] = []
    for i in range(count):
        x0, x1, y0, y1 = c[4 * i : 4 * i + 4]
        p = None if not (x0 or x1 or y0 or y1) else ((x0, x1), (y0, y1))
        if p is not None and not g2_on_curve(p):
            raise NetError(f"{what}: point {i} is not on G2")
        out.append(p)
    return out
