"""Which servers run a round once one is named (issue 10), without a network: participants()
leaves a named server out while 2t+1 remain, says so once, and --status reports it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omniplus.servers.batch_policy import BURNED_PREFIX, burned_reason
from omniplus.servers.control import ServerRef
from omniplus.servers.coordinator import Coordinator, CoordinatorConfig, gave_up, status_report


def bare(tmp_path: Path, n: int, t: int) -> tuple[Coordinator, list[tuple[str, dict[str, Any]]]]:
    """A Coordinator with only what participants() touches (no chain, no servers)."""
    cfg = CoordinatorConfig(servers=tuple(ServerRef(j, f"p{j}", f"q{j}") for j in range(1, n + 1)),
                            cert=tmp_path / "c", key=tmp_path / "k", rpc_url="", market="0x" + "00" * 20,
                            chain_id=1, setup=tmp_path, tx_key="", state=tmp_path, threshold=t)
    c = Coordinator.__new__(Coordinator)
    logged: list[tuple[str, dict[str, Any]]] = []
    c.cfg, c.state, c._cannot_exclude = cfg, {"batches": [], "rejected": {}}, set()
    c.state_path = tmp_path / "state.json"
    c.log = lambda event, **kw: logged.append((event, kw))
    return c, logged


def name(c: Coordinator, j: int) -> None:
    c.state.setdefault("named", {})[str(j)] = {"server": j, "accused_by": [1, 2], "kind": "batch",
                                               "session": "s", "reason": "r"}


def test_a_named_server_is_left_out_while_2t_plus_1_remain(tmp_path: Path) -> None:
    c, logged = bare(tmp_path, 4, 1)
    assert c.participants() == [1, 2, 3, 4] and c._parties_arg([1, 2, 3, 4]) == []
    name(c, 4)
    assert c.participants() == [1, 2, 3] and c.participants() == [1, 2, 3]
    assert [e for e, _ in logged] == ["server_excluded"]  # once, when first left out
    assert logged[0][1]["server"] == 4 and logged[0][1]["alert"] is True
    assert c._parties_arg([1, 2, 3]) == [1, 2, 3]
    name(c, 2)  # a second named server would leave 2 < 2t+1: nobody is left out then
    assert c.participants() == [1, 2, 3, 4]
    assert logged[-1][0] == "server_not_excluded"
    text = status_report(c.cfg)["text"]
    assert "server 4 excluded from rounds (named)" in text, text
    assert json.loads((tmp_path / "state.json").read_text())["excluded"]["4"]["parties"] == [1, 2, 3]


def test_at_n_2t_plus_1_nothing_changes(tmp_path: Path) -> None:
    c, logged = bare(tmp_path, 3, 1)
    name(c, 3)
    assert c.participants() == [1, 2, 3] and c.participants() == [1, 2, 3]
    warnings = [kw["note"] for e, kw in logged if e == "server_not_excluded"]
    assert warnings == ["server 3 named but cannot be excluded: n = 2t+1"]
    assert "excluded from rounds" not in status_report(c.cfg)["text"]


def test_a_set_is_given_up_only_on_t_plus_1_servers_word(tmp_path: Path) -> None:
    from types import SimpleNamespace as Reply

    burned = Reply(state="invalid", reason=burned_reason(0, 3))
    valid, other = Reply(state="valid", reason=""), Reply(state="invalid", reason="score 0 ≤ minScore 0")
    assert burned.reason.startswith(BURNED_PREFIX)
    assert not gave_up([burned, valid, valid], 1)  # one (possibly lying) server cannot free the index
    assert not gave_up([burned, other, valid], 1)
    assert gave_up([burned, burned, valid], 1)
    assert not gave_up([burned, burned, valid, valid], 2)
    c, logged = bare(tmp_path, 3, 1)
    c.given_up = {"0xaa"}
    record = {"index": 0, "dos": ["0xbb", "0xcc"], "status": "failed"}
    assert not c.mark_given_up(record) and record["status"] == "failed" and not logged
    record["dos"].append("0xAA")
    assert c.mark_given_up(record) and c.mark_given_up(record) and record["status"] == "given_up"
    assert [e for e, kw in logged if kw.get("alert")] == ["batch_given_up"]  # one alert
