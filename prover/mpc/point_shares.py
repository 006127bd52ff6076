"""Point shares: a DO computes its block's share of the proof's MSMs itself and shares the *points*.

Why (PROTOCOL.md, "Cost note"): A, B1, B2 and the private-wire part of C are linear in the
witness. A DO knows its block in the clear, where most scalars are bits or small integers, so
Σ_{i∈block} w_i·A_i (and the B1, B2, L sums) costs it almost nothing; on Shamir shares the same
sums are full-field MSMs on every server. So the DO computes, for every batch slot s (it does not
know its slot when it submits), the four points

    P_s = (Σ w_i A_i, Σ w_i B1_i, Σ w_i B2_i, Σ w_i L_i)   over the wires of slot s,

and Shamir-shares them in the exponent: share_j = P + Σ_{k=1..t} j^k·R_k with uniformly random
points R_k = ρ_k·G. Servers add the shares of the DOs in the batch to their MSMs over the wires
they hold in the clear (public inputs, batch wires, empty slots: sparse, small) and run
full-scalar MSMs only for H; the rest of the collaborative prover (prover/mpc/groth16.py) is
unchanged. Wire shares are still sent: validation and the QAP evaluations behind H need them.

Privacy: any t servers see t shares of each point. For a fixed P the map (R_1..R_t) → (share_j)
for t distinct non-zero j is a bijection of G^t (a Vandermonde system), and the R_k are uniform,
so those t shares are uniform and independent of the block — exactly as for scalar Shamir.

A DO whose point shares disagree with its wire shares (the points are not the MSMs of the block
it shared, or not a degree-t sharing at all) can only spoil the proof of its own batch: the
public inputs come from the opened aggregate of its validated *wire* shares, so the worst it can
do is make round 1's spare-share check fail or the joint proof fail local verification. Servers
always verify the proof they made (PROTOCOL.md step 5); on failure they run `blame` — each
computes the DO's contribution from its wire shares (the full-field MSM the fast path avoided,
paid only now), the differences with the point shares are opened (for an honest DO they are a
degree-t sharing of the zero point, which every server can already compute from its own data, so
opening them reveals nothing), and every DO whose difference is not a sharing of zero is named.
The batch is then proven again with the contributions computed from wire shares (same DO set,
same aggregate, fresh r, s, z). Why not retry without the DO: that would open a second aggregate
whose difference with the first is the DO's update, and a malicious server could fake a blame to
force it. The DO cannot get its update paid without it being valid (validation is on wire
shares), and it can break at most one batch (one submission per DO per task). A cheap per-DO
check before the proof was looked for and not found: checking P = Σ w_i G_i against Shamir
shares of w needs an MSM over the shares themselves (the cost being avoided), and randomising
over the bases would need their discrete logs (the toxic waste).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omniplus.core.errors import ProofError
from omniplus.prover.curve import G1_GEN, G2_GEN, g1_add, g1_mul, g1_neg, g2_add, g2_mul, g2_neg
from omniplus.prover.field import R
from omniplus.prover.groth16_prove import SECTION_A, SECTION_B1, SECTION_B2, SECTION_C
from omniplus.prover.mpc.codec import decode_g1, decode_g2, encode_g1, encode_g2
from omniplus.prover.mpc.layout import BatchLayout
from omniplus.prover.mpc.net import Net, NetError
from omniplus.prover.mpc.randomness import Rng
from omniplus.prover.shamir import lagrange_at_zero

SLOT_BYTES = 3 * 64 + 128  # A, B1, C in G1 and B2 in G2, per slot
REASON_WRONG_POINTS = "point shares are a sharing of points other than the MSMs of the block's wire shares"
REASON_INCONSISTENT_POINTS = ("point shares are inconsistent with the wire shares and do not lie on one "
                              "degree-t curve (the DO, or a server, sent bad shares)")


@dataclass(frozen=True)
class Contribution:
    """One slot's share of the four witness MSMs (A and B1 and L in G1, B2 in G2)."""

    a: Any
    b1: Any
    b2: Any
    c: Any

    def __add__(self, o: Contribution) -> Contribution:
        return Contribution(g1_add(self.a, o.a), g1_add(self.b1, o.b1), g2_add(self.b2, o.b2),
                            g1_add(self.c, o.c))

    def __sub__(self, o: Contribution) -> Contribution:
        return Contribution(g1_add(self.a, g1_neg(o.a)), g1_add(self.b1, g1_neg(o.b1)),
                            g2_add(self.b2, g2_neg(o.b2)), g1_add(self.c, g1_neg(o.c)))

    def scaled(self, k: int) -> Contribution:
        return Contribution(g1_mul(self.a, k), g1_mul(self.b1, k), g2_mul(self.b2, k), g1_mul(self.c, k))


