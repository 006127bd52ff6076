"""Circuit parameters refuse field wrap-around; the compiled size matches the agreed budget."""

from __future__ import annotations

import pytest

from omniplus.circuits.build import budget_report, check_blocks, circuit_source, compile_circuit
from omniplus.circuits.params import CircuitParams, R


@pytest.mark.parametrize(
    "params",
    [
        CircuitParams(batch=0, dims=8, bits=8, norm_bound=10),
        CircuitParams(batch=2, dims=8, bits=1, norm_bound=10),
        CircuitParams(batch=2, dims=8, bits=8, norm_bound=-1),
        CircuitParams(batch=2, dims=8, bits=250, norm_bound=10),  # word wider than 253 bits
        CircuitParams(batch=2, dims=8, bits=127, norm_bound=10),  # squares wrap the field
        CircuitParams(batch=2, dims=8, bits=8, norm_bound=R),  # B must be below r
    ],
)
def test_check_rejects_wraparound(params):
    with pytest.raises(ValueError):
        params.check()


def test_source_has_public_rho_then_F():
    src = circuit_source(CircuitParams(batch=2, dims=8, bits=8, norm_bound=10000))
    assert "component main {public [rho, F]} = GradientValidity(2, 8, 8, 10000, 14, 10, 25, 1, 256);" in src


def test_constraint_count_and_blocks(tmp_path):
    params = CircuitParams(batch=2, dims=8, bits=8, norm_bound=1000)  # norm_bits=10
    c = compile_circuit(params, tmp_path)
    assert c.n_constraints == params.expected_constraints(2) == 2 * (8 * 9 + 10) + 1
    assert c.n_constraints <= params.constraint_budget()
    assert check_blocks(params, c.r1cs, c.sym) == {0: 82, 1: 82}
    assert "budget" in budget_report(c)
    assert not (tmp_path / "node_modules").exists()


def test_budget_report_explains_norm_bits(tmp_path):
    params = CircuitParams(batch=1, dims=4, bits=8, norm_bound=2**20)  # norm_bits=21 > 2d
    c = compile_circuit(params, tmp_path)
    assert c.n_constraints > params.constraint_budget()
    assert "only because norm_bits" in budget_report(c)
