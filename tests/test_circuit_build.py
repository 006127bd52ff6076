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


def test_source_has_public_ctx_then_words():
    src = circuit_source(CircuitParams(batch=2, dims=8, bits=8, norm_bound=10000))
    assert ("component main {public [ctx, W, S]} = GradientValidity(2, 8, 8, 10000, 14, 10, 25, 1, 256, "
            "10000, 16, 15, 1);") in src


def test_constraint_count_and_blocks(tmp_path):
    params = CircuitParams(batch=2, dims=8, bits=8, norm_bound=1000)  # norm_bits=10
    c = compile_circuit(params, tmp_path)
    # per DO: 8 coordinates × (8 bits + square + score product) + 10 norm bits; 1 word, 1 score word
    assert c.n_constraints == params.expected_constraints(2) == 2 * (8 * 10 + 10) + 1 + 1
    assert c.n_constraints <= params.constraint_budget()
    assert check_blocks(params, c.r1cs, c.sym) == {0: 82, 1: 82}
    assert "budget" in budget_report(c)
    assert not (tmp_path / "node_modules").exists()


def test_budget_report_explains_norm_bits(tmp_path):
    params = CircuitParams(batch=1, dims=4, bits=8, norm_bound=2**20)  # norm_bits=21 > 2d
    c = compile_circuit(params, tmp_path)
    assert c.n_constraints > params.constraint_budget()
    assert "only because norm_bits" in budget_report(c)


def test_public_inputs_are_ctx_and_every_word(tmp_path):
    """The unused ctx is kept as public wire 1 and each word W[m] as wire 2+m (the r1cs header says
    M+1 public inputs), and no DO input is substituted away by --O2."""
    from omniplus.circuits.build import r1cs_header, read_sym

    params = CircuitParams(batch=2, dims=40, bits=6, norm_bound=600)  # c=31, M=2
    c = compile_circuit(params, tmp_path)
    hdr = r1cs_header(c.r1cs)
    assert (hdr["n_pub_out"], hdr["n_pub_in"]) == (0, params.n_public) == (0, 4)
    sym = read_sym(c.sym)
    assert (sym["main.ctx"], sym["main.W[0]"], sym["main.W[1]"], sym["main.S[0]"]) == (1, 2, 3, 4)
    assert all(sym[f"main.g[{i}][{j}]"] > 0 for i in range(2) for j in range(40))
    assert c.n_constraints == params.expected_constraints(2)
