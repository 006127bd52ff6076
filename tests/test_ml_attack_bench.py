"""`omniplus bench attack` smoke run: tiny sizes, the columns exist and the bound rejects the
random attackers (their noise is far outside the norm bound)."""

from __future__ import annotations

import argparse
import json

from omniplus.bench.attack import add_arguments, run


def test_attack_bench_smoke(tmp_path, capsys) -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--table", "accuracy", "--rates", "0,34", "--dos", "6", "--batch", "2", "--mo-rounds", "1",
                         "--epochs", "1", "--schemes", "fedavg,bound_krum_0.25", "--json", "--out", str(tmp_path)])
    assert run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["attack_rate_pct"] for r in rows] == [0, 34]
    assert rows[1]["attackers"] == 2 and rows[1]["rejected_by_bound"] == 2  # both, in the one bound scheme
    assert all(0 <= r[c] <= 1 for r in rows for c in ("fedavg", "bound_krum_0.25"))
    assert (tmp_path / "attack.csv").exists() and (tmp_path / "attack.png").exists()


def test_pay_table_columns_and_zero_attackers_unpaid(tmp_path, capsys) -> None:
    """Tiny pay table: the columns exist, free-riders get 0 under contribution pay but their head-count
    share under equal pay, and the load average is recorded per row."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--rates", "0,20", "--dos", "10", "--batch", "5", "--mo-rounds", "1", "--repeats", "1",
                         "--epochs", "2", "--attacks", "zero", "--pay-schemes", "equal,contribution",
                         "--json", "--out", str(tmp_path)])
    assert run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["attack"], r["attack_rate_pct"], r["scheme"]) for r in rows] == [
        ("none", 0, "equal"), ("none", 0, "contribution"), ("zero", 20, "equal"), ("zero", 20, "contribution")]
    for key in ("attacker_pay_share", "accuracy", "acc_vs_no_attack", "honest_unpaid_pct", "load1", "attackers"):
        assert all(key in r for r in rows)
    equal, contrib = rows[2], rows[3]
    assert equal["attackers"] == 2 and abs(equal["attacker_pay_share"] - 0.2) < 1e-9
    assert contrib["attacker_pay_share"] == 0 and contrib["attackers_paid"] == 0
    assert (tmp_path / "attack.csv").exists() and (tmp_path / "attack.png").exists()