ZERO = Contribution(None, None, None, None)


# --- sparse MSMs ----------------------------------------------------------------------------------
def msm_at(engine: Any, section: int, indices: Sequence[int], scalars: Sequence[int]) -> Any:
    """Σ scalars[k]·P[indices[k]] over a zkey section, touching only those points.

    Uses the engine's msm_g1_at/msm_g2_at (both engines have them); zero scalars are dropped."""
    pairs = [(i, s % R) for i, s in zip(indices, scalars, strict=True) if s % R]
    idx, sc = [p[0] for p in pairs], [p[1] for p in pairs]
    if section == SECTION_B2:
        return engine.msm_g2_at(section, idx, sc)
    return engine.msm_g1_at(section, idx, sc)


def slot_contribution(engine: Any, layout: BatchLayout, n_public: int, slot: int,
                      values: Sequence[int]) -> Contribution:
    """The four MSMs of one block placed in `slot`: on clear values (a DO) or on shares (blame)."""
    wires = layout.slot_wires[slot]
    if len(values) != len(wires):
        raise ProofError(f"block has {len(values)} values, slot {slot} has {len(wires)} wires")
    private = [w - n_public - 1 for w in wires]
    if min(private) < 0:
        raise ProofError(f"slot {slot} holds a public wire: point shares cover private wires only")
    return Contribution(msm_at(engine, SECTION_A, wires, values), msm_at(engine, SECTION_B1, wires, values),
                        msm_at(engine, SECTION_B2, wires, values), msm_at(engine, SECTION_C, private, values))


class SparseEngine:
    """An engine whose MSMs skip zero scalars: the servers' leftover witness is mostly zeros."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def msm_g1(self, section: int, scalars: Sequence[int], start: int = 0) -> Any:
        return msm_at(self.inner, section, range(start, start + len(scalars)), scalars)

    def msm_g2(self, section: int, scalars: Sequence[int], start: int = 0) -> Any:
        return msm_at(self.inner, section, range(start, start + len(scalars)), scalars)

    def fft(self, values: Sequence[int]) -> list[int]:
        return self.inner.fft(values)

    def ifft(self, values: Sequence[int]) -> list[int]:
        return self.inner.ifft(values)


# --- the DO side ----------------------------------------------------------------------------------
def block_contributions(engine: Any, layout: BatchLayout, n_public: int, block: Sequence[int]) -> list[Contribution]:
    """A DO's block (clear values, block order) → its contribution in every slot."""
    return [slot_contribution(engine, layout, n_public, s, block) for s in range(layout.n_slots)]


def share_contributions(contribs: Sequence[Contribution], t: int, n: int, rng: Rng | None = None
                        ) -> dict[int, list[Contribution]]:
    """Shamir sharing in the exponent: share_j = P + Σ_{k=1..t} j^k·R_k, R_k = ρ_k·G uniform."""
    rng = rng or Rng()
    out: dict[int, list[Contribution]] = {j: [] for j in range(1, n + 1)}
    for p in contribs:
        coeffs = [Contribution(g1_mul(G1_GEN, rng.field()), g1_mul(G1_GEN, rng.field()),
                               g2_mul(G2_GEN, rng.field()), g1_mul(G1_GEN, rng.field())) for _ in range(t)]
        for j in range(1, n + 1):
            acc = p
            for k, rk in enumerate(coeffs, start=1):
                acc = acc + rk.scaled(pow(j, k, R))
            out[j].append(acc)
    return out


def encode_contributions(contribs: Sequence[Contribution]) -> bytes:
    """Per slot: A, B1, C (64 bytes each), B2 (128 bytes) — proto/omniplus.proto's point encoding."""
    return b"".join(encode_g1([c.a, c.b1, c.c]) + encode_g2([c.b2]) for c in contribs)


