"""Coordinator configuration and CLI wiring (no network): a coordinator must refuse to start
half-configured, since it is the party that spends gas and decides what reaches the chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from omniplus.core.errors import InputError
from omniplus.core.resources import ROOT
from omniplus.servers.coordinator import load_coordinator_config

BASE = {
    "setup": "setup",
    "key": "0x" + "11" * 32,
    "tls": {"cert": "certs/coordinator.pem", "key": "certs/coordinator.key"},
    "task": {"rpc_url": "http://127.0.0.1:8545", "market": "0x" + "ab" * 20},
    "servers": [
        {"id": j, "peer": f"127.0.0.1:{7100 + j}", "public": f"127.0.0.1:{7000 + j}"} for j in (1, 2, 3)
    ],
}


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "coordinator.toml"
    p.write_text(tomli_w.dumps(data))
    return p


def test_paths_are_relative_to_the_file_and_defaults_apply(tmp_path: Path) -> None:
    cfg = load_coordinator_config(write(tmp_path, {**BASE, "max_attempts": 5}))
    assert cfg.n == 3 and cfg.threshold == 1 and cfg.max_attempts == 5 and cfg.chain_id == 31337
    assert cfg.cert == tmp_path / "certs/coordinator.pem" and cfg.setup == tmp_path / "setup"
    assert cfg.state == tmp_path / "coordinator-state"
    (tmp_path / "k").write_text("0x" + "22" * 32 + "\n")
    no_key = {k: v for k, v in BASE.items() if k != "key"}
    assert load_coordinator_config(write(tmp_path, {**no_key, "keyfile": "k"})).tx_key == "0x" + "22" * 32


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"tls": None}, "missing 'tls'"),
        ({"key": None}, "key or keyfile"),
        ({"servers": BASE["servers"][:2]}, "2t\\+1"),
        ({"servers": [{**s, "id": s["id"] + 1} for s in BASE["servers"]]}, "ids must be 1..n"),
        ({"max_attempts": "many"}, "max_attempts must be an integer"),
        ({"poll": 0}, "poll must be positive"),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, change: dict, match: str) -> None:
    data = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(InputError, match=match):
        load_coordinator_config(write(tmp_path, data))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_coordinator_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("verb", ["devnet", "coordinator"])
def test_verbs_are_registered(verb: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "omniplus", verb, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and f"omniplus {verb}" in out.stdout
