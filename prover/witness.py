"""The circuit's witness computed in Python, by signal name, mapped to wires through the .sym.

Why not only circom's wasm: a DO computes its own block (its coordinates, bits, squares, norm
slack bits) before sharing it, and the servers need to know which wire is which; the wasm only
produces the whole witness of the whole batch. Signals removed by circom's simplification have
wire −1 in the .sym and are skipped. Tests check equality with the wasm witness.

Signal names (circuits/gradient_validity.circom): main.ctx, main.W[m], main.g[i][j],
main.rbits[i][j][b], main.sq[i][j], main.nbits[i][b], main.t[i][j] (score products, batch part),
main.S[m] (packed scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from omniplus.circuits.build import read_sym, slot_of_signal
from omniplus.circuits.params import CircuitParams, R
from omniplus.core.errors import InputError
from omniplus.prover.binding import aggregate, pack_aggregate, pack_scores
from omniplus.prover.contribution import scores


class CircuitFiles(Protocol):
    """Anything with the parameters and the .sym path: a SetupDir or a circuits.build.CompiledCircuit."""

    params: CircuitParams
    sym: Path


@lru_cache(maxsize=16)
def _sym_cached(path: str, mtime_ns: int) -> tuple[dict[str, int], int]:
    names = read_sym(Path(path))
    return names, max(names.values()) + 1


def wire_map(setup: CircuitFiles) -> tuple[dict[str, int], int]:
    """(signal name → wire, number of wires) for a compiled circuit."""
    p = Path(setup.sym)
    return _sym_cached(str(p), p.stat().st_mtime_ns)


def _pad_rows(params: CircuitParams, q_rows: Sequence[Sequence[int]]) -> list[list[int]]:
    if len(q_rows) > params.batch:
        raise InputError(f"{len(q_rows)} rows for {params.batch} DO slots")
    rows = [[int(x) for x in r] for r in q_rows]
    for i, r in enumerate(rows):
        if len(r) != params.dims:
            raise InputError(f"DO {i}: {len(r)} coordinates, expected {params.dims}")
    return rows + [[0] * params.dims for _ in range(params.batch - len(rows))]


def check_row(params: CircuitParams, slot: int, q_row: Sequence[int]) -> None:
    """InputError unless the row passes the circuit's range and norm checks."""
    lo, hi = -(1 << (params.bits - 1)), (1 << (params.bits - 1)) - 1
    for j, q in enumerate(q_row):
        if not lo <= q <= hi:
            raise InputError(f"DO {slot}, coordinate {j}: {q} is outside [{lo}, {hi}]")
    sq = sum(q * q for q in q_row)
    if sq > params.norm_bound:
        raise InputError(f"DO {slot}: squared norm {sq} exceeds the bound {params.norm_bound}")


def row_signals(params: CircuitParams, slot: int, q_row: Sequence[int]) -> dict[str, int]:
    """Every signal of one DO slot, as the circuit's `<--` hints compute them (field elements).

    For a row that fails the checks the values are still produced (the bits of the field
    representative), so a test can show the R1CS rejects them.
    """
    k, nb = params.bits, params.norm_bits
    out: dict[str, int] = {}
    sumsq = 0
    for j, q in enumerate(q_row):
        g = q % R
        out[f"main.g[{slot}][{j}]"] = g
        shifted = (g + (1 << (k - 1))) % R
        for b in range(k):
            out[f"main.rbits[{slot}][{j}][{b}]"] = (shifted >> b) & 1
        sq = g * g % R
        out[f"main.sq[{slot}][{j}]"] = sq
        sumsq += sq
    slack = (params.effective_norm_bound - sumsq) % R
    for b in range(nb):
        out[f"main.nbits[{slot}][{b}]"] = (slack >> b) & 1
    return out


def batch_signals(params: CircuitParams, public: Sequence[int]) -> dict[str, int]:
    """The public wires: ctx, the packed words W[m], the packed scores S[m]
    (public = [ctx, W_0, …, W_{M−1}, S_0, …, S_{K−1}])."""
    if len(public) != params.n_public:
        raise InputError(f"{len(public)} public inputs, the circuit has {params.n_public} "
                         f"(ctx, M={params.n_words} words, K={params.n_score_words} score words)")
    m_words = params.n_words
    out = {"main.ctx": int(public[0]) % R}
    for m, w in enumerate(public[1:1 + m_words]):
        out[f"main.W[{m}]"] = int(w) % R
    for m, s in enumerate(public[1 + m_words:]):
        out[f"main.S[{m}]"] = int(s) % R
    return out


