"""Every anvil the tool starts keeps bounded disk: no anvil-state-* folders, private state removed.

anvil 1.7.1 writes each historical state beyond its in-memory window to
~/.foundry/anvil/tmp/anvil-state-* and never removes it (a benchmark once filled 66 GB); the
helper runs it with --prune-history and HOME in a private folder removed on stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from omniplus.contracts.chain import Anvil, deploy, remove_stale_state_dirs, send_value, transact
from omniplus.contracts.solc import compile_contracts

# A contract whose every call rewrites storage, so each block has a distinct state to persist.
COUNTER = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract Counter {
    mapping(uint256 => uint256) public v;
    uint256 public n;
    function bump(uint256 k) external { for (uint256 i = 0; i < k; i++) { v[n + i] = n + i + 1; } n += k; }
}
"""

DISK_BOUND = 4 << 20  # the private folder stays below 4 MB (it holds only owner.json)


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _state_dirs(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in r.rglob("anvil-state-*")]


def test_devnet_like_run_leaves_no_state_folder(tmp_path, monkeypatch):
    root = tmp_path / "anvil-root"
    monkeypatch.setenv("OMNIPLUS_ANVIL_TMP", str(root))
    home_tmp = Path.home() / ".foundry" / "anvil" / "tmp"
    before = set(_state_dirs(home_tmp))
    src = tmp_path / "Counter.sol"
    src.write_text(COUNTER)
    art = compile_contracts(src)["Counter"]
    with Anvil(accounts=3) as node:
        state_dir = node.state_dir
        assert state_dir is not None and state_dir.parent == root
        c = deploy(node.w3, node.keys[0], art)
        # well past anvil's in-memory window, beyond which 1.7.1 writes every state to disk
        for i in range(150):
            rc = transact(node.w3, node.keys[i % 2], c.functions.bump(20))
            assert rc["status"] == 1
        send_value(node.w3, node.keys[2], node.accounts[0].address, 1)
        node.w3.provider.make_request("anvil_mine", [hex(700)])  # 700 more blocks (states)
        assert c.functions.n().call() == 3000  # the latest state is all readers need
        assert _state_dirs(state_dir) == []
        assert _tree_size(state_dir) < DISK_BOUND
        proc = node.proc
    assert proc.poll() is not None
    assert not state_dir.exists()
    assert _state_dirs(root) == []
    assert set(_state_dirs(home_tmp)) == before  # nothing new under the real ~/.foundry either


CHILD = textwrap.dedent("""
    import json, sys, time
    from omniplus.contracts.chain import Anvil
    node = Anvil(accounts=1).start()
    print(json.dumps({"pid": node.proc.pid, "dir": str(node.state_dir)}), flush=True)
    time.sleep(600)
""")


def test_killed_parent_takes_anvil_down_and_next_start_cleans_up(tmp_path):
    root = tmp_path / "anvil-root"
    env = {**os.environ, "OMNIPLUS_ANVIL_TMP": str(root)}
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        info = json.loads(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    anvil_pid, state_dir = info["pid"], Path(info["dir"])
    assert state_dir.exists()  # a SIGKILLed parent cannot clean up itself ...
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # ... but the kernel sends anvil SIGTERM (PDEATHSIG)
        try:
            os.kill(anvil_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(anvil_pid, signal.SIGKILL)
        raise AssertionError("anvil outlived its SIGKILLed parent")
    # the next start (here: its cleanup step) removes the orphaned folder, and only that one
    live = root / "anvil-live"
    live.mkdir()
    (live / "owner.json").write_text(json.dumps({"anvil_pid": os.getpid(), "parent_pid": os.getpid()}))
    assert remove_stale_state_dirs(root) == [state_dir]
    assert not state_dir.exists() and live.exists()
