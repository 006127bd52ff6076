"""`omniplus bench attack` smoke run: tiny sizes, the columns exist and the bound rejects the
random attackers (their noise is far outside the norm bound)."""

from __future__ import annotations

import argparse
import json

from omniplus.bench.attack import add_arguments, run


def test_attack_bench_smoke(tmp_path, capsys) -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--rates", "0,34", "--dos", "6", "--batch", "2", "--mo-rounds", "1", "--epochs", "1",
                         "--schemes", "fedavg,bound_krum_0.25", "--json", "--out", str(tmp_path)])
    assert run(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["attack_rate_pct"] for r in rows] == [0, 34]
    assert rows[1]["attackers"] == 2 and rows[1]["rejected_by_bound"] == 2  # both, in the one bound scheme
    assert all(0 <= r[c] <= 1 for r in rows for c in ("fedavg", "bound_krum_0.25"))
    assert (tmp_path / "attack.csv").exists() and (tmp_path / "attack.png").exists()
