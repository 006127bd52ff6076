"""Opening shared values: every party broadcasts its shares and interpolates at 0.

Every opening is commit-then-reveal with echo checks (prover/mpc/audit.py): no party sees the
others' points before it is bound to its own, and a party that equivocates or changes its mind
is named. A degree-t value needs t+1 points; with spare points the opener also checks that all
of them lie on one polynomial of the claimed degree, which catches a bad share early (a random
linear combination of the opened vectors is checked, so the cost is one interpolation, not one
per value). With n = 2t+1 there is one spare: a wrong point is *detected* but a single check
cannot say whose it is, so `InconsistentOpening` carries the opening without each party, for the
caller to test against another relation (the pairing check on B1/B2 in prover/mpc/groth16.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from omniplus.prover.field import R
from omniplus.prover.mpc.audit import Deviation, committed_broadcast
from omniplus.prover.mpc.codec import decode_g1, decode_g2, decode_scalars, encode_g1, encode_g2, encode_scalars
from omniplus.prover.mpc.net import Net, NetError
from omniplus.prover.mpc.randomness import Rng
from omniplus.prover.shamir import degree_ok, lagrange_at_zero


def interpolate_at_zero(points: dict[int, Sequence[int]], degree: int) -> list[int]:
    """Values at 0 of the degree-`degree` polynomials through the first degree+1 points."""
    xs = sorted(points)[: degree + 1]
    if len(xs) < degree + 1:
        raise NetError(f"need {degree + 1} shares to open a degree-{degree} value, have {len(xs)}")
    lam = lagrange_at_zero(xs)
    length = len(points[xs[0]])
    out = [0] * length
    for lj, x in zip(lam, xs, strict=True):
        col = points[x]
        for i in range(length):
            out[i] = (out[i] + lj * col[i]) % R
    return out


def consistent(points: dict[int, Sequence[int]], degree: int, rng: Rng | None = None) -> bool:
    """Do all parties' vectors lie on polynomials of `degree`? Checked on a random combination."""
    if len(points) <= degree + 1:
        return True
    rng = rng or Rng()
    length = len(next(iter(points.values())))
    coeffs = [rng.field() for _ in range(length)]
    combined = {x: sum(c * v for c, v in zip(coeffs, col, strict=True)) % R for x, col in points.items()}
    return degree_ok(combined, degree)


class InconsistentOpening(NetError):
    """The opened points do not lie on one polynomial of the claimed degree.

    `without[x]` is the opening from the points of every party but x (t+1 of them), so a caller
    that can tell a right value from a wrong one can name the party whose point is off.
    `alone[x]` is True when the points of every party but x lie on one curve *and* those are at
    least degree+2 points (so that was a real check): with n ≥ 2t+2 a single wrong point is then
    located by the points alone (exactly one x has it)."""

    def __init__(self, message: str, without: dict[int, tuple[list, list]] | None = None,
                 alone: dict[int, bool] | None = None) -> None:
        super().__init__(message)
        self.without = without or {}
        self.alone = alone or {}


def decode_from(j: int, decode, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Decode party j's revealed payload; a malformed one names j (everyone saw the same bytes)."""
    try:
        return decode(*args, **kwargs)
    except NetError as exc:
        if isinstance(exc, Deviation):
            raise
        raise Deviation(j, str(exc)) from None


def open_scalars(net: Net, tag: str, shares: Sequence[int], degree: int) -> list[int]:
    """Open a vector of shared field elements; NetError if the shares are not of `degree`."""
    received = committed_broadcast(net, tag, encode_scalars(shares))
    points = {
        j: decode_from(j, decode_scalars, p, len(shares), what=f"{tag} from party {j}") for j, p in received.items()
    }
    if not consistent(points, degree):
        raise NetError(f"{tag}: the opened shares do not lie on one degree-{degree} polynomial")
    return interpolate_at_zero(points, degree)


def open_points(net: Net, tag: str, g1: Sequence, g2: Sequence, degree: int) -> tuple[list, list]:
    """Open shared curve points (Lagrange in the exponent); spare shares are checked for `degree`."""
    from omniplus.prover.curve import g1_add, g1_mul, g2_add, g2_mul

    received = committed_broadcast(net, tag, encode_g1(g1) + encode_g2(g2))
    n1 = 64 * len(g1)
    pts1, pts2 = {}, {}
    for j, payload in received.items():
        if len(payload) != n1 + 128 * len(g2):
            raise Deviation(j, f"{tag}: sent {len(payload)} bytes, expected {n1 + 128 * len(g2)}")
        pts1[j] = decode_from(j, decode_g1, payload[:n1], len(g1), what=f"{tag} G1 from party {j}")
        pts2[j] = decode_from(j, decode_g2, payload[n1:], len(g2), what=f"{tag} G2 from party {j}")
    xs = sorted(received)

    def combine(pts: dict, subset: list[int], add, mul) -> list:
        lam = lagrange_at_zero(subset)
        out = []
        for i in range(len(pts[subset[0]])):
            acc = None
            for lj, x in zip(lam, subset, strict=True):
                acc = add(acc, mul(pts[x][i], lj))
            out.append(acc)
        return out

    first = xs[: degree + 1]
    if len(first) < degree + 1:
        raise NetError(f"{tag}: need {degree + 1} shares, have {len(first)}")
    open1 = combine(pts1, first, g1_add, g1_mul)
    open2 = combine(pts2, first, g2_add, g2_mul)
    # Every other choice of degree+1 shares must agree; checking each spare against the first
    # subset with it swapped in is enough.
    for spare in xs[degree + 1 :]:
        alt = [*first[1:], spare]
        if combine(pts1, alt, g1_add, g1_mul) != open1 or combine(pts2, alt, g2_add, g2_mul) != open2:
            without, alone = {}, {}
            for x in xs:
                others = [y for y in xs if y != x]
                rest = others[: degree + 1]
                if len(rest) == degree + 1:
                    without[x] = (combine(pts1, rest, g1_add, g1_mul), combine(pts2, rest, g2_add, g2_mul))
                    if len(others) >= degree + 2:  # spares among the others: is the rest on one curve?
                        alone[x] = all(
                            combine(pts1, [*rest[1:], y], g1_add, g1_mul) == without[x][0]
                            and combine(pts2, [*rest[1:], y], g2_add, g2_mul) == without[x][1]
                            for y in others[degree + 1:]
                        )
            raise InconsistentOpening(
                f"{tag}: party shares are inconsistent (party {spare} or one of {first})", without, alone
            )
    return open1, open2