def decode_contributions(data: bytes, n_slots: int, what: str = "point shares") -> list[Contribution]:
    """The inverse of encode_contributions; NetError on a wrong length or a point off the curve."""
    if len(data) != n_slots * SLOT_BYTES:
        raise NetError(f"{what}: {len(data)} bytes, expected {n_slots} slots × {SLOT_BYTES}")
    out = []
    for s in range(n_slots):
        chunk = data[s * SLOT_BYTES:(s + 1) * SLOT_BYTES]
        a, b1, c = decode_g1(chunk[:192], 3, what=f"{what}, slot {s}")
        (b2,) = decode_g2(chunk[192:], 1, what=f"{what}, slot {s}")
        out.append(Contribution(a, b1, b2, c))
    return out


def check_encoding(data: bytes, n_slots: int) -> str | None:
    """Why a server must refuse these point shares at submission (None if well-formed): wrong
    length, a point off its curve, or a G2 point outside the order-r subgroup (G1 has cofactor 1)."""
    from omniplus.prover.curve import g2_in_subgroup

    try:
        decoded = decode_contributions(data, n_slots)
    except NetError as exc:
        return str(exc)
    for s, c in enumerate(decoded):
        if c.b2 is not None and not g2_in_subgroup(c.b2):
            return f"point shares, slot {s}: the B2 point is not in the order-r subgroup of G2"
    return None


def make_point_shares(engine: Any, layout: BatchLayout, n_public: int, block: Sequence[int], t: int, n: int,
                      rng: Rng | None = None) -> dict[int, bytes]:
    """What a DO sends next to its wire shares: {server j: encoded point shares for every slot}."""
    shared = share_contributions(block_contributions(engine, layout, n_public, block), t, n, rng)
    return {j: encode_contributions(c) for j, c in shared.items()}


# --- the server side ------------------------------------------------------------------------------
def clear_part(w: Sequence[int], layout: BatchLayout, slots: Sequence[int]) -> list[int]:
    """The witness with the wires of `slots` zeroed: what is left for the servers' own MSMs."""
    x = list(w)
    for s in slots:
        for wire in layout.slot_wires[s]:
            x[wire] = 0
    return x


def blame(net: Net, t: int, engine: Any, layout: BatchLayout, n_public: int,
          slot_blocks: Sequence[Sequence[int]], dealt: Mapping[int, Contribution], tag: str
          ) -> tuple[dict[int, str], dict[int, Contribution]]:
    """After a failed fast proof: ({slot: reason} for DOs whose point shares are wrong,
    {slot: contribution from wire shares} for every slot in `dealt`).

    Opens P_j − Σ w_i^(j)·G_i per DO: for an honest DO a degree-t sharing of the zero point that
    every server can compute from its own shares (so opening it reveals nothing)."""
    slots = sorted(dealt)
    classical = {s: slot_contribution(engine, layout, n_public, s, slot_blocks[s]) for s in slots}
    diffs = [dealt[s] - classical[s] for s in slots]
    payload = encode_g1([p for d in diffs for p in (d.a, d.b1, d.c)]) + encode_g2([d.b2 for d in diffs])
    received = net.broadcast(f"{tag}/blame", payload)
    n1 = 3 * 64 * len(slots)
    per: dict[int, tuple[list, list]] = {}
    for j, data in received.items():
        if len(data) != len(payload):
            raise NetError(f"{tag}/blame: party {j} sent {len(data)} bytes, expected {len(payload)}")
        per[j] = (decode_g1(data[:n1], 3 * len(slots), what=f"{tag}/blame from party {j}"),
                  decode_g2(data[n1:], len(slots), what=f"{tag}/blame from party {j}"))
    verdicts: dict[int, str] = {}
    for i, s in enumerate(slots):
        worst = None
        for g1, k in ((True, 3 * i), (True, 3 * i + 1), (True, 3 * i + 2), (False, i)):
            pts = {j: (v[0][k] if g1 else v[1][k]) for j, v in per.items()}
            state = _zero_sharing(pts, t, g1)
            if state != "zero":
                worst = REASON_INCONSISTENT_POINTS if state == "inconsistent" else (worst or REASON_WRONG_POINTS)
        if worst:
            verdicts[s] = worst
    return verdicts, classical


