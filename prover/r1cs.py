"""The circom .r1cs file: header (section 1), constraints (section 2), wire→label map (section 3).

Coefficients are stored plain (not Montgomery), little-endian. The servers' validity check and
witness debugging need the C matrix, which only this file has (the zkey drops it).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from omniplus.core.errors import SetupError
from omniplus.prover.binfile import read_binfile
from omniplus.prover.field import N8, R

MAGIC = b"r1cs"

LinComb = dict[int, int]  # wire index → coefficient (canonical, non-zero)


@dataclass
class R1CS:
    """A parsed constraint system; wire order is [1, outputs, public inputs, private inputs, ...]."""

    n_wires: int
    n_pub_out: int
    n_pub_in: int
    n_prv_in: int
    n_labels: int
    constraints: list[tuple[LinComb, LinComb, LinComb]] = field(default_factory=list)
    wire_to_label: list[int] | None = None

    @property
    def n_constraints(self) -> int:
        return len(self.constraints)

    @property
    def n_public(self) -> int:
        """Public signals (outputs + public inputs), not counting the constant wire."""
        return self.n_pub_out + self.n_pub_in


def read_r1cs(path: str | os.PathLike, *, with_map: bool = False) -> R1CS:
    """Parse an .r1cs; SetupError naming the file on any inconsistency."""
    bf = read_binfile(path, MAGIC, max_version=1, error=SetupError)
    head = bf.section(1)
    if len(head) < 4:
        raise bf.fail("header section too short")
    (n8,) = struct.unpack_from("<I", head, 0)
    if n8 != N8 or len(head) != 4 + n8 + 4 * 4 + 8 + 4:
        raise bf.fail(f"unexpected header (n8={n8}, {len(head)} bytes)")
    if int.from_bytes(head[4:4 + n8], "little") != R:
        raise bf.fail("constraints are not over the BN254 scalar field")
    n_wires, n_out, n_pub_in, n_prv_in, n_labels, n_constraints = struct.unpack_from(
        "<IIIIQI", head, 4 + n8)
    r1cs = R1CS(n_wires, n_out, n_pub_in, n_prv_in, n_labels)
    data = bytes(bf.section(2))
    pos = 0
    term = 4 + n8
    unpack = struct.unpack_from
    fb = int.from_bytes
    try:
        for k in range(n_constraints):
            lcs = []
            for _ in range(3):
                (n_terms,) = unpack("<I", data, pos)
                pos += 4
                end = pos + n_terms * term
                if end > len(data):
                    raise bf.fail(f"constraint {k} runs past the end of section 2")
                lc: LinComb = {}
                for p in range(pos, end, term):
                    (wire,) = unpack("<I", data, p)
                    coef = fb(data[p + 4:p + term], "little")
                    if wire >= n_wires or coef >= R:
                        raise bf.fail(f"constraint {k}: bad term (wire {wire}, coefficient ≥ r?)")
                    if coef:
                        lc[wire] = (lc.get(wire, 0) + coef) % R
                pos = end
                lcs.append(lc)
            r1cs.constraints.append((lcs[0], lcs[1], lcs[2]))
    except struct.error as exc:
        raise bf.fail("constraints section truncated") from exc
    if pos != len(data):
        raise bf.fail(f"{len(data) - pos} unread bytes at the end of the constraints section")
    if with_map:
        mp = bf.section(3, required=False)
        if mp is not None:
            if len(mp) != 8 * n_wires:
                raise bf.fail(f"wire map has {len(mp)} bytes, expected {8 * n_wires}")
            r1cs.wire_to_label = list(struct.unpack(f"<{n_wires}Q", mp))
    return r1cs


def eval_lc(lc: LinComb, witness: Sequence[int]) -> int:
    """⟨lc, w⟩ mod r."""
    return sum(c * witness[i] for i, c in lc.items()) % R


def first_unsatisfied(r1cs: R1CS, witness: Sequence[int]) -> int | None:
    """Index of the first constraint with ⟨A,w⟩⟨B,w⟩ ≠ ⟨C,w⟩, or None when all hold."""
    if len(witness) != r1cs.n_wires:
        raise SetupError(f"witness has {len(witness)} values, the circuit has {r1cs.n_wires} wires")
    if witness[0] % R != 1:
        raise SetupError(f"witness wire 0 is {witness[0]}, must be 1")
    for k, (a, b, c) in enumerate(r1cs.constraints):
        if eval_lc(a, witness) * eval_lc(b, witness) % R != eval_lc(c, witness):
            return k
    return None