def score_signals(params: CircuitParams, rows: Sequence[Sequence[int]]) -> dict[str, int]:
    """t[i][j] = g[i][j]·a_j for the padded rows (a = the column sums): the score products."""
    agg = aggregate(rows)
    return {f"main.t[{i}][{j}]": (int(g) * a) % R for i, r in enumerate(rows) for j, (g, a) in
            enumerate(zip(r, agg, strict=True))}


def _assemble(setup: CircuitFiles, values: dict[str, int]) -> list[int]:
    names, n_wires = wire_map(setup)
    witness: list[int | None] = [None] * n_wires
    witness[0] = 1
    for name, wire in names.items():
        if wire < 0:
            continue
        if name not in values:
            raise InputError(f"no value for signal {name}: the .sym does not match this circuit version")
        witness[wire] = values[name]
    missing = [i for i, v in enumerate(witness) if v is None]
    if missing:
        raise InputError(f"wires {missing[:5]} have no signal in the .sym")
    return witness  # type: ignore[return-value]


def full_witness(setup: CircuitFiles, q_rows: Sequence[Sequence[int]], public: Sequence[int], *,
                 check: bool = True) -> list[int]:
    """The whole witness (wire 0 = 1); public = [ctx, W_0..W_{M−1}, S_0..S_{K−1}]. With check,
    invalid rows, words that are not the packed aggregate of the rows, or score words that are not
    their packed scores raise InputError."""
    params = setup.params
    rows = _pad_rows(params, q_rows)
    if check:
        for i, r in enumerate(rows):
            check_row(params, i, r)
        m_words = params.n_words
        if [int(w) % R for w in public[1:1 + m_words]] != pack_aggregate(params, aggregate(rows)):
            raise InputError("the public words are not the packed aggregate of these rows")
        if [int(s) % R for s in public[1 + m_words:]] != pack_scores(params, scores(rows)):
            raise InputError("the public score words are not the packed scores of these rows")
    values: dict[str, int] = {}
    for i, r in enumerate(rows):
        values.update(row_signals(params, i, r))
    values.update(batch_signals(params, public))
    values.update(score_signals(params, rows))
    return _assemble(setup, values)


def do_wires(setup: CircuitFiles, slot: int) -> list[int]:
    """Sorted wire indices of one DO slot's block (what the DO shares with the servers)."""
    names, _ = wire_map(setup)
    return sorted(w for n, w in names.items() if w > 0 and slot_of_signal(n) == slot)


def batch_wires(setup: CircuitFiles) -> list[int]:
    """Wires outside every DO block: the public inputs ctx, W and S, and the score products t."""
    names, _ = wire_map(setup)
    return sorted(w for n, w in names.items() if w > 0 and slot_of_signal(n) is None)


def do_block(setup: CircuitFiles, slot: int, q_row: Sequence[int], *, check: bool = True
             ) -> dict[int, int]:
    """Wire index → value for one DO slot: what a DO computes in the clear and Shamir-shares."""
    params = setup.params
    if not 0 <= slot < params.batch:
        raise InputError(f"slot {slot} is outside [0, {params.batch})")
    row = _pad_rows(params, [q_row])[0]
    if check:
        check_row(params, slot, row)
    names, _ = wire_map(setup)
    values = row_signals(params, slot, row)
    return {names[n]: v for n, v in values.items() if names.get(n, -1) > 0}


def circuit_inputs(params: CircuitParams, q_rows: Sequence[Sequence[int]], public: Sequence[int]) -> dict:
    """Input JSON for circom's wasm witness calculator (decimal strings; negatives as field elements)."""
    rows = _pad_rows(params, q_rows)
    if len(public) != params.n_public:
        raise InputError(f"{len(public)} public inputs, the circuit has {params.n_public}")
    m_words = params.n_words
    return {
        "ctx": str(int(public[0]) % R),
        "W": [str(int(w) % R) for w in public[1:1 + m_words]],
        "S": [str(int(s) % R) for s in public[1 + m_words:]],
        "g": [[str(q % R) for q in r] for r in rows],
    }
