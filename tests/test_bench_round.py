"""Smoke run of `omniplus bench round` at a tiny size (2 DOs, d = 260, 1 epoch): a real devnet round.

The DOs' quantised updates must agree (positive contribution scores, or submitBatch reverts LowScore):
with one hidden unit or 6 bits they quantise to zero, with 4 hidden units and 8 bits they score 53 each.

Not a timed test: the columns must be there, every phase of the round must have a row, the
CSV must hold the printed rows, and the phases must add up to the measured total (they are
consecutive steps, so neither overlaps nor gaps beyond the bookkeeping between them).
"""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from omniplus.bench import round as br


def test_round_bench_rows(tmp_path, capsys) -> None:
    ap = argparse.ArgumentParser()
    br.add_arguments(ap)
    args = ap.parse_args(["--dos", "2", "--hidden", "4", "--bits", "8", "--norm-bound", "6000", "--epochs", "1",
                          "--json", "--out", str(tmp_path)])
    assert br.run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    phases = [r["phase"] for r in rows]
    assert phases == ["train", "share", "validate", "re-check before opening", "contribution screening",
                      "aggregate opening", "proof (joint Groth16)", "local verify",
                      "sign digest", "round overhead", "local verify", "collect signatures", "submit",
                      "total (measured)"]
    for r in rows:
        for key in ("wall_s", "cpu_here_s", "load1"):
            assert key in r and r[key] is not None, (r["phase"], key)
        assert r["d"] == 260 and r["n"] == 2
    total = rows[-1]
    parts = sum(r["wall_s"] for r in rows[:-1])
    assert parts == pytest.approx(total["wall_s"], rel=0.02, abs=0.05)
    # every phase row is non-negative (the overhead row is a remainder: it must not go below zero)
    assert all(r["wall_s"] >= -1e-3 for r in rows)
    # the servers did work in the phases they report, and the chain mined the batch
    by = {(r["phase"], r["where"]): r for r in rows}
    assert by[("proof (joint Groth16)", "servers")]["cpu_servers_s"] > 0
    assert by[("validate", "servers")]["cpu_servers_s"] > 0
    assert by[("re-check before opening", "servers")]["cpu_servers_s"] > 0
    assert total["gas_used"] > 200_000
    with (tmp_path / "round.csv").open() as f:
        got = list(csv.DictReader(f))
    assert [g["phase"] for g in got] == phases
    assert (tmp_path / "round.png").stat().st_size > 0
