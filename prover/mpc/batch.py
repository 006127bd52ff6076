"""One server's whole part in one batch: validate, open the aggregate, prove (PROTOCOL.md 2–5).

Both the DO side (`make_block`, `share_block`) and the server side (`run_batch_party`) live
here because they must agree on the block order of `layout.BatchLayout`. The network is the
`Net` the caller passes; the heavy work goes to the `ProverEngine` the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from omniplus.core.errors import InputError
from omniplus.prover.binding import BindingContext, pack_aggregate, pack_scores, public_signals
from omniplus.prover.field import R
from omniplus.prover.mpc.groth16 import ProverEngine, joint_randomness, prove_party
from omniplus.prover.mpc.layout import BatchLayout
from omniplus.prover.mpc.net import Net, NetError
from omniplus.prover.mpc.opening import open_scalars
from omniplus.prover.mpc.randomness import Rng, poly_shares
from omniplus.prover.mpc.screening import Screening, screen
from omniplus.prover.mpc.validation import validate_blocks
from omniplus.prover.proof import Proof
from omniplus.prover.witness import do_block
from omniplus.prover.zkey import Zkey


def make_block(setup, layout: BatchLayout, q_row: Sequence[int]) -> list[int]:
    """A DO's witness block in block order, computed in the clear (InputError if out of bound)."""
    wires = do_block(setup, 0, q_row)
    return [wires[w] % R for w in layout.slot_wires[0]]


def share_block(block: Sequence[int], t: int, n: int, rng: Rng | None = None) -> dict[int, list[int]]:
    """Shamir-share every wire of a block: {server index 1..n: shares}."""
    return poly_shares(block, t, n, rng or Rng())


def signed(x: int) -> int:
    """Field element → the signed integer it encodes (aggregates are far below r/2 in size)."""
    return x - R if x > R // 2 else x


@dataclass
class BatchOutcome:
    verdicts: dict[str, str | None]  # DO id → None (accepted) or why rejected
    included: list[str]  # DO ids in slot order
    aggregate: list[int] = field(default_factory=list)  # signed sum of the included updates
    words: list[int] = field(default_factory=list)
    public: list[int] = field(default_factory=list)  # [ctx, W_0..W_{M-1}, S_0..S_{K-1}]
    scores: list[int] = field(default_factory=list)  # signed contribution score per included DO, slot order
    proof: Proof | None = None
    # point shares (prover/mpc/point_shares.py): DO index in slot order → why its point shares were
    # refused (the proof was then made from wire shares); fast = the proof with point shares verified
    point_blame: dict[int, str] = field(default_factory=dict)
    fast: bool | None = None  # None: no point shares were used
    # contribution screening before the aggregate (prover/mpc/screening.py), when it was run
    screening: Screening | None = None


def prove_batch_party(net: Net, t: int, setup, zk: Zkey, layout: BatchLayout, engine: ProverEngine,
                      slot_blocks: Sequence[Sequence[int]], payees: Sequence[str], context: BindingContext,
                      rng: Rng, tag: str, point_shares: Sequence[bytes | None] | None = None,
                      verify: Callable[[Proof, list[int]], bool] | None = None,
                      mark: Callable[[str], None] | None = None) -> BatchOutcome:
    """Steps 3–5 for already validated DOs in slot order: open the aggregate, bind, prove.

    Every server must pass the same slot order and payees; `context.payees` must equal `payees`
    (build it with BindingContext.for_batch from the same list). With `point_shares` (per DO in
    slot order: this server's encoded point shares, or None) the DOs' blocks enter the MSMs as
    points (point_shares.py); `verify` (default: local_verifier) checks that proof, and a failure
    falls back to the wire shares and names the DO. `mark(phase)`, if given, is called as each
    phase ends ("aggregate", then "proof"; with point shares "proof" includes their local check),
    for per-phase timings."""
    params = setup.params
    if not 0 < len(slot_blocks) <= params.batch or len(payees) != len(slot_blocks):
        raise InputError(f"a batch needs 1..{params.batch} DOs with one payee each, got "
                         f"{len(slot_blocks)} blocks and {len(payees)} payees")
    if [p.lower() for p in context.payees] != [str(p).lower() for p in payees]:
        raise InputError("the binding context's payees differ from the batch's payees")
    outcome = BatchOutcome(verdicts={}, included=list(payees))
    g_pos = [layout.block_names.index(f"g[{j}]") for j in range(params.dims)]
    agg_shares = [sum(block[p] for block in slot_blocks) % R for p in g_pos]
    outcome.aggregate = [signed(x) for x in open_scalars(net, f"{tag}/aggregate", agg_shares, degree=t)]
    outcome.words = pack_aggregate(params, outcome.aggregate)
    # Scores s_i = Σ_j a_j·g_ij − Σ_j sq_ij are linear in the shares once a is public: a degree-t
    # opening of one scalar per DO (prover/contribution.py), after the aggregate.
    sq_pos = [layout.block_names.index(f"sq[{j}]") for j in range(params.dims)]
    score_shares = [sum(a * block[p] for a, p in zip(outcome.aggregate, g_pos, strict=True))
                    - sum(block[p] for p in sq_pos) for block in slot_blocks]
    outcome.scores = [signed(x) for x in open_scalars(net, f"{tag}/scores", [x % R for x in score_shares],
                                                      degree=t)]
    if mark:
        mark("aggregate")  # the aggregate and the scores
    outcome.public = public_signals(context, outcome.words, pack_scores(params, outcome.scores))
    w = witness_shares(setup, layout, slot_blocks, outcome.public, outcome.aggregate)
    if point_shares is None or all(p is None for p in point_shares):
        rnd = joint_randomness(net, t, rng, f"{tag}/blind")
        outcome.proof = prove_party(net, t, zk, engine, w, rnd, f"{tag}/prove")
        if mark:
            mark("proof")
        return outcome
    from omniplus.prover.mpc.point_shares import decode_contributions, local_verifier, prove_with_points

    if len(point_shares) != len(slot_blocks):
        raise InputError(f"{len(point_shares)} point shares for {len(slot_blocks)} DOs")
    slot_points, refused = {}, {}
    for s, data in enumerate(point_shares):
        if data is None:
            continue
        try:
            slot_points[s] = decode_contributions(data, layout.n_slots, what=f"point shares of DO {s}")[s]
        except NetError as exc:  # the daemon refuses these at Submit; here the DO's wires are used
            refused[s] = str(exc)
    proved = prove_with_points(net, t, zk, engine, layout, w, slot_blocks, slot_points,
                               lambda tg: joint_randomness(net, t, rng, tg), f"{tag}/prove",
                               verify or local_verifier(setup, engine))
    outcome.proof, outcome.fast = proved.proof, proved.fast
    outcome.point_blame = {**refused, **proved.blamed}
    if mark:
        mark("proof")
    return outcome


