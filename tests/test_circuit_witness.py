"""The Python witness equals circom's wasm witness and satisfies the R1CS; invalid rows cannot."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

from circuits.build import check_blocks, compile_circuit
from circuits.params import CircuitParams, R
from omniplus import paths
from omniplus.errors import InputError, ToolError
from omniplus.tooling import run_tool
from prover.binding import BindingContext, public_inputs
from prover.witness import (
    batch_wires,
    circuit_inputs,
    do_block,
    do_wires,
    full_witness,
)

SMALL = CircuitParams(batch=2, dims=8, bits=8, norm_bound=40000)
# k=24 makes w=26 and c=9, so d=20 needs M=3 words: exercises the Horner chain.
MULTIWORD = CircuitParams(batch=2, dims=20, bits=24, norm_bound=1 << 50)


def read_wtns_local(path: Path) -> list[int]:
    """Section 2 of a .wtns: n8-byte little-endian plain values (fallback if prover/wtns.py is absent)."""
    try:
        from prover.wtns import read_wtns

        return read_wtns(path)
    except ImportError:
        pass
    data = path.read_bytes()
    off, sections = 12, {}
    for _ in range(struct.unpack_from("<I", data, 8)[0]):
        stype, size = struct.unpack_from("<IQ", data, off)
        sections[stype] = data[off + 12: off + 12 + size]
        off += 12 + size
    n8 = struct.unpack_from("<I", sections[1], 0)[0]
    body = sections[2]
    return [int.from_bytes(body[i: i + n8], "little") for i in range(0, len(body), n8)]


def r1cs_first_unsatisfied(r1cs_path: Path, witness: list[int]) -> int | None:
    """Index of the first violated constraint (prover/r1cs.py if present, else a local parser)."""
    try:
        from prover.r1cs import first_unsatisfied, read_r1cs

        return first_unsatisfied(read_r1cs(r1cs_path), witness)
    except ImportError:
        pass
    data = r1cs_path.read_bytes()
    off, sections = 12, {}
    for _ in range(struct.unpack_from("<I", data, 8)[0]):
        stype, size = struct.unpack_from("<IQ", data, off)
        sections[stype] = (off + 12, size)
        off += 12 + size
    h = sections[1][0]
    n8 = struct.unpack_from("<I", data, h)[0]
    n_constraints = struct.unpack_from("<I", data, h + 4 + n8 + 16 + 8)[0]
    o = sections[2][0]
    for idx in range(n_constraints):
        vals = []
        for _ in range(3):
            acc = 0
            for _t in range(struct.unpack_from("<I", data, o)[0]):
                wire = struct.unpack_from("<I", data, o + 4)[0]
                coef = int.from_bytes(data[o + 8: o + 8 + n8], "little")
                acc += coef * witness[wire]
                o += 4 + n8
            o += 4
            vals.append(acc % R)
        if vals[0] * vals[1] % R != vals[2]:
            return idx
    return None


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return compile_circuit(SMALL, tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def multiword(tmp_path_factory):
    return compile_circuit(MULTIWORD, tmp_path_factory.mktemp("multi"))


def wasm_witness(compiled, inputs: dict, tmp: Path) -> list[int]:
    (tmp / "input.json").write_text(json.dumps(inputs))
    run_tool([paths.node_tool("snarkjs"), "wtns", "calculate", compiled.wasm, tmp / "input.json",
              tmp / "out.wtns"], what="snarkjs wtns calculate", timeout=120)
    return read_wtns_local(tmp / "out.wtns")


def random_rows(params: CircuitParams, rng: random.Random, n: int) -> list[list[int]]:
    lo, hi = -(1 << (params.bits - 1)), (1 << (params.bits - 1)) - 1
    rows = []
    for _ in range(n):
        while True:
            row = [rng.randint(lo, hi) for _ in range(params.dims)]
            if sum(x * x for x in row) <= params.norm_bound:
                break
            row = [x // 4 for x in row]
            if sum(x * x for x in row) <= params.norm_bound:
                break
        rows.append(row)
    return rows


@pytest.mark.parametrize("which", ["small", "multiword"])
def test_python_witness_equals_wasm_and_satisfies_r1cs(which, request, tmp_path):
    compiled = request.getfixturevalue(which)
    params = compiled.params
    rng = random.Random(7)
    rows = random_rows(params, rng, params.batch - 1)  # last slot left empty (zero update)
    half = 1 << (params.bits - 1)
    rows[0] = [-half, half - 1] + [0] * (params.dims - 2)  # the extreme values are in range
    ctx = BindingContext(chain_id=1, market="0x" + "ab" * 20, task_id=3, batch_index=5,
                         payees=("0x" + "11" * 20,))
    _words, rho, F = public_inputs(params, ctx, rows)
    ours = full_witness(compiled, rows, rho, F)
    theirs = wasm_witness(compiled, circuit_inputs(params, rows, rho, F), tmp_path)
    assert ours == theirs
    assert r1cs_first_unsatisfied(compiled.r1cs, ours) is None
    assert ours[1:3] == [rho, F]  # public inputs rho then F


def test_do_blocks_partition_private_wires(small):
    params = small.params
    per_slot = check_blocks(params, small.r1cs, small.sym)
    assert set(per_slot.values()) == {params.dims * (params.bits + 1) + params.norm_bits}
    blocks = [do_wires(small, i) for i in range(params.batch)]
    all_wires = set(range(1, small.n_wires))
    assert set().union(*blocks, batch_wires(small)) == all_wires
    assert sum(map(len, blocks)) + len(batch_wires(small)) == len(all_wires)
    rows = [[1, -2, 3, 0, 0, 0, 0, 5], [0] * 8]
    words, rho, F = public_inputs(params, BindingContext(), rows)
    wit = full_witness(small, rows, rho, F)
    block = do_block(small, 0, rows[0])
    assert sorted(block) == blocks[0]
    assert all(wit[w] == v for w, v in block.items())


def test_out_of_range_coordinate_has_no_witness(small, tmp_path):
    params = small.params
    rows = [[128, 0, 0, 0, 0, 0, 0, 0], [0] * 8]  # 128 is outside [-128, 127]
    _w, rho, F = public_inputs(params, BindingContext(), rows)
    with pytest.raises(InputError, match="coordinate 0"):
        full_witness(small, rows, rho, F)
    forced = full_witness(small, rows, rho, F, check=False)
    assert r1cs_first_unsatisfied(small.r1cs, forced) is not None
    with pytest.raises(ToolError):
        wasm_witness(small, circuit_inputs(params, rows, rho, F), tmp_path)


def test_over_norm_row_has_no_witness(small, tmp_path):
    params = small.params
    rows = [[0] * 8, [127, 127, 80, 30, 20, 10, 0, 0]]  # 40058 > 40000, all in range
    _w, rho, F = public_inputs(params, BindingContext(), rows)
    with pytest.raises(InputError, match="squared norm"):
        full_witness(small, rows, rho, F)
    forced = full_witness(small, rows, rho, F, check=False)
    assert r1cs_first_unsatisfied(small.r1cs, forced) is not None
    with pytest.raises(ToolError):
        wasm_witness(small, circuit_inputs(params, rows, rho, F), tmp_path)


def test_wrong_F_has_no_witness(small, tmp_path):
    params = small.params
    rows = [[1] * 8, [2] * 8]
    _w, rho, F = public_inputs(params, BindingContext(), rows)
    with pytest.raises(InputError, match="F does not match"):
        full_witness(small, rows, rho, F + 1)
    forced = full_witness(small, rows, rho, F + 1, check=False)
    assert r1cs_first_unsatisfied(small.r1cs, forced) is not None
    with pytest.raises(ToolError):
        wasm_witness(small, circuit_inputs(params, rows, rho, F + 1), tmp_path)
