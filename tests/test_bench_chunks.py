"""Smoke run of `omniplus bench chunks` at a tiny size (d = 50 in K = 3 chunks of 20, PlainMarket at
d = 20): real chunk proofs settled in one transaction, columns and CSV; no timing asserts."""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from omniplus.bench import chunks as bc


def test_chunks_bench_rows(tmp_path, capsys) -> None:
    ap = argparse.ArgumentParser()
    bc.add_arguments(ap)
    args = ap.parse_args(["--dims", "50", "--d-chunk", "20", "--plain-dims", "20", "--plain-rounds", "1",
                          "--json", "--out", str(tmp_path)])
    assert bc.run(args) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["d"], row["K"], row["N"], row["d_chunk"]) == (50, 3, 2, 20)
    # three chunk verifications in one transaction: more than one verifier call, less than three txs
    assert 3 * 207_000 < row["gas"] < 3 * 600_000
    assert row["gas_per_param"] == pytest.approx(row["gas"] / 50)
    assert row["prove_ms_per_param"] == pytest.approx(1000 * row["prove_s"] / 50)
    assert row["plain_extrapolated"] is True and row["plain_gas_per_param"] > 0
    assert row["plain_over_rollup"] == pytest.approx(row["plain_per_batch_gas"] / row["gas"], rel=1e-3)
    assert row["fits_30m"] is True and row["load1"] >= 0
    with (tmp_path / "chunks.csv").open() as f:
        (got,) = list(csv.DictReader(f))
    assert int(got["gas"]) == row["gas"]
    assert (tmp_path / "chunks.png").stat().st_size > 0
