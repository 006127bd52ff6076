"""Joint randomness for the servers: random sharings, sharings of zero, and public coins.

Every party deals its own random sharing and the parties add what they receive, so the result is
random as long as one dealer is honest, and no coalition of t learns the shared value. Sharings
of zero of degree 2t re-randomise the degree-2t values (local products) before they are opened:
without them the opened points would be functions of the parties' private shares.

Coins (the random coefficients of the validity checks) are hashed from every party's
contribution and from a digest of what they are about to check, so they are fixed only after
the shares are. Contributions are commit-then-reveal with echo checks (prover/mpc/audit.py), so
a server that waits for the others' contributions cannot choose the coin; it can only abort
after seeing it, which is visible (it is named) and gains a re-draw, not a chosen value.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from omniplus.prover.field import R
from omniplus.prover.mpc.codec import decode_scalars, encode_scalars
from omniplus.prover.mpc.net import Net, parties_of
from omniplus.prover.shamir import share_at


class Rng:
    """Source of field elements; tests pass a seeded one to replay a run coin for coin."""

    def __init__(self, seed: bytes | None = None) -> None:
        self._seed = seed
        self._counter = 0

    def field(self) -> int:
        if self._seed is None:
            return secrets.randbelow(R)
        self._counter += 1
        digest = hashlib.sha512(self._seed + self._counter.to_bytes(8, "little")).digest()
        return int.from_bytes(digest, "little") % R

    def bytes32(self) -> bytes:
        return self.field().to_bytes(32, "little")


def poly_shares(values: Sequence[int], degree: int, n: int, rng: Rng,
                points: Sequence[int] | None = None) -> dict[int, list[int]]:
    """Shamir-share each value with a fresh random polynomial of `degree`; {party: shares}, at
    points 1..n, or at exactly `points` (the parties of a round that leaves servers out)."""
    xs = list(range(1, n + 1)) if points is None else list(points)
    out: dict[int, list[int]] = {j: [] for j in xs}
    for value in values:
        for j, y in zip(xs, share_at(value, degree, xs, rng), strict=True):
            out[j].append(y)
    return out


def joint_sharings(net: Net, tag: str, count: int, degree: int, rng: Rng, zero: bool = False) -> list[int]:
    """Our shares of `count` jointly random values (or of zeros, with `zero=True`) of `degree`."""
    values = [0 if zero else rng.field() for _ in range(count)]
    dealt = poly_shares(values, degree, net.n, rng, points=parties_of(net))
    received = net.exchange(tag, {j: encode_scalars(s) for j, s in dealt.items()})
    total = [0] * count
    from omniplus.prover.mpc.opening import decode_from

    for j, payload in received.items():
        for i, v in enumerate(decode_from(j, decode_scalars, payload, count, what=f"{tag} from party {j}")):
            total[i] = (total[i] + v) % R
    return total


def joint_coin(net: Net, tag: str, rng: Rng, bind: bytes) -> bytes:
    """A 32-byte public seed no single honest-but-curious party chooses, bound to `bind`."""
    from omniplus.prover.mpc.audit import Deviation, committed_broadcast

    contributions = committed_broadcast(net, tag, rng.bytes32())
    h = hashlib.sha256(b"omniplus/coin/v1" + tag.encode() + hashlib.sha256(bind).digest())
    for j in sorted(contributions):
        if len(contributions[j]) != 32:
            raise Deviation(j, f"coin {tag!r}: sent {len(contributions[j])} bytes, expected 32")
        h.update(contributions[j])
    return h.digest()


def expand_coin(seed: bytes, count: int, label: str = "") -> list[int]:
    """`count` field elements derived from a public seed (the checks' random coefficients)."""
    out = []
    for i in range(count):
        d = hashlib.sha512(seed + label.encode() + i.to_bytes(8, "little")).digest()
        out.append(int.from_bytes(d, "little") % R)
    return out
