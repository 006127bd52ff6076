"""Smoke run of `omniplus bench prover` at 2^8: columns, CSV = JSON, ratios from measured numbers.

Not a timed test: it checks that every number the table reports is there and that the ratios
are computed from the measured times, on the smallest circuit (setup cached like the real run).
"""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from omniplus.bench import prover as bp


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    bp.add_arguments(ap)
    return ap.parse_args(argv)


def test_defaults_and_native_limit() -> None:
    args = parse([])
    assert args.sizes is None and args.backends == ["native", "snarkjs", "circom"]
    assert bp.native_limit(None, None) == bp.DEFAULT_NATIVE_MAX
    assert bp.native_limit([10, 18], None) == 18  # --sizes overrides the default limit
    assert bp.native_limit([10, 14], 10) == 10


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-prover")
    args = parse(["--sizes", "8", "--backends", "native,snarkjs", "--repeat", "1", "--json",
                  "--out", str(out)])
    return args, out


def test_prover_bench_rows(smoke, capsys) -> None:
    args, out = smoke
    assert bp.run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    for key in ("power", "constraints", "N", "d", "k", "B", "setup_s", "native_s", "snarkjs_s",
                "snarkjs_cold_s", "direct_s", "native_mb", "snarkjs_mb", "direct_mb",
                "native_over_snarkjs", "snarkjs_over_direct", "all_verified"):
        assert key in row, key
    assert row["power"] == 8 and (row["constraints"] + 2).bit_length() == 8
    assert row["all_verified"] is True
    assert "circom_s" not in row and row["circom_over_direct"] is None  # not requested
    assert row["native_over_snarkjs"] == pytest.approx(row["native_s"] / row["snarkjs_s"])
    assert row["snarkjs_over_direct"] == pytest.approx(row["snarkjs_s"] / row["direct_s"])
    for key in ("native_s", "snarkjs_s", "direct_s", "setup_s"):
        assert row[key] > 0
    for key in ("native_mb", "snarkjs_mb", "direct_mb"):
        assert 5 < row[key] < 4000
    with (out / "prover.csv").open() as f:
        got = list(csv.DictReader(f))
    assert len(got) == 1 and set(row) <= set(got[0])
    assert float(got[0]["snarkjs_over_direct"]) == pytest.approx(row["snarkjs_over_direct"])
    assert (out / "prover.png").stat().st_size > 0
