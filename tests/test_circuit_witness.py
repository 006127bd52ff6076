"""The Python witness equals circom's wasm witness and satisfies the R1CS; invalid rows cannot."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from omniplus.circuits.build import check_blocks, compile_circuit
from omniplus.circuits.params import CircuitParams
from omniplus.core import resources as paths
from omniplus.core.errors import InputError, ToolError
from omniplus.core.tools import run_tool
from omniplus.prover.binding import BindingContext, public_inputs
from omniplus.prover.r1cs import first_unsatisfied, read_r1cs
from omniplus.prover.witness import (
    batch_wires,
    circuit_inputs,
    do_block,
    do_wires,
    full_witness,
)
from omniplus.prover.wtns import read_wtns

SMALL = CircuitParams(batch=2, dims=8, bits=8, norm_bound=40000)
# k=24 makes w=26 and c=9, so d=20 needs M=3 words: exercises the Horner chain.
MULTIWORD = CircuitParams(batch=2, dims=20, bits=24, norm_bound=1 << 50)


def r1cs_first_unsatisfied(r1cs_path: Path, witness: list[int]) -> int | None:
    return first_unsatisfied(read_r1cs(r1cs_path), witness)


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
    return read_wtns(tmp / "out.wtns")


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
    _words, pub = public_inputs(params, ctx, rows)
    ours = full_witness(compiled, rows, pub)
    theirs = wasm_witness(compiled, circuit_inputs(params, rows, pub), tmp_path)
    assert ours == theirs
    assert r1cs_first_unsatisfied(compiled.r1cs, ours) is None
    assert ours[1 : 1 + params.n_public] == pub  # public inputs ctx, the words, the score words


def test_do_blocks_partition_private_wires(small):
    params = small.params
    per_slot = check_blocks(params, small.r1cs, small.sym)
    assert set(per_slot.values()) == {params.dims * (params.bits + 1) + params.norm_bits}
    blocks = [do_wires(small, i) for i in range(params.batch)]
    all_wires = set(range(1, small.n_wires))
    assert set().union(*blocks, batch_wires(small)) == all_wires
    assert sum(map(len, blocks)) + len(batch_wires(small)) == len(all_wires)
    rows = [[1, -2, 3, 0, 0, 0, 0, 5], [0] * 8]
    words, pub = public_inputs(params, BindingContext(), rows)
    wit = full_witness(small, rows, pub)
    block = do_block(small, 0, rows[0])
    assert sorted(block) == blocks[0]
    assert all(wit[w] == v for w, v in block.items())


def test_out_of_range_coordinate_has_no_witness(small, tmp_path):
    params = small.params
    rows = [[128, 0, 0, 0, 0, 0, 0, 0], [0] * 8]  # 128 is outside [-128, 127]
    _w, pub = public_inputs(params, BindingContext(), rows)
    with pytest.raises(InputError, match="coordinate 0"):
        full_witness(small, rows, pub)
    forced = full_witness(small, rows, pub, check=False)
    assert r1cs_first_unsatisfied(small.r1cs, forced) is not None
    with pytest.raises(ToolError):
        wasm_witness(small, circuit_inputs(params, rows, pub), tmp_path)


def test_over_norm_row_has_no_witness(small, tmp_path):
    params = small.params
    rows = [[0] * 8, [127, 127, 80, 30, 20, 10, 0, 0]]  # 40058 > 40000, all in range
    _w, pub = public_inputs(params, BindingContext(), rows)
    with pytest.raises(InputError, match="squared norm"):
        full_witness(small, rows, pub)
    forced = full_witness(small, rows, pub, check=False)
    assert r1cs_first_unsatisfied(small.r1cs, forced) is not None
    with pytest.raises(ToolError):
        wasm_witness(small, circuit_inputs(params, rows, pub), tmp_path)


@pytest.mark.parametrize("which", ["small", "multiword"])
def test_every_word_is_constrained(which, request, tmp_path):
    """The v1 knapsack is gone: changing any single public word (or the last) breaks the R1CS."""
    compiled = request.getfixturevalue(which)
    params = compiled.params
    rows = [[1] * params.dims, [2] * params.dims] + [[0] * params.dims] * (params.batch - 2)
    _w, pub = public_inputs(params, BindingContext(), rows)
    for m in range(params.n_words):
        bad = list(pub)
        bad[1 + m] += 1
        with pytest.raises(InputError, match="not the packed aggregate"):
            full_witness(compiled, rows, bad)
        forced = full_witness(compiled, rows, bad, check=False)
        assert r1cs_first_unsatisfied(compiled.r1cs, forced) is not None
    with pytest.raises(ToolError):
        wasm_witness(compiled, circuit_inputs(params, rows, [pub[0], *[w + 1 for w in pub[1:]]]), tmp_path)
    # ctx is free in the R1CS (snarkjs' extra A row binds it to the proof instead)
    other = full_witness(compiled, rows, [pub[0] + 1, *pub[1:]])
    assert r1cs_first_unsatisfied(compiled.r1cs, other) is None
