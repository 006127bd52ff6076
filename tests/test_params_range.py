"""One range for every parameter: CircuitParams.check() refuses exactly what RollupMarket refuses.

Both sides of every bound (k, d, N, B and the practical constraint limit) are tested, the messages
name the parameter at fault, and a huge B costs no extra constraints (norm bits capped).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest

from omniplus.circuits.build import compile_circuit
from omniplus.circuits.params import (
    MAX_BATCH,
    MAX_BITS,
    MAX_CONSTRAINTS,
    MAX_DIMS,
    MIN_BITS,
    CircuitParams,
    ParamsError,
    R,
)
from omniplus.core.errors import InputError
from omniplus.prover.binding import BindingContext, public_inputs
from omniplus.prover.r1cs import first_unsatisfied, read_r1cs
from omniplus.prover.witness import full_witness

# (params, the word the message must contain) — every one is one step outside the range
REFUSED = [
    (CircuitParams(batch=1, dims=8, bits=MAX_BITS + 1, norm_bound=10), "bits (k)"),
    (CircuitParams(batch=1, dims=8, bits=MIN_BITS - 1, norm_bound=10), "bits (k)"),
    (CircuitParams(batch=1, dims=8, bits=127, norm_bound=10), "bits (k)"),
    (CircuitParams(batch=0, dims=8, bits=8, norm_bound=10), "batch (N)"),
    (CircuitParams(batch=MAX_BATCH + 1, dims=1, bits=2, norm_bound=0), "batch (N)"),
    (CircuitParams(batch=1, dims=0, bits=8, norm_bound=10), "dims (d)"),
    (CircuitParams(batch=1, dims=MAX_DIMS + 1, bits=2, norm_bound=0), "dims (d)"),
    (CircuitParams(batch=1, dims=2**40, bits=8, norm_bound=10), "dims (d)"),
    (CircuitParams(batch=2, dims=8, bits=8, norm_bound=R), "norm_bound (B)"),
    (CircuitParams(batch=2, dims=8, bits=8, norm_bound=-1), "norm_bound (B)"),
    (CircuitParams(batch=2, dims=8, bits=8, norm_bound=10**400), "norm_bound (B)"),
    (CircuitParams(batch=2, dims=8, bits=8, norm_bound=10.0), "norm_bound (B)"),  # type: ignore[arg-type]
    (CircuitParams(batch=True, dims=8, bits=8, norm_bound=10), "batch (N)"),  # type: ignore[arg-type]
    (CircuitParams(batch=64, dims=4096, bits=8, norm_bound=10), "constraints"),  # 2.4M > 2^21
]

# the boundary values themselves: accepted by check() and by the contract
ACCEPTED = [
    CircuitParams(batch=1, dims=1, bits=MIN_BITS, norm_bound=0),
    CircuitParams(batch=1, dims=1, bits=MAX_BITS, norm_bound=R - 1),
    CircuitParams(batch=MAX_BATCH, dims=1, bits=2, norm_bound=1),
    # near the largest d whose circuit fits MAX_CONSTRAINTS at k=2: d·(k+2) (bits, square, score
    # product) + d/84 words ≤ 2^21 gives d ≤ 522,722 (MAX_DIMS itself needs N·k small and no score)
    CircuitParams(batch=1, dims=522_000, bits=2, norm_bound=5),
    CircuitParams(batch=4, dims=5701, bits=8, norm_bound=5701 << 14),  # the bench row
]


@pytest.mark.parametrize(("params", "blame"), REFUSED, ids=[f"{b}-{i}" for i, (_, b) in enumerate(REFUSED)])
def test_check_refuses_and_names_the_parameter(params, blame):
    t0 = time.perf_counter()
    with pytest.raises(ParamsError) as err:
        params.check()
    assert time.perf_counter() - t0 < 0.5  # refused before any work (no arithmetic on d)
    msg = str(err.value)
    assert blame in msg and "\n" not in msg and len(msg) < 300
    assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("params", ACCEPTED, ids=lambda p: p.describe().split(" (")[0])
def test_boundary_values_accepted(params):
    assert params.check() is params
    assert params.expected_constraints() <= MAX_CONSTRAINTS


def test_B_at_or_above_r_blames_B_not_dims():
    with pytest.raises(ParamsError, match="norm_bound") as err:
        CircuitParams(batch=2, dims=8, bits=8, norm_bound=R).check()
    assert "dims" not in str(err.value).split(";")[0]


def test_norm_bits_capped_when_B_exceeds_every_in_range_norm():
    p = CircuitParams(batch=1, dims=4, bits=8, norm_bound=2**253)
    p.check()
    assert p.max_sq_norm == 4 << 14
    assert p.effective_norm_bound == p.max_sq_norm
    assert p.norm_bits == p.max_sq_norm.bit_length() == 17  # not 254
    assert p.expected_constraints() == 4 * 10 + 17 + 1 + 1  # 59, was 536 uncapped
    small = CircuitParams(batch=1, dims=4, bits=8, norm_bound=1000)
    assert small.effective_norm_bound == 1000 and small.norm_bits == 10


def test_capped_circuit_accepts_the_extreme_rows_and_refuses_out_of_range(tmp_path):
    """Soundness of the cap, on the compiled circuit: with B ≫ d·2^(2k−2) the extreme in-range row
    (|g|² = d·2^(2k−2) exactly) has a witness, and an out-of-range coordinate still has none."""
    p = CircuitParams(batch=1, dims=4, bits=4, norm_bound=2**252)
    c = compile_circuit(p, tmp_path)
    assert c.n_constraints == p.expected_constraints() == 4 * 6 + 9 + 1 + 1
    r1cs = read_r1cs(c.r1cs)
    ctx = BindingContext()
    rows = [[-8, -8, -8, -8]]  # Σg² = 256 = max_sq_norm = B'
    _w, pub = public_inputs(p, ctx, rows)
    assert first_unsatisfied(r1cs, full_witness(c, rows, pub)) is None
    bad = [[8, 0, 0, 0]]  # 8 is outside [−8, 8)
    _w, pub = public_inputs(p, ctx, bad)
    assert first_unsatisfied(r1cs, full_witness(c, bad, pub, check=False)) is not None


def test_from_json_refuses_hostile_documents():
    good = CircuitParams(batch=2, dims=8, bits=8, norm_bound=1000).to_json()
    for doc in ([1, 2], None, "nope", {**good, "dims": "9" * 5000}, {**good, "norm_bound": 10**400},
                {**good, "bits": [8]}, {**good, "bits": 65}, {**good, "norm_bits": "x"}, {"batch": 2}):
        with pytest.raises(ParamsError):
            CircuitParams.from_json(doc)  # type: ignore[arg-type]
    assert CircuitParams.from_json(good) == CircuitParams(batch=2, dims=8, bits=8, norm_bound=1000)


@pytest.mark.parametrize(("flags", "blame"), [(["--bits", "65", "--dims", "8"], "bits (k)"),
                                             (["--bits", "8", "--dims", str(2**40)], "dims (d)")])
def test_cli_setup_refuses_before_any_work(tmp_path, flags, blame):
    out = tmp_path / "setup"
    proc = subprocess.run([sys.executable, "-m", "omniplus", "setup", "--batch", "2", "--norm-bound", "100",
                           "--out", str(out), *flags], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and blame in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no compilation started


# ---------------------------------------------------------------- the contract agrees
@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from omniplus.contracts.chain import Anvil, deploy
    from omniplus.contracts.solc import compile_contracts

    src = tmp_path_factory.mktemp("sol") / "HasCode.sol"
    src.write_text("// SPDX-License-Identifier: MIT\npragma solidity ^0.8.24;\ncontract HasCode { uint256 x; }\n")
    with Anvil(accounts=2) as node:
        yield node, deploy(node.w3, node.keys[0], compile_contracts(src)["HasCode"]).address


def _deploy(chain, params: CircuitParams):
    from omniplus.contracts.rollup import Committee, RollupMarket, TaskParams

    node, verifier = chain
    if params.batch == 1:  # N_min >= 2 (settlement v2): the smallest market has N = 2
        params = dataclasses.replace(params, batch=2)
    deadline = node.w3.eth.get_block("latest")["timestamp"] + 3600
    task = TaskParams.from_circuit(params, reward=1, batches=1, deadline=deadline, min_batch=min(2, params.batch))
    committee = Committee((node.accounts[0].address, node.accounts[1].address, "0x" + "33" * 20),
                          (b"\1" * 32, b"\2" * 32, b"\3" * 32), 2)
    return RollupMarket.deploy(node.w3, node.keys[0], verifier, task, committee=committee)


@pytest.mark.parametrize("params", ACCEPTED[:4], ids=lambda p: p.describe().split(" (")[0])
def test_contract_accepts_the_boundary_values(chain, params):
    params.check()
    m = _deploy(chain, params)
    assert m.contract.functions.bits().call() == params.bits
    assert m.contract.functions.dims().call() == params.dims


# one step past each bound the contract also checks (the constraint limit is practical only:
# the contract has no circuit to count)
CONTRACT_REFUSED = [
    CircuitParams(batch=1, dims=8, bits=MAX_BITS + 1, norm_bound=10),
    CircuitParams(batch=1, dims=8, bits=MIN_BITS - 1, norm_bound=10),
    CircuitParams(batch=0, dims=8, bits=8, norm_bound=10),
    CircuitParams(batch=MAX_BATCH + 1, dims=1, bits=2, norm_bound=0),
    CircuitParams(batch=1, dims=0, bits=8, norm_bound=10),
    CircuitParams(batch=1, dims=MAX_DIMS + 1, bits=2, norm_bound=0),
    CircuitParams(batch=1, dims=2**40, bits=8, norm_bound=10),
    CircuitParams(batch=2, dims=8, bits=8, norm_bound=R),
]


@pytest.mark.parametrize("params", CONTRACT_REFUSED, ids=lambda p: p.describe().split(" (")[0])
def test_contract_refuses_one_step_past(chain, params):
    from omniplus.core.errors import ChainError

    with pytest.raises(ParamsError):
        params.check()
    with pytest.raises(ChainError, match="BadParams"):
        _deploy(chain, params)
