"""Where each DO's block lives in the batch witness, and which constraints are its own.

A DO computes its block before it knows its batch slot, so blocks travel in a slot-independent
"block order": the slot's signals sorted by (kind, indices) with the slot index removed — e.g.
g[j], then rbits[j][b], sq[j], nbits[b]. `BatchLayout` maps that order to each slot's wire
indices (from circom's .sym file) and extracts the slot's constraints from the .r1cs in block
coordinates; `load_layout` checks that every slot has exactly the same constraints, so one
`BlockCircuit` validates any slot.

Outside the DO blocks are the public inputs ctx, W[m] (the opened, packed aggregate) and S[m]
(the opened, packed scores), which every server sets in the clear, and the private score products
t[i][j] = g[i][j]·a_j, whose shares each server computes from its g shares once a is open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from omniplus.circuits.build import read_sym
from omniplus.core.errors import SetupError
from omniplus.prover.field import R
from omniplus.prover.mpc.validation import BlockCircuit, Constraint
from omniplus.prover.r1cs import R1CS, read_r1cs

KIND_ORDER = ("g", "rbits", "sq", "nbits")
_NAME = re.compile(r"^main\.(\w+)((?:\[\d+\])*)$")


@dataclass(frozen=True)
class BatchLayout:
    n_slots: int
    block_names: tuple[str, ...]  # slot-relative names, in block order
    slot_wires: tuple[tuple[int, ...], ...]  # per slot: wire indices in block order
    public_wires: tuple[int, ...]  # ctx, W[0..M-1], S[0..K-1] (wires 1..M+K+1)
    n_wires: int
    block: BlockCircuit
    t_wires: tuple[tuple[int, ...], ...] = ()  # per slot: the wires of t[slot][0..d-1]

    @property
    def block_size(self) -> int:
        return len(self.block_names)


def _split(name: str) -> tuple[str, list[int]] | None:
    m = _NAME.match(name)
    if not m:
        return None
    return m.group(1), [int(x) for x in re.findall(r"\d+", m.group(2))]


def build_layout(r1cs: R1CS, sym: dict[str, int], n_slots: int) -> BatchLayout:
    """Derive the layout from the compiled circuit (see module doc)."""
    slots: list[dict[tuple, int]] = [{} for _ in range(n_slots)]
    public: dict[tuple, int] = {}
    t_wire: dict[tuple[int, int], int] = {}
    for name, wire in sym.items():
        parsed = _split(name)
        if parsed is None or wire < 0:
            continue
        kind, idx = parsed
        if kind in KIND_ORDER:
            slots[idx[0]][(KIND_ORDER.index(kind), *idx[1:])] = wire
        elif kind == "ctx":
            public[(0,)] = wire
        elif kind == "W":
            public[(1, idx[0])] = wire
        elif kind == "S":
            public[(2, idx[0])] = wire
        elif kind == "t":
            t_wire[(idx[0], idx[1])] = wire
    keys = sorted(slots[0])
    for s, slot in enumerate(slots):
        if sorted(slot) != keys:
            raise SetupError(f"slot {s} keeps different signals than slot 0 after simplification")
    names = tuple(f"{KIND_ORDER[k[0]]}" + "".join(f"[{i}]" for i in k[1:]) for k in keys)
    slot_wires = tuple(tuple(slot[k] for k in keys) for slot in slots)
    where = {w: (s, i) for s, ws in enumerate(slot_wires) for i, w in enumerate(ws)}

    per_slot: list[list[Constraint]] = [[] for _ in range(n_slots)]
    for a, b, c in r1cs.constraints:
        wires = {w for lc in (a, b, c) for w in lc if w != 0}
        owners = {where[w][0] if w in where else None for w in wires}
        if len(owners) != 1 or None in owners:
            continue  # batch part (touches ctx, W, S, t or several slots)
        (s,) = owners

        def local(lc: dict[int, int]) -> dict[int, int]:
            return {(-1 if w == 0 else where[w][1]): coef % R for w, coef in lc.items()}

        per_slot[s].append((local(a), local(b), local(c)))
    for s in range(1, n_slots):
        if per_slot[s] != per_slot[0]:
            raise SetupError(f"slot {s} has different constraints than slot 0: cannot validate blocks alike")
    return BatchLayout(
        n_slots=n_slots,
        block_names=names,
        slot_wires=slot_wires,
        public_wires=tuple(public[k] for k in sorted(public)),
        n_wires=r1cs.n_wires,
        block=BlockCircuit(size=len(keys), constraints=tuple(per_slot[0])),
        t_wires=tuple(tuple(t_wire[(s, j)] for j in range(len(t_wire) // n_slots)) for s in range(n_slots)),
    )


def load_layout(setup) -> BatchLayout:
    """The layout of a setup directory's circuit."""
    r1cs = read_r1cs(setup.path / "circuit.r1cs")
    sym = read_sym(setup.path / "circuit.sym")
    return build_layout(r1cs, sym, setup.params.batch)