def run_batch_party(net: Net, t: int, setup, zk: Zkey, layout: BatchLayout, engine: ProverEngine,
                    blocks: Mapping[str, Sequence[int]], payee_of: Mapping[str, str],
                    context: BindingContext, rng: Rng, tag: str,
                    points: Mapping[str, bytes] | None = None, min_score: int | None = None,
                    n_min: int = 1) -> BatchOutcome:
    """Validate every submitted block, put up to N accepted DOs into slots, prove the batch.

    `blocks` (this server's shares) and `payee_of` (DO id → payee address) must list the same
    DO ids on every server; slot order is the sorted order of accepted ids, so all agree.
    `points`: DO id → this server's point shares (DOs missing from it enter by wire shares).
    With `min_score` the candidates are screened by contribution score first (screening.py):
    DOs with s ≤ min_score get a verdict and stay out of the aggregate; if fewer than `n_min`
    would remain, nothing is opened and `included` is empty."""
    verdicts = validate_blocks(net, t, layout.block, blocks, rng, round_id=f"{tag}/validate")
    included = [do for do in sorted(blocks) if verdicts[do] is None][: setup.params.batch]
    if not included:
        return BatchOutcome(verdicts=verdicts, included=[])
    screening = None
    if min_score is not None:
        g = {do: g_values(layout, blocks[do], setup.params.dims) for do in included}
        screening = screen(net, t, g, min_score=min_score, n_min=n_min, rng=rng, tag=f"{tag}/screen", order=included)
        verdicts = {**verdicts, **screening.reasons()}
        if not screening.ok:
            return BatchOutcome(verdicts=verdicts, included=[], screening=screening)
        included = list(screening.kept)
    payees = [payee_of[do] for do in included]
    pts = None if points is None else [points.get(do) for do in included]
    ctx = BindingContext.for_batch(chain_id=context.chain_id, market=context.market, task_id=context.task_id,
                                   batch_index=context.batch_index, payees=payees,
                                   model_version=context.model_version)
    outcome = prove_batch_party(net, t, setup, zk, layout, engine, [blocks[do] for do in included],
                                ctx.payees, ctx, rng, tag, point_shares=pts)
    outcome.verdicts, outcome.included, outcome.screening = verdicts, included, screening
    return outcome


def g_values(layout: BatchLayout, block: Sequence[int], dims: int) -> list[int]:
    """The update's coordinates g[0..d-1] of a block (shares or clear values), in order."""
    return [block[layout.block_names.index(f"g[{j}]")] for j in range(dims)]


def witness_shares(setup, layout: BatchLayout, slot_blocks: Sequence[Sequence[int]], public: Sequence[int],
                   aggregate: Sequence[int]) -> list[int]:
    """This server's share of the whole batch witness.

    The public wires [ctx, W…, S…] (functions of the context, the opened aggregate and the opened
    scores) are the same constants for every server; empty slots carry the zero update's block in
    the clear; the score products are [t_ij] = a_j·[g_ij] with the opened aggregate a (a public
    constant times a share: a share of the product, of the same degree t)."""
    if len(slot_blocks) > layout.n_slots:
        raise InputError(f"{len(slot_blocks)} DOs for {layout.n_slots} slots")
    if len(public) != len(layout.public_wires):
        raise InputError(f"{len(public)} public inputs for {len(layout.public_wires)} public wires")
    w = [0] * layout.n_wires
    w[0] = 1
    for wire, v in zip(layout.public_wires, public, strict=True):
        w[wire] = int(v) % R
    zero = make_block(setup, layout, [0] * setup.params.dims)
    for s in range(layout.n_slots):
        values = slot_blocks[s] if s < len(slot_blocks) else zero
        for wire, v in zip(layout.slot_wires[s], values, strict=True):
            w[wire] = v % R
    if len(aggregate) != setup.params.dims:
        raise InputError(f"aggregate has {len(aggregate)} coordinates, expected {setup.params.dims}")
    g_pos = [layout.block_names.index(f"g[{j}]") for j in range(setup.params.dims)]
    for s in range(len(slot_blocks)):
        for wire, a, p in zip(layout.t_wires[s], aggregate, g_pos, strict=True):
            w[wire] = int(a) * slot_blocks[s][p] % R
    return w
