"""Quantisation: rounding, padding, and one clear error per kind of bad input."""

from __future__ import annotations

import json
import math

import pytest

from omniplus.circuits.params import CircuitParams
from omniplus.core.errors import InputError
from omniplus.prover.quantize import load_gradients, quantize

P = CircuitParams(batch=3, dims=4, bits=8, norm_bound=40000)


def test_rounding_half_even_and_padding():
    rows = quantize([[0.5, 1.5, -0.5, -2.5]], 0, P)
    assert rows == [[0, 2, 0, -2], [0] * 4, [0] * 4]
    assert quantize([[0.25, -1.0, 127 / 16, -8.0]], 4, P)[0] == [4, -16, 127, -128]


@pytest.mark.parametrize(
    ("rows", "f", "match"),
    [
        ([[0.0] * 4] * 4, 0, "4 gradient rows, but the circuit has only 3 DO slots"),
        ([[0.0] * 4, [0.0] * 3], 0, "DO 1: 3 coordinates, expected 4"),
        ([[0.0, float("nan"), 0.0, 0.0]], 0, "DO 0, coordinate 1: nan is not finite"),
        ([[0.0, 0.0, float("inf"), 0.0]], 0, "DO 0, coordinate 2: inf is not finite"),
        ([[0.0, 0.0, 0.0, "1"]], 0, "DO 0, coordinate 3: '1' is not a number"),
        ([[0.0, True, 0.0, 0.0]], 0, "DO 0, coordinate 1: True is not a number"),
        ([[0.0] * 4, [0.0, 0.0, 3.91, 0.0]], 7,
         r"DO 1, coordinate 2: 3.91 quantises to 500, outside \[-128, 127\]"),
        ([[-8.04, 0, 0, 0]], 4, r"DO 0, coordinate 0: -8.04 quantises to -129, outside \[-128, 127\]"),
        ([[1e300, 0, 0, 0]], 64, "overflows"),
        ([[0.0] * 4, [0.0] * 4, [7.9, 7.9, 7.9, 0.0]], 4,
         "DO 2: squared norm 47628 .* exceeds the bound 40000"),
        (["abcd"], 0, "DO 0: expected a list"),
    ],
)
def test_errors_name_row_and_coordinate(rows, f, match):
    with pytest.raises(InputError, match=match):
        quantize(rows, f, P)


def test_bad_scale_bits():
    with pytest.raises(InputError, match="scale_bits"):
        quantize([[0.0] * 4], -1, P)


def test_load_gradients(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"scale_bits": 3, "gradients": [[0.125, -0.25, 0, 1]]}))
    f, rows = load_gradients(path)
    assert (f, rows) == (3, [[0.125, -0.25, 0, 1]])
    assert quantize(rows, f, P)[0] == [1, -2, 0, 8]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"scale_bits": 1.5, "gradients": []}', "scale_bits must be an integer"),
        ('{"scale_bits": 2, "gradients": [1, 2]}', "list of rows"),
    ],
)
def test_load_gradients_errors(tmp_path, text, match):
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_gradients(path)
    with pytest.raises(InputError, match="cannot read"):
        load_gradients(tmp_path / "missing.json")


def test_norm_error_suggests_clip():
    with pytest.raises(InputError) as exc:
        quantize([[7.9, 7.9, 7.9, 0]], 4, P)
    assert f"{math.sqrt(40000) / 16:.6g}" in str(exc.value)
