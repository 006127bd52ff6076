"""Checking a DO's update on its shares, without anyone reconstructing it (PROTOCOL.md step 2).

For each DO the servers open two masked field elements:
- consistency: Σ_l λ_l·w_l + m, with m a fresh joint random degree-t sharing. The opened points
  must lie on one degree-t polynomial (n > t+1 gives spare points); the value itself is uniform.
- validity: v = Σ_k ρ_k·(⟨A_k,w⟩⟨B_k,w⟩ − ⟨C_k,w⟩) + z, with z a joint degree-2t sharing of
  zero. The local products are degree-2t shares, so all 2t+1 servers take part, and z makes the
  opened points uniform given v. A valid block gives v = 0; an invalid one gives v ≠ 0 except
  with probability 1/r over the ρ_k.
λ and ρ come from a joint coin drawn after the shares are fixed. All DOs of a round are checked
with one exchange (the masks), one coin and one broadcast: rounds do not grow with the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omniplus.prover.field import R
from omniplus.prover.mpc.audit import committed_broadcast
from omniplus.prover.mpc.codec import decode_scalars, encode_scalars
from omniplus.prover.mpc.net import Net, NetError, need_parties
from omniplus.prover.mpc.opening import decode_from, interpolate_at_zero
from omniplus.prover.mpc.randomness import Rng, expand_coin, joint_coin, joint_sharings
from omniplus.prover.shamir import degree_ok

# A constraint over a DO block: (A, B, C) as {block index: coefficient}; index -1 is the constant 1.
Constraint = tuple[dict[int, int], dict[int, int], dict[int, int]]

REASON_INCONSISTENT = "shares are inconsistent: they do not lie on one degree-t polynomial"
REASON_INVALID = "update violates the circuit: a coordinate is out of range or the norm exceeds the bound"


@dataclass(frozen=True)
class BlockCircuit:
    """The constraints of one DO slot, in block coordinates (the same for every slot)."""

    size: int
    constraints: tuple[Constraint, ...]


def _dot(lc: dict[int, int], w: Sequence[int]) -> int:
    return sum(coef * (1 if idx < 0 else w[idx]) for idx, coef in lc.items())


def residual(circuit: BlockCircuit, w: Sequence[int], rhos: Sequence[int]) -> int:
    """Σ_k ρ_k (a_k b_k − c_k) on one party's shares (a degree-2t share), or on clear values."""
    acc = 0
    for rho, (a, b, c) in zip(rhos, circuit.constraints, strict=True):
        acc += rho * ((_dot(a, w) * _dot(b, w) - _dot(c, w)) % R)
    return acc % R


def validate_blocks(net: Net, t: int, circuit: BlockCircuit, blocks: Mapping[str, Sequence[int]],
                    rng: Rng, round_id: str) -> dict[str, str | None]:
    """Check every DO's block of shares; {DO id: None if accepted, else the reason}.

    `blocks` must hold the same DO ids on every party (the coordinator fixes the list)."""
    need_parties(net, t, "validity checks")
    ids = sorted(blocks)
    for do in ids:
        if len(blocks[do]) != circuit.size:
            raise NetError(f"DO {do}: block has {len(blocks[do])} wires, expected {circuit.size}")
    masks = joint_sharings(net, f"{round_id}/mask", len(ids), t, rng)
    zeros = joint_sharings(net, f"{round_id}/zero", len(ids), 2 * t, rng, zero=True)
    bind = hashlib.sha256("\n".join(ids).encode()).digest()
    seed = joint_coin(net, f"{round_id}/coin", rng, bind)
    lambdas = expand_coin(seed, circuit.size, "consistency")
    rhos = expand_coin(seed, len(circuit.constraints), "validity")

    local: list[int] = []
    for i, do in enumerate(ids):
        w = blocks[do]
        local.append((sum(lam * x for lam, x in zip(lambdas, w, strict=True)) + masks[i]) % R)
        local.append((residual(circuit, w, rhos) + zeros[i]) % R)
    received = committed_broadcast(net, f"{round_id}/open", encode_scalars(local))
    points = {
        j: decode_from(j, decode_scalars, p, 2 * len(ids), what=f"validation from party {j}")
        for j, p in received.items()
    }

    verdicts: dict[str, str | None] = {}
    for i, do in enumerate(ids):
        cons = {j: pts[2 * i] for j, pts in points.items()}
        valid = {j: pts[2 * i + 1] for j, pts in points.items()}
        if not degree_ok(cons, t):
            verdicts[do] = REASON_INCONSISTENT
        elif not degree_ok(valid, 2 * t) or interpolate_at_zero({j: [v] for j, v in valid.items()}, 2 * t)[0]:
            verdicts[do] = REASON_INVALID
        else:
            verdicts[do] = None
    return verdicts
