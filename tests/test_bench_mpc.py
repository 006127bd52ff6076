"""Smoke run of `omniplus bench mpc` at 2^8, n = 3: columns, CSV = JSON, ratios from measured numbers.

Not a timed test: the joint proofs must verify, and every derived column must be the arithmetic
of the measured ones.
"""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from omniplus.bench import mpc as bm


def test_mpc_bench_rows(tmp_path, capsys) -> None:
    ap = argparse.ArgumentParser()
    bm.add_arguments(ap)
    args = ap.parse_args(["--sizes", "8", "--parties", "3", "--repeat", "1", "--json",
                          "--out", str(tmp_path)])
    assert bm.run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["circuit"], r["mode"], r["n"], r["t"]) for r in rows] == [
        ("gradient", "wires", 3, 1), ("gradient", "points", 3, 1), ("dense", "wires", 3, 1)]
    for r in rows:
        assert r["verified"] is True
        # [ctx, W_0..W_(M-1), S_0] (a few words at this size) vs the squaring's one output
        assert (r["constraints"] + (3 if r["circuit"] == "gradient" else 1)).bit_length() == 8  # a 2^8 domain
        assert r["server_cpu_s"] == pytest.approx(r["server_py_cpu_s"] + r["server_node_cpu_s"])
        assert r["server_cpu_s"] > 0 and r["single_cpu_s"] >= 0 and r["wall_s"] > 0
        assert r["cpu_over_single_cpu"] == pytest.approx(r["server_cpu_s"] / r["single_cpu_s"])
        assert r["cpu_over_single_wall"] == pytest.approx(r["server_cpu_s"] / r["single_s"])
        assert r["block_b"] == 32 * r["block_wires"]
        assert r["per_do_b"] == pytest.approx(r["block_b"] + r["sent_per_server_per_do_b"])
        assert r["per_do_over_block"] == pytest.approx(r["per_do_b"] / r["block_b"])
        assert r["prove_sent_b"] > 0 and r["rounds"] >= 3
    grad, points, dense = rows
    # point shares: the same statement, the fast proof verified (verified is False otherwise)
    assert points["constraints"] == grad["constraints"] and points["do_points_cpu_s"] > 0
    assert "do_points_cpu_s" not in grad and points["rounds"] == grad["rounds"]
    assert grad["dos"] == 4 and grad["validate_rounds"] > 0 and grad["validate_sent_b"] > 0
    assert grad["sent_per_server_per_do_b"] == pytest.approx(
        (grad["prove_sent_b"] + grad["validate_sent_b"]) / grad["dos"])
    assert dense["dos"] == 1 and "validate_rounds" not in dense
    # the proof's rounds do not depend on the circuit: the gradient run adds the aggregate opening
    # and the score opening, each commit, reveal and echo (prover/mpc/audit.py): 2 × 3 broadcast rounds
    assert grad["rounds"] == dense["rounds"] + 6
    with (tmp_path / "mpc.csv").open() as f:
        got = list(csv.DictReader(f))
    assert [(g["circuit"], g["mode"]) for g in got] == [("gradient", "wires"), ("gradient", "points"),
                                                         ("dense", "wires")]
    assert float(got[2]["cpu_over_single_cpu"]) == pytest.approx(dense["cpu_over_single_cpu"])
    assert (tmp_path / "mpc.png").stat().st_size > 0
