"""Contribution screening on shares, before any aggregate is opened (issue 12; PROTOCOL.md step 2/3).

After validation the servers hold degree-t shares [g_i] of every candidate's update. The score of
candidate i within the current set S (prover/contribution.py) is

    s_i = <g_i, a_S - g_i> = sum_j g_ij·(sum_{k in S} g_kj) - sum_j g_ij²,

a sum of products of two degree-t shares: a degree-2t share, computed locally. Like the validity
openings (prover/mpc/validation.py) each share is re-randomised with a fresh joint degree-2t
sharing of zero, so the opened points are uniform given s_i, and opened with commit-then-reveal
and echo checks (audit.py): one scalar per candidate, nothing else about an update is revealed.

Selection follows prover.contribution.select exactly: drop the single lowest score ≤ min_score
(ties: the smaller DO id), rescore the rest (a drop moves the aggregate), repeat while at least
n_min remain. The aggregate is then opened only of the kept DOs; a dropped DO is told its score.

With n = 2t+1 a degree-2t opening has no spare point, so one server can shift an opened score
(like a validity verdict): screening is semi-honest there, and only n > 2t+1 detects it
(the spare points must lie on one degree-2t polynomial). The in-circuit scores (the batch proof)
bind what is paid; screening only decides who enters the aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omniplus.prover.field import R
from omniplus.prover.mpc.audit import committed_broadcast
from omniplus.prover.mpc.codec import decode_scalars, encode_scalars
from omniplus.prover.mpc.net import Net, NetError, need_parties
from omniplus.prover.mpc.opening import decode_from, interpolate_at_zero
from omniplus.prover.mpc.randomness import Rng, joint_sharings
from omniplus.prover.shamir import degree_ok


def low_score_reason(score: int, min_score: int) -> str:
    """What a dropped DO is told (its verdict on every server)."""
    return (f"score {score} ≤ minScore {min_score}: the update does not agree with the rest of the batch "
            "(contribution screening); not in the aggregate, not paid")


def is_low_score(reason: str) -> bool:
    """Is this verdict a screening drop (final: the DO may not resubmit in this task)?"""
    return reason.startswith("score ") and "≤ minScore" in reason


def signed(x: int) -> int:
    """Field element → the signed integer it encodes (|s| ≤ (N-1)·B, far below r/2)."""
    x %= R
    return x - R if x > R // 2 else x


def score_shares(g: Sequence[Sequence[int]]) -> list[int]:
    """Local degree-2t shares of s_i for rows of degree-t shares (or of clear values: then the
    scores themselves, mod r). All rows of one length."""
    if not g:
        return []
    d = len(g[0])
    if any(len(row) != d for row in g):
        raise ValueError("share rows have different lengths")
    agg = [sum(col) % R for col in zip(*g, strict=True)]
    return [sum(x * (a - x) for x, a in zip(row, agg, strict=True)) % R for row in g]


def open_scores(net: Net, t: int, g: Sequence[Sequence[int]], rng: Rng, tag: str) -> list[int]:
    """Open every row's score (signed ints) with one mask exchange and one committed broadcast."""
    need_parties(net, t, "score openings")
    zeros = joint_sharings(net, f"{tag}/zero", len(g), 2 * t, rng, zero=True)
    local = [(s + z) % R for s, z in zip(score_shares(g), zeros, strict=True)]
    received = committed_broadcast(net, f"{tag}/open", encode_scalars(local))
    points = {j: decode_from(j, decode_scalars, p, len(g), what=f"{tag} from party {j}")
              for j, p in received.items()}
    for i in range(len(g)):
        if not degree_ok({j: pts[i] for j, pts in points.items()}, 2 * t):
            raise NetError(f"{tag}: the opened score shares of row {i} do not lie on one degree-{2 * t} polynomial")
    return [signed(v) for v in interpolate_at_zero(points, 2 * t)]


@dataclass(frozen=True)
class Screening:
    """The outcome (the same on every server): kept ids in the order given, dropped (id, score
    when dropped) lowest first, the kept DOs' scores within the kept set (empty if not ok), and
    every opened round ({id: score} per round) for the log."""

    kept: tuple[str, ...]
    dropped: tuple[tuple[str, int], ...]
    final: tuple[int, ...]
    rounds: tuple[dict[str, int], ...]
    min_score: int
    n_min: int

    @property
    def ok(self) -> bool:
        return len(self.kept) >= self.n_min and bool(self.final)

    def reasons(self) -> dict[str, str]:
        return {do: low_score_reason(s, self.min_score) for do, s in self.dropped}


def select_on_scores(ids: Sequence[str], score_of, *, min_score: int, n_min: int) -> Screening:  # type: ignore[no-untyped-def]
    """contribution.select's loop over an oracle `score_of(kept ids) -> scores` (an opening on
    shares, or cleartext in tests)."""
    kept = list(ids)
    dropped: list[tuple[str, int]] = []
    rounds: list[dict[str, int]] = []
    while kept:
        s = list(score_of(list(kept)))
        rounds.append(dict(zip(kept, s, strict=True)))
        low = min(range(len(kept)), key=lambda j: (s[j], j))
        if s[low] > min_score:
            return Screening(tuple(kept), tuple(dropped), tuple(s), tuple(rounds), min_score, n_min)
        dropped.append((kept[low], s[low]))
        del kept[low]
        if len(kept) < n_min:
            break
    return Screening(tuple(kept), tuple(dropped), (), tuple(rounds), min_score, n_min)


def screen(net: Net, t: int, g_shares: Mapping[str, Sequence[int]], *, min_score: int, n_min: int,
           rng: Rng, tag: str, order: Sequence[str] | None = None) -> Screening:
    """Screen the candidates (this server's g shares per DO id; every server passes the same ids
    and `order`, default sorted): one score opening per round, the tags numbered by round."""
    ids = list(order) if order is not None else sorted(g_shares)
    if sorted(ids) != sorted(g_shares):
        raise ValueError("order must list exactly the candidates")
    counter = iter(range(len(ids) + 1))

    def opened(kept: list[str]) -> list[int]:
        return open_scores(net, t, [g_shares[d] for d in kept], rng, f"{tag}/{next(counter)}")

    return select_on_scores(ids, opened, min_score=min_score, n_min=n_min)
