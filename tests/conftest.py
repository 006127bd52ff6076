"""Shared fixtures. A real trusted setup (circom2 + development powers of tau + snarkjs) for a
small gradient circuit, made once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from omniplus.circuits.params import CircuitParams


def pytest_configure(config: pytest.Config) -> None:
    """Every test session gets its own cache folder (never ~/.cache): setups, development powers of
    tau and compiled contracts are made fresh, as on a new machine, and shared only within the session
    (server processes inherit the variable). OMNIPLUS_TEST_CACHE names a folder to reuse on purpose."""
    cache = os.environ.get("OMNIPLUS_TEST_CACHE") or tempfile.mkdtemp(prefix="omniplus-test-cache-")
    os.environ["OMNIPLUS_CACHE"] = cache
    if not os.environ.get("OMNIPLUS_TEST_CACHE"):
        config._omniplus_private_cache = cache  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's private cache (its setups can be hundreds of MB) goes when the session ends."""
    cache = getattr(config, "_omniplus_private_cache", None)
    if cache:
        shutil.rmtree(cache, ignore_errors=True)


# Small enough for the suite, big enough to be the real statement: 2 DOs, 40 coordinates of 6 bits,
# 2 packed words (so the Horner chain has a step), a norm bound that in-range rows can break.
SMALL_PARAMS = CircuitParams(batch=2, dims=40, bits=6, norm_bound=4000)


@pytest.fixture(scope="session")
def small_setup(tmp_path_factory):
    from omniplus.prover.trusted_setup import run_setup

    return run_setup(SMALL_PARAMS, tmp_path_factory.mktemp("setup") / "small", contributors=("alice", "bob"))
