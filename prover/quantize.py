"""Quantisation of float gradients to the circuit's k-bit signed fixed point (the only place).

A DO's update must pass the circuit's range and norm checks, or no witness exists and the whole
batch's proof fails late and expensively; so every problem is caught here, with the DO row and
coordinate named, before any share is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omniplus.circuits.params import CircuitParams
from omniplus.core.errors import InputError
from omniplus.core.jsonfile import read_json

MAX_SCALE_BITS = 64


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


MAX_ROWS = 1 << 16  # far above any batch size (params.MAX_BATCH)
MAX_VALUES = 1 << 24  # d·N cap for one file (params.MAX_DIMS is 2^19)


def load_gradients(path: str | Path) -> tuple[int, list[list[float]]]:
    """Read {"scale_bits": f, "gradients": [[float, ...], ...]}; InputError naming the file otherwise.

    Every value must be a finite JSON number (no strings, booleans, nested lists, NaN/Infinity,
    integers beyond 200 digits); row lengths and ranges are checked by quantize()."""
    path = Path(path)
    doc = read_json(path, InputError, what="gradients file", nonfinite=True)  # NaN: reported by position
    if not isinstance(doc, dict) or "scale_bits" not in doc or "gradients" not in doc:
        raise InputError(f'{path}: expected an object {{"scale_bits": f, "gradients": [[...], ...]}}')
    f = doc["scale_bits"]
    if not isinstance(f, int) or isinstance(f, bool) or not 0 <= f <= MAX_SCALE_BITS:
        raise InputError(f"{path}: scale_bits must be an integer in [0, {MAX_SCALE_BITS}], got {_show(f)}")
    rows = doc["gradients"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise InputError(f"{path}: gradients must be a list of rows (lists of numbers)")
    if len(rows) > MAX_ROWS or sum(len(r) for r in rows) > MAX_VALUES:
        raise InputError(f"{path}: {len(rows)} rows / {sum(len(r) for r in rows)} values: too many")
    for i, row in enumerate(rows):
        for j, x in enumerate(row):
            if not _is_number(x):
                raise InputError(f"{path}: DO {i}, coordinate {j}: {_show(x)} is not a number")
            if not _finite(x):
                raise InputError(f"{path}: DO {i}, coordinate {j}: {_show(x)} is not a finite float")
    return f, rows


def _finite(x: int | float) -> bool:
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an int beyond the float range
        return False


def _show(x: Any) -> str:
    """A value for a one-line message, however large."""
    if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > 64:
        return f"an integer of {x.bit_length()} bits"
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def quantize(rows: Sequence[Sequence[float]], scale_bits: int, params: CircuitParams) -> list[list[int]]:
    """q = round(x·2^f) (half to even), checked against range and norm; padded to N zero rows."""
    N, d, k, B = params.batch, params.dims, params.bits, params.norm_bound
    lo, hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
    if not isinstance(scale_bits, int) or isinstance(scale_bits, bool) \
            or not 0 <= scale_bits <= MAX_SCALE_BITS:
        raise InputError(f"scale_bits must be an integer in [0, {MAX_SCALE_BITS}], got {scale_bits!r}")
    if len(rows) > N:
        raise InputError(f"{len(rows)} gradient rows, but the circuit has only {N} DO slots")
    scale = float(1 << scale_bits)
    out: list[list[int]] = []
    for i, row in enumerate(rows):
        if isinstance(row, str | bytes) or not isinstance(row, Sequence):
            raise InputError(f"DO {i}: expected a list of {d} numbers, got {type(row).__name__}")
        if len(row) != d:
            raise InputError(f"DO {i}: {len(row)} coordinates, expected {d}")
        q_row: list[int] = []
        for j, x in enumerate(row):
            if not _is_number(x):
                raise InputError(f"DO {i}, coordinate {j}: {_show(x)} is not a number")
            if not _finite(x):
                raise InputError(f"DO {i}, coordinate {j}: {_show(x)} is not finite")
            scaled = float(x) * scale
            if not math.isfinite(scaled):
                raise InputError(f"DO {i}, coordinate {j}: {_show(x)} overflows at scale 2^{scale_bits}")
            q = round(scaled)  # Python's round is half-to-even, like numpy.round
            if not lo <= q <= hi:
                raise InputError(
                    f"DO {i}, coordinate {j}: {_show(x)} quantises to {_show(q)}, outside [{lo}, {hi}]"
                )
            q_row.append(q)
        sq = sum(q * q for q in q_row)
        if sq > B:
            raise InputError(
                f"DO {i}: squared norm {sq} of the quantised update exceeds the bound {B} "
                f"(scale 2^{scale_bits}); clip the update to L2 norm {math.sqrt(B) / scale:.6g}"
            )
        out.append(q_row)
    out += [[0] * d for _ in range(N - len(out))]
    return out


def stochastic_round(values: Sequence[float], seed: int | None = None) -> list[int]:
    """Round each x to ⌊x⌋ or ⌊x⌋+1 with P(⌊x⌋+1) = x − ⌊x⌋: unbiased (E[q] = x), |q − x| < 1.

    For DOs' ML updates (ml/updates.py): a sum of many DOs' updates then carries no systematic
    rounding bias, unlike round-to-nearest on small values. Range and norm are the caller's
    business (ml.updates.QuantSpec sizes B so every clipped update passes)."""
    import random

    rng = random.Random(seed)
    out: list[int] = []
    for j, x in enumerate(values):
        xf = float(x)
        if not math.isfinite(xf):
            raise InputError(f"coordinate {j}: {x!r} is not finite")
        lo = math.floor(xf)
        out.append(lo + (1 if rng.random() < xf - lo else 0))
    return out