def _zero_sharing(points: Mapping[int, Any], t: int, g1: bool) -> str:
    """"zero" if the points are a degree-t sharing of infinity, "wrong" if of another point,
    "inconsistent" if they lie on no degree-t curve."""
    add, mul = (g1_add, g1_mul) if g1 else (g2_add, g2_mul)
    xs = sorted(points)

    def at_zero(subset: list[int]) -> Any:
        acc = None
        for lam, x in zip(lagrange_at_zero(subset), subset, strict=True):
            acc = add(acc, mul(points[x], lam))
        return acc

    first = xs[: t + 1]
    value = at_zero(first)
    for spare in xs[t + 1:]:
        if at_zero([*first[1:], spare]) != value:
            return "inconsistent"
    return "zero" if value is None else "wrong"


def local_verifier(setup: Any, engine: Any) -> Callable[[Any, list[int]], bool]:
    """The check every server runs on the proof it made: snarkjs' verifier (wasm pairings,
    milliseconds; Python's four pairings take seconds) in the engine's node worker, or in this
    process's shared worker when the engine is the native one."""
    import json

    from omniplus.prover.engine import verify_in_node
    from omniplus.prover.proof import proof_to_json

    vkey = json.loads(setup.vkey.read_text())
    inner = getattr(engine, "inner", engine)
    if hasattr(inner, "verify"):
        return lambda proof, public: bool(inner.verify(vkey, public, proof_to_json(proof)))
    return lambda proof, public: verify_in_node(vkey, public, proof_to_json(proof))


# --- the proof ------------------------------------------------------------------------------------
@dataclass
class PointProof:
    proof: Any  # prover.proof.Proof
    blamed: dict[int, str]  # slot → why its DO's point shares were refused (empty on the fast path)
    fast: bool  # the first attempt (with the DOs' point shares) verified


def prove_with_points(net: Net, t: int, zk: Any, engine: Any, layout: BatchLayout, w: Sequence[int],
                      slot_blocks: Sequence[Sequence[int]], slot_points: Mapping[int, Contribution],
                      randomness: Callable[[str], Any], tag: str,
                      verify: Callable[[Any, list[int]], bool]) -> PointProof:
    """The collaborative proof with the DOs' point shares for the slots in `slot_points`.

    `w` is this party's witness share (as for prove_party); `slot_blocks` the filled slots' wire
    shares; `randomness(tag)` draws a fresh joint PartyRandomness. If the fast proof fails (round
    1's spare check, its e(B1,G2) = e(G1,B2) check, or local verification), `blame` names the DOs
    with bad point shares and the same batch is proven again from wire shares. If blame clears
    every DO the failure is a server's and is reported as it would be without point shares."""
    from omniplus.prover.mpc.groth16 import Dealt, DealtPointsFailed, prove_party

    public = [int(v) for v in w[1:zk.n_public + 1]]
    clear = clear_part(w, layout, sorted(slot_points))
    sparse = SparseEngine(engine)

    def dealt(parts: Mapping[int, Contribution], by_dos: bool) -> Any:
        total = ZERO
        for s in sorted(parts):
            total = total + parts[s]
        return Dealt(clear, total.a, total.b1, total.b2, total.c, msm_engine=sparse, by_dos=by_dos)

    failure: DealtPointsFailed | None = None
    try:
        proof = prove_party(net, t, zk, engine, w, randomness(f"{tag}/fast-blind"), f"{tag}/fast",
                            dealt(slot_points, by_dos=True))
        if verify(proof, public):
            return PointProof(proof, {}, True)
    except DealtPointsFailed as exc:  # round 1 failed a check a DO's point shares could break
        failure = exc
    blamed, classical = blame(net, t, engine, layout, zk.n_public, slot_blocks, slot_points, tag)
    if not blamed:
        # Every DO's point shares are the MSMs of its wire shares, so this proof is exactly the
        # one the wire shares give: the failure is a server's. Same outcome as without point
        # shares: round 1's error (which may name the server), or the failing proof, which the
        # caller's verification refuses.
        if failure is not None:
            raise failure.cause
        return PointProof(proof, {}, False)
    # the retry's points are the servers' own MSMs of wire shares: a failure now is a server's,
    # handled as without point shares (round 1 names it, or the caller's verification refuses)
    proof = prove_party(net, t, zk, engine, w, randomness(f"{tag}/retry-blind"), f"{tag}/retry",
                        dealt(classical, by_dos=False))
    return PointProof(proof, blamed, False)
