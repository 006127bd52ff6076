"""`omniplus bench load` on a small devnet: every DO's shares stored, the row has what the table shows."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from omniplus.bench import load


def test_load_bench_small(tmp_path: Path) -> None:
    args = argparse.Namespace(dos=6, servers=3, seed=2, json=False, out=tmp_path)
    assert load.run(args) == 0
    (row,) = list(csv.DictReader((tmp_path / "load.csv").open()))
    assert int(row["stored"]) == 6 and int(row["lost"]) == 0
    assert float(row["p50_ms"]) <= float(row["p99_ms"]) <= float(row["max_ms"])
    assert float(row["dos_per_s"]) > 0 and float(row["rss_mb_max"]) > 10
