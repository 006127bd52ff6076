"""bench/common.py: sizes, tables, CSV/JSON output and child-process measurement (no provers)."""

from __future__ import annotations

import argparse
import csv
import json
import sys

import pytest

from omniplus.bench.common import (
    Column,
    format_table,
    gradient_params,
    int_list,
    ratio,
    report,
    run_measured,
    write_csv,
)


@pytest.mark.parametrize("power", [8, 10, 12, 16])
def test_gradient_params_fill_a_domain_of_that_power(power: int) -> None:
    p = gradient_params(power)
    n = p.expected_constraints()
    assert (n + 2).bit_length() == power  # snarkjs' domain is exactly 2^power
    # "about 2^power": the largest d, one more coordinate would overflow the domain
    from omniplus.circuits.params import CircuitParams

    bigger = CircuitParams(p.batch, p.dims + 1, p.bits, (p.dims + 1) << (2 * p.bits - 4))
    assert bigger.expected_constraints() > (1 << power) - 3
    assert n > (1 << power) * 0.8
    assert p.batch == 4 and p.bits == 8


def test_int_list_and_ratio() -> None:
    assert int_list("10, 12,14") == [10, 12, 14]
    with pytest.raises(argparse.ArgumentTypeError):
        int_list("ten")
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, 0.0) is None and ratio(1.0, None) is None


def test_table_csv_and_json(tmp_path, capsys) -> None:
    rows = [{"a": 1, "b": 0.5}, {"a": 22, "b": None, "c": "x"}]
    cols = [Column("a", "A"), Column("b", "B", "{:.2f}")]
    text = format_table(rows, cols)
    assert text.splitlines()[0].split() == ["A", "B"]
    assert text.splitlines()[3].split() == ["22", "-"]
    with write_csv(tmp_path / "t.csv", rows).open() as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["a", "b", "c"] and got[1] == {"a": "22", "b": "", "c": "x"}

    args = argparse.Namespace(json=True, out=tmp_path / "o")
    draw = lambda fig: fig.subplots(1, 1).plot([1], [2])  # noqa: E731
    assert report(args, "demo", rows, cols, ["a note"], draw=draw) == 0
    assert json.loads(capsys.readouterr().out) == rows
    assert (tmp_path / "o" / "demo.csv").exists() and (tmp_path / "o" / "demo.png").stat().st_size > 0

    args.json = False
    report(args, "demo", rows, cols, ["a note"])
    out = capsys.readouterr().out
    assert "* a note" in out and "CSV:" in out


def test_run_measured_reports_this_childs_peak_memory() -> None:
    # A forked child starts with the parent's resident pages counted in its peak, so the big child
    # allocates far more than a grown test process holds; the small child runs after it.
    big = run_measured([sys.executable, "-c", "b = bytearray(700 << 20); b[::4096] = b'x' * len(b[::4096])"])
    small = run_measured([sys.executable, "-c", "pass"])
    assert big.returncode == 0 and small.returncode == 0
    assert big.peak_mb >= 700 > small.peak_mb  # per child, not the process-wide maximum
    assert big.cpu_s > 0 and big.wall_s > 0
