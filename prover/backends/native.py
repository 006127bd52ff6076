"""The native backend: the pure-Python Groth16 prover (prover/groth16_prove.py) from the Python
witness. Slowest engine, but no node process and every step inspectable — the reference the
other backends and the collaborative prover are checked against."""

from __future__ import annotations

import os
from typing import Any

from omniplus.prover.backends.base import ProveJob
from omniplus.prover.groth16_prove import NativeEngine, prove
from omniplus.prover.proof import Proof
from omniplus.prover.zkey import Zkey, read_zkey


class Backend:
    """ProverBackend "native"; caches the parsed zkey (parsing is a noticeable share of a proof)."""

    name = "native"

    def __init__(self, rng: Any = None) -> None:
        self.rng = rng
        self._zkey: Zkey | None = None
        self._zkey_key: tuple[str, int, int] | None = None
        self.timings: dict[str, float] = {}

    def zkey(self, path: Any) -> Zkey:
        """The parsed zkey for path, re-read when the file changes."""
        st = os.stat(path)
        key = (str(path), st.st_mtime_ns, st.st_size)
        if self._zkey is None or self._zkey_key != key:
            self._zkey = read_zkey(path)
            self._zkey_key = key
        return self._zkey

    def engine(self, path: Any) -> NativeEngine:
        """MSM/FFT engine over this zkey, for the collaborative prover's local work."""
        return NativeEngine(self.zkey(path))

    def prove(self, job: ProveJob) -> tuple[Proof, list[int]]:
        zk = self.zkey(job.zkey)
        self.timings = {}
        return prove(zk, job.witness, rng=self.rng, engine=NativeEngine(zk), timings=self.timings)
