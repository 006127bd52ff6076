"""Circuit parameters and the values derived from them (DESIGN.md, "Circuit parameters").

One frozen dataclass is the single source of truth: the circuit generator, the witness, the
binding (packing) and the Solidity side all read the derived numbers from here, so they cannot
drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from omniplus.prover.field import R  # the BN254 scalar field, defined once

# Packed words must stay below 2^253 < r so the packing is injective in the field.
WORD_CAPACITY_BITS = 253


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
    def norm_bits(self) -> int:
        """Bits of the norm slack B − Σg². Sound because of the check in `check()`."""
        return self.norm_bound.bit_length()

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
        """M = ⌈d / c⌉ packed words (and Horner steps)."""
        return -(-self.dims // self.per_word)

    @property
    def max_sq_norm(self) -> int:
        """Largest Σg² any in-range row can reach: d·2^(2k−2)."""
        return self.dims << (2 * self.bits - 2)

    # --- validation ----------------------------------------------------------------------
    def check(self) -> CircuitParams:
        """Raise ValueError unless every intermediate stays far from wrapping the field.

        - the norm slack of an over-norm row is r − (Σg² − B) ≥ r − d·2^(2k−2); it must not fit in
          norm_bits bits, so 2^norm_bits + d·2^(2k−2) < r;
        - Σg² itself (≤ d·2^(2k−2)) and B are below r, so B − Σg² is the integer it looks like;
        - aggregate + offset < N·2^k ≤ 2^w, and c·w ≤ 253, so each packed word is < 2^253 < r.
        """
        N, d, k, B = self.batch, self.dims, self.bits, self.norm_bound
        for name, v in (("batch", N), ("dims", d), ("bits", k)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(B, int) or isinstance(B, bool) or B < 0:
            raise ValueError(f"norm_bound must be a non-negative integer, got {B!r}")
        if k < 2:
            raise ValueError("bits must be at least 2 (one sign bit and one magnitude bit)")
        if self.word_bits > WORD_CAPACITY_BITS:
            raise ValueError(f"word width {self.word_bits} bits exceeds {WORD_CAPACITY_BITS}")
        if self.max_sq_norm >= R or B >= R:
            raise ValueError("squared norms would wrap the field: reduce dims or bits")
        if (1 << self.norm_bits) + self.max_sq_norm >= R:
            raise ValueError("norm slack bits would not be sound: reduce norm_bound, dims or bits")
        if (self.offset << 1) > (1 << self.word_bits):
            raise ValueError("aggregate plus offset does not fit in a word slot")
        if self.per_word * self.word_bits > WORD_CAPACITY_BITS:
            raise ValueError("packed word would reach 2^253")
        return self

    # --- (de)serialisation ---------------------------------------------------------------
    def derived(self) -> dict[str, int]:
        return {
            "norm_bits": self.norm_bits,
            "offset": self.offset,
            "word_bits": self.word_bits,
            "per_word": self.per_word,
            "n_words": self.n_words,
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
        if isinstance(data, str):
            data = json.loads(data)
        try:
            params = cls(
                batch=int(data["batch"]),
                dims=int(data["dims"]),
                bits=int(data["bits"]),
                norm_bound=int(data["norm_bound"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed circuit parameters: {exc}") from exc
        for key, value in params.derived().items():
            if key in data and int(data[key]) != value:
                raise ValueError(f"circuit parameter {key}={data[key]} disagrees with computed {value}")
        return params.check()

    def describe(self) -> str:
        return (
            f"N={self.batch} d={self.dims} k={self.bits} B={self.norm_bound} "
            f"(norm_bits={self.norm_bits}, w={self.word_bits}, c={self.per_word}, M={self.n_words})"
        )

    def constraint_budget(self) -> int:
        """The agreed budget: d·(k+3) per DO slot plus 3 per packed word."""
        return self.batch * self.dims * (self.bits + 3) + 3 * self.n_words

    def expected_constraints(self, optimize: int = 2) -> int:
        """What the generated circuit has: with --O2 the linear sums are substituted away."""
        per_do = self.dims * (self.bits + 1) + self.norm_bits
        if optimize < 2:
            per_do += self.dims + 1
        return self.batch * per_do + self.n_words
