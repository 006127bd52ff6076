"""The devnet's start-up wait and round timeouts scale with the circuit and the load (a paper-size zkey
takes minutes to load on a shared machine), can be set by the operator, and the wait says what it waits for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omniplus.core.errors import OmniplusError
from omniplus.devnet import Devnet, DevnetOptions, size_factor

PAPER = dict(batch=4, dims=5724, bits=9, norm_bound=60_000_000)


def test_fixed_scale_by_default_and_auto_scale_grows_with_the_circuit(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIPLUS_TIMEOUT_SCALE", raising=False)
    monkeypatch.delenv("OMNIPLUS_SERVER_START_TIMEOUT", raising=False)
    assert Devnet(tmp_path / "a", DevnetOptions(**PAPER)).timeout_scale() == 1.0  # the fault tests' timeouts
    net = Devnet(tmp_path / "b", DevnetOptions(timeout_scale=None, **PAPER))
    n = net.constraints
    assert n == 252_234 and size_factor(n) > 3.4
    assert net.timeout_scale() >= size_factor(n)
    assert net.start_timeout() >= 60 * size_factor(n)  # the old fixed 60 s, scaled
    small = Devnet(tmp_path / "c", DevnetOptions())
    assert small.start_timeout() < net.start_timeout()


def test_the_operator_overrides_and_bad_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Devnet(tmp_path, DevnetOptions(timeout_scale=None, **PAPER))
    monkeypatch.setenv("OMNIPLUS_TIMEOUT_SCALE", "7.5")
    assert net.timeout_scale() == 7.5 and net.start_timeout() == 450.0
    monkeypatch.setenv("OMNIPLUS_SERVER_START_TIMEOUT", "1200")
    assert net.start_timeout() == 1200.0
    for bad in ("fast", "0", "-2"):
        monkeypatch.setenv("OMNIPLUS_TIMEOUT_SCALE", bad)
        with pytest.raises(OmniplusError, match="OMNIPLUS_TIMEOUT_SCALE"):
            net.timeout_scale()


def test_the_wait_reports_what_the_server_is_doing(tmp_path: Path) -> None:
    net = Devnet(tmp_path, DevnetOptions())
    assert "no log line yet" in net._server_doing(1)
    log = tmp_path / "server-1.log"
    log.write_text(json.dumps({"event": "started"}) + "\n"
                   + json.dumps({"event": "loading_engine", "zkey_bytes": 150 * 2**20}) + "\n")
    assert net._server_doing(1) == "loading its prover engine (zkey 150 MiB)"
    log.write_text(log.read_text() + json.dumps({"event": "engine_loaded", "seconds": 12.5}) + "\n")
    assert "engine_loaded" in net._server_doing(1)
