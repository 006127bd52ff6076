"""Circuit parameters and the values derived from them (DESIGN.md, "Circuit parameters").

One frozen dataclass is the single source of truth: the circuit generator, the witness, the
binding (packing) and the Solidity side all read the derived numbers from here, so they cannot
drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from omniplus.core.errors import InputError
from omniplus.prover.field import R  # the BN254 scalar field, defined once

# Packed words must stay below 2^253 < r so the packing is injective in the field.
WORD_CAPACITY_BITS = 253

# --- The one range for every parameter (RollupMarket's constructor refuses the same) ----------
MIN_BITS, MAX_BITS = 2, 64  # k: a sign and a magnitude bit .. RollupMarket's `k out of range`
MIN_BATCH, MAX_BATCH = 1, 512  # N: submitBatch pays N payees in one transaction (≈25–50k gas
#   each), so 512 stays well inside a 30M-gas block
MIN_DIMS, MAX_DIMS = 1, 1 << 19  # d: 524,288; in practice MAX_CONSTRAINTS binds first unless N·k is small
# B: any integer in [0, r); B ≥ d·2^(2k−2) admits every in-range row and is clamped to that.
# Practical: circom2 (WebAssembly) and the setup must handle the circuit. The largest powers of tau
# made here is power 22 (prover/ptau.py MAX_DEV_POWER), and the domain must exceed constraints +
# public inputs, so the circuit may have at most 2^21 constraints (the N·d·(k+1) term dominates).
MAX_CONSTRAINTS = 1 << 21


class ParamsError(InputError, ValueError):
    """Circuit parameters outside the supported range; the message names the parameter.

    Also a ValueError, so older `except ValueError` callers keep working."""


def _short(v: Any) -> str:
    """A value for an error message, never thousands of characters long."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"{'-' if v < 0 else ''}2^{abs(v).bit_length() - 1}+ ({abs(v).bit_length()} bits)"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def ceil_log2(n: int) -> int:
    """Smallest e with 2^e >= n (0 for n <= 1)."""
    return max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class CircuitParams:
    """The statement: N DO slots of d coordinates, k-bit signed, squared L2 norm at most B."""

    batch: int  # N
    dims: int  # d
    bits: int  # k
    norm_bound: int  # B

    # --- derived -------------------------------------------------------------------------
    @property
    def effective_norm_bound(self) -> int:
        """B' = min(B, d·2^(2k−2)): the bound the circuit enforces.

        Every row that passes the range checks has Σg² ≤ d·2^(2k−2), so "Σg² ≤ B" and "Σg² ≤ B'"
        hold for exactly the same rows; but the slack B − Σg² must be representable in norm_bits
        bits for every valid row, so with norm bits capped at bitlen(d·2^(2k−2)) the circuit must
        use B' (a huge B would otherwise need up to 253 slack bits that buy nothing)."""
        return min(self.norm_bound, self.max_sq_norm)

    @property
    def norm_bits(self) -> int:
        """Bits of the norm slack B' − Σg², at most bitlen(d·2^(2k−2)). Sound by `check()`."""
        return self.effective_norm_bound.bit_length()

    @property
    def offset(self) -> int:
        """Shift making every aggregate coordinate non-negative: N·2^(k−1)."""
        return self.batch << (self.bits - 1)

    @property
    def word_bits(self) -> int:
        """w = k + ceil_log2(N) + 1: an aggregate coordinate plus offset fits in w bits."""
        return self.bits + ceil_log2(self.batch) + 1

    @property
    def per_word(self) -> int:
        """c = ⌊253 / w⌋ aggregate coordinates per packed field element."""
        return WORD_CAPACITY_BITS // self.word_bits

    @property
    def n_words(self) -> int:
        """M = ⌈d / c⌉ packed words (each a public input, after ctx)."""
        return -(-self.dims // self.per_word)

    @property
    def score_offset(self) -> int:
        """S_OFF = (N−1)·B': |s_i| ≤ S_OFF for rows with Σg² ≤ B' (prover/contribution.score_bound)."""
        return (self.batch - 1) * self.effective_norm_bound

    @property
    def score_bits(self) -> int:
        """sw = bitlen(2·S_OFF) + 1: a score plus S_OFF lies in [0, 2·S_OFF] and fits in sw bits."""
        return (2 * self.score_offset).bit_length() + 1

    @property
    def scores_per_word(self) -> int:
        """cs = ⌊253 / sw⌋ scores per packed public word."""
        return WORD_CAPACITY_BITS // self.score_bits

    @property
    def n_score_words(self) -> int:
        """K = ⌈N / cs⌉ packed score words (public inputs after the M aggregate words)."""
        return -(-self.batch // self.scores_per_word)

    @property
    def n_public(self) -> int:
        """Public inputs: ctx, M aggregate words, K score words."""
        return 1 + self.n_words + self.n_score_words

    @property
    def max_sq_norm(self) -> int:
        """Largest Σg² any in-range row can reach: d·2^(2k−2)."""
        return self.dims << (2 * self.bits - 2)

    # --- validation ----------------------------------------------------------------------
    def check(self) -> CircuitParams:
        """Raise ParamsError (naming the parameter) unless the parameters are in range and sound.

        Range (stated once, above): MIN_BATCH ≤ N ≤ MAX_BATCH, MIN_DIMS ≤ d ≤ MAX_DIMS,
        MIN_BITS ≤ k ≤ MAX_BITS, 0 ≤ B < r — what RollupMarket's constructor accepts — and at most
        MAX_CONSTRAINTS constraints. Checked before anything expensive (no big arithmetic on d).
        Soundness (the circuit enforces B' = min(B, d·2^(2k−2)), see effective_norm_bound):
        - the norm slack of an over-norm row is r − (Σg² − B') ≥ r − d·2^(2k−2); it must not fit in
          norm_bits bits, so 2^norm_bits + d·2^(2k−2) < r;
        - Σg² itself (≤ d·2^(2k−2)) and B' are below r, so B' − Σg² is the integer it looks like;
        - aggregate + offset < N·2^k ≤ 2^w, and c·w ≤ 253, so each packed word is < 2^253 < r.
        """
        N, d, k, B = self.batch, self.dims, self.bits, self.norm_bound
        for name, sym, v, lo, hi in (("batch", "N", N, MIN_BATCH, MAX_BATCH), ("dims", "d", d, MIN_DIMS, MAX_DIMS),
                                     ("bits", "k", k, MIN_BITS, MAX_BITS)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ParamsError(f"{name} ({sym}) must be an integer, got {type(v).__name__}")
            if not lo <= v <= hi:
                raise ParamsError(f"{name} ({sym}) = {_short(v)} is outside [{lo}, {hi}]")
        if not isinstance(B, int) or isinstance(B, bool):
            raise ParamsError(f"norm_bound (B) must be an integer, got {type(B).__name__}")
        if not 0 <= B < R:
            raise ParamsError(f"norm_bound (B) = {_short(B)} is outside [0, r) (r ≈ 2^253.6); any B ≥ "
                              f"d·2^(2k−2) = {self.max_sq_norm} already admits every in-range row")
        n = self.expected_constraints()
        if n > MAX_CONSTRAINTS:
            raise ParamsError(
                f"the circuit for N={N}, d={d}, k={k} would have {n} constraints, above the limit "
                f"{MAX_CONSTRAINTS} (≈ N·d·(k+1)): reduce dims (d), batch (N) or bits (k)")
        # With the ranges above these cannot fail (k + log2 N + 1 ≤ 74 bits, d·2^(2k−2) < 2^146);
        # kept so a change of the ranges cannot silently break soundness.
        if self.word_bits > WORD_CAPACITY_BITS or self.per_word * self.word_bits > WORD_CAPACITY_BITS:
            raise ParamsError(f"word width {self.word_bits} bits (from bits and batch) exceeds {WORD_CAPACITY_BITS}")
        if self.max_sq_norm >= R or (1 << self.norm_bits) + self.max_sq_norm >= R:
            raise ParamsError("squared norms or the norm slack would wrap the field: reduce dims (d) or bits (k)")
        if (self.offset << 1) > (1 << self.word_bits):
            raise ParamsError("aggregate plus offset does not fit in a word slot")
        # scores: s + S_OFF in [0, 2·S_OFF] < 2^sw, cs·sw ≤ 253 < log2 r, and s itself is far
        # below r/2 (S_OFF < 2^sw ≤ 2^253), so the packed score words are injective in the field
        if (2 * self.score_offset) >> self.score_bits or self.score_bits > WORD_CAPACITY_BITS \
                or self.scores_per_word * self.score_bits > WORD_CAPACITY_BITS:
            raise ParamsError(f"score width {self.score_bits} bits (from batch and norm_bound) exceeds "
                              f"{WORD_CAPACITY_BITS}")
        return self

    # --- (de)serialisation ---------------------------------------------------------------
    def derived(self) -> dict[str, int]:
        return {
            "norm_bits": self.norm_bits,
            "offset": self.offset,
            "word_bits": self.word_bits,
            "per_word": self.per_word,
            "n_words": self.n_words,
            "score_offset": self.score_offset,
            "score_bits": self.score_bits,
            "scores_per_word": self.scores_per_word,
            "n_score_words": self.n_score_words,
        }

    def to_json(self) -> dict[str, Any]:
        """Inputs plus derived values (the derived ones are informative; from_json recomputes)."""
        return {
            "batch": self.batch,
            "dims": self.dims,
            "bits": self.bits,
            "norm_bound": str(self.norm_bound),
            **self.derived(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> CircuitParams:
        """Inverse of to_json; rejects documents whose derived values disagree (a stale file)."""
        try:
            if isinstance(data, str):
                data = json.loads(data)
            if not isinstance(data, dict):
                raise TypeError(f"expected an object, got {type(data).__name__}")
            fields = {}
            for key in ("batch", "dims", "bits", "norm_bound"):
                v = data[key]
                if isinstance(v, str) and not (v.isascii() and v.lstrip("-").isdigit() and len(v) <= 100):
                    raise ValueError(f"{key} is not a decimal integer of at most 100 digits")
                if isinstance(v, bool) or not isinstance(v, int | str) or isinstance(v, int) and v.bit_length() > 512:
                    raise ValueError(f"{key} must be an integer, got {_short(v)}")
                fields[key] = int(v)
            params = cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ParamsError(f"malformed circuit parameters: {exc}") from exc
        params.check()
        for key, value in params.derived().items():
            if key in data and data[key] != value:
                raise ParamsError(f"circuit parameter {key}={_short(data[key])} disagrees with computed {value}")
        return params

    def describe(self) -> str:
        return (
            f"N={self.batch} d={self.dims} k={self.bits} B={self.norm_bound} "
            f"(norm_bits={self.norm_bits}, w={self.word_bits}, c={self.per_word}, M={self.n_words}, "
            f"sw={self.score_bits}, K={self.n_score_words})"
        )

    def constraint_budget(self) -> int:
        """The agreed budget: d·(k+3) per DO slot plus 3 per packed word (aggregate and scores)."""
        return self.batch * self.dims * (self.bits + 3) + 3 * (self.n_words + self.n_score_words)

    def expected_constraints(self, optimize: int = 2) -> int:
        """What the generated circuit has: with --O2 the linear sums are substituted away."""
        per_do = self.dims * (self.bits + 2) + self.norm_bits  # k bits, the square, the score product t
        if optimize < 2:
            per_do += self.dims + 1
        return self.batch * per_do + self.n_words + self.n_score_words
