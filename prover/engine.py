"""Python side of the long-lived node curve engine (prover/js/engine.js).

Why a worker: node start-up plus building snarkjs' wasm curve costs a few hundred ms per
call, more than a whole small proof; one process per Python process, kept alive, makes
proving and the collaborative prover's MSMs/FFTs cost only their compute and a pipe copy.

Framing (both directions; integers little-endian)::

    u32 header_len | u64 payload_len | header (UTF-8 JSON) | payload (raw bytes)

Requests carry ``{"id", "cmd", ...args}``; replies ``{"id", "ok": true, ...}`` or
``{"id", "ok": false, "error": msg}`` (raised here as ToolError). Field elements travel as
32-byte little-endian canonical integers; Montgomery conversions happen in node.

API
---
``NodeWorker`` — the process and the framing; ``worker()`` returns the per-process one
(started lazily, stopped at exit, restarted on the next call after a crash).

``SnarkjsEngine(zkey_path)`` — the engine API the provers call, bound to one zkey:

* ``msm_g1(section, scalars, start=0) -> G1`` — Σ scalars[i]·P[start+i] over zkey section
  5 (A), 6 (B1), 8 (C/L, first point = wire nPublic+1) or 9 (H); ``msm_g2`` over 7 (B2).
  Scalars are any ints (reduced mod r); points come back affine ``(x, y)`` / ``((x0, x1),
  (y0, y1))``, infinity ``None`` (DESIGN.md's conventions). A wrong section or range raises
  ProofError like prover.groth16_prove.NativeEngine; failures inside node raise ToolError.
* ``fft(values)`` / ``ifft(values)`` — snarkjs' ``Fr.fft``: natural order,
  ``out_k = Σ_i a_i ω^(ik)`` with ω = w[log n]; ``ifft`` is the exact inverse (includes 1/n).
* ``prove(witness) -> (proof_json, public)`` — snarkjs ``groth16.prove`` on the cached zkey.
* ``n_vars``, ``n_public``, ``domain_size``, ``n_points(section)``.

The zkey stays in node's memory, keyed by path, size and mtime (a rewritten file is loaded
again); a missing zkey raises SetupError.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import struct
import subprocess
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omniplus.core import resources as paths
from omniplus.core.errors import ProofError, SetupError, ToolError
from omniplus.prover.field import R, fr_to_bytes, ints_from_bytes

N8 = 32

G1 = tuple[int, int]
G2 = tuple[tuple[int, int], tuple[int, int]]

_PREFIX = struct.Struct("<IQ")
_MAX_HEADER = 1 << 24  # a larger reply header means stdout is out of step with the framing
G1_SECTIONS = (5, 6, 8, 9)
G2_SECTIONS = (7,)
ENGINE_JS = paths.JS_DIR / "engine.js"


def encode_scalars(values: Iterable[int]) -> bytes:
    """Field elements → concatenated 32-byte LE canonical values (prover/field.py's codec)."""
    return fr_to_bytes(list(values))


def decode_scalars(data: bytes | memoryview) -> list[int]:
    """The inverse of encode_scalars."""
    return ints_from_bytes(data, R, what="node worker scalars")


class NodeWorker:
    """One node process running engine.js; calls are serialised by a lock.

    If the process dies, the call in flight raises ToolError (with node's stderr tail) and
    the next call starts a fresh process; zkeys registered through ``load_zkey`` are loaded
    again transparently.
    """

    def __init__(self, script: Path = ENGINE_JS, node: str = "node") -> None:
        self.script = Path(script)
        self.node = node
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._next_id = 0
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._zkeys: dict[str, tuple[int, dict, tuple[int, int]]] = {}  # path → (id, info, (size, mtime))
        self._next_zkey = 0
        self._loaded: set[int] = set()  # zkey ids loaded in the current process
        self._owner = os.getpid()  # after a fork the child must not share the parent's pipes
        self._drainer: threading.Thread | None = None

    # -- process management -------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The node process id, or None when not running."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start node if it is not running (no-op otherwise)."""
        with self._lock:
            if self._owner != os.getpid():
                self._proc, self._owner = None, os.getpid()  # the parent's worker: leave it alone
                self._loaded.clear()
            if self._proc is not None and self._proc.poll() is None:
                return
            self._discard()
            if not self.script.exists():
                raise ToolError(f"node engine script {self.script} is missing")
            env = dict(os.environ)
            env["NODE_PATH"] = str(paths.NODE_MODULES)
            try:
                proc = subprocess.Popen(
                    [self.node, str(self.script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, env=env, cwd=str(paths.ROOT),
                )
            except FileNotFoundError as exc:
                raise ToolError(f"node engine: {self.node} not found") from exc
            self._stderr.clear()
            self._drainer = threading.Thread(target=self._drain, args=(proc,), daemon=True)
            self._drainer.start()
            self._proc = proc
            self._loaded.clear()

    def _drain(self, proc: subprocess.Popen) -> None:
        """Keep node's stderr flowing (a full pipe would block it) and remember its tail."""
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line.decode(errors="replace").rstrip())

    def stop(self, timeout: float = 5.0) -> None:
        """Close node's stdin (it terminates its threads and exits); kill it if it lingers."""
        with self._lock:
            proc = self._proc
            self._proc = None
            self._loaded.clear()
            if proc is None:
                return
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            finally:
                if proc.stdout is not None:
                    proc.stdout.close()

    def _discard(self) -> None:
        """Forget a dead process (reap it, close its pipes)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def _died(self, what: str) -> ToolError:
        """The error for a worker that stopped answering; waits briefly so its last words are read."""
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if self._drainer is not None:
            self._drainer.join(timeout=1)
        self._discard()
        self._loaded.clear()
        tail = " | ".join(list(self._stderr)[-8:])
        return ToolError(f"node engine died during {what}" + (f": {tail}" if tail else ""))

    # -- calls --------------------------------------------------------------------------
    def call(self, cmd: str, payload: bytes = b"", **args: Any) -> tuple[dict, bytes]:
        """Send one request and return (reply header, reply payload); ToolError on an error frame."""
        with self._lock:
            self.start()
            if cmd in ("prove", "msm_g1", "msm_g2", "msm_at") and "zkey" in args:
                self._ensure_loaded(args["zkey"])
            return self._roundtrip(cmd, payload, args)

    def _roundtrip(self, cmd: str, payload: bytes, args: dict) -> tuple[dict, bytes]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        self._next_id += 1
        rid = self._next_id
        header = json.dumps({"id": rid, "cmd": cmd, **args}).encode()
        try:
            proc.stdin.write(_PREFIX.pack(len(header), len(payload)))
            proc.stdin.write(header)
            if payload:
                proc.stdin.write(payload)
            proc.stdin.flush()
            prefix = proc.stdout.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                raise self._died(cmd)
            hlen, plen = _PREFIX.unpack(prefix)
            if hlen > _MAX_HEADER:
                self._discard()
                raise ToolError(f"node engine: stray output on stdout during {cmd} (framing lost)")
            head = proc.stdout.read(hlen)
            body = proc.stdout.read(plen) if plen else b""
            if len(head) < hlen or len(body) < plen:
                raise self._died(cmd)
        except (BrokenPipeError, ConnectionResetError, ValueError) as exc:
            raise self._died(cmd) from exc
        reply = json.loads(head)
        if reply.get("id") != rid:
            self._discard()
            raise ToolError(f"node engine: reply {reply.get('id')} to request {rid} (protocol out of step)")
        if not reply.get("ok"):
            raise ToolError(f"node engine {cmd}: {reply.get('error', 'unknown error')}")
        return reply, body

    def load_zkey(self, path: str | os.PathLike) -> tuple[int, dict]:
        """Register a zkey and load it into node; returns (id, header info).

        Keyed by resolved path, size and mtime: a rewritten zkey (a new phase-2 contribution)
        is loaded again under a new id instead of proving against the stale copy in memory."""
        key = str(Path(path).resolve())
        try:
            st = os.stat(key)
        except OSError as exc:
            raise SetupError(f"{path}: cannot read zkey ({exc.strerror or exc})") from exc
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            entry = self._zkeys.get(key)
            if entry is not None and entry[2] != stamp:
                self.forget_zkey(key)
                entry = None
            if entry is None:
                self._next_zkey += 1
                zid = self._next_zkey
                self.start()
                reply, _ = self._roundtrip("load_zkey", b"", {"zkey": zid, "path": key})
                self._loaded.add(zid)
                info = {k: reply[k] for k in ("n_vars", "n_public", "domain_size")}
                info["points"] = {int(s): n for s, n in reply["points"].items()}
                entry = self._zkeys[key] = (zid, info, stamp)
            else:
                self._ensure_loaded(entry[0])
            return entry[0], entry[1]

    def _ensure_loaded(self, zid: int) -> None:
        if zid in self._loaded:
            return
        for key, (known, _, _) in self._zkeys.items():
            if known == zid:
                self.start()
                self._roundtrip("load_zkey", b"", {"zkey": zid, "path": key})
                self._loaded.add(zid)
                return
        raise ToolError(f"node engine: zkey id {zid} was never registered")

    def forget_zkey(self, path: str | os.PathLike) -> None:
        """Drop a zkey from node's memory (and the registry), e.g. after it was rewritten."""
        key = str(Path(path).resolve())
        with self._lock:
            entry = self._zkeys.pop(key, None)
            if entry is not None and entry[0] in self._loaded:
                self._loaded.discard(entry[0])
                if self.pid is not None:
                    self._roundtrip("unload_zkey", b"", {"zkey": entry[0]})

    def ping(self) -> dict:
        """Round trip without work; returns node's pid, version and wasm thread count."""
        reply, _ = self.call("ping")
        return {k: reply[k] for k in ("pid", "node", "threads")}

    def fft(self, values: Sequence[int], inverse: bool = False) -> list[int]:
        """snarkjs' Fr.fft / Fr.ifft on canonical field elements (length a power of two)."""
        _, body = self.call("ifft" if inverse else "fft", encode_scalars(values))
        return decode_scalars(body)


_worker: NodeWorker | None = None
_worker_lock = threading.Lock()


def worker() -> NodeWorker:
    """The per-process node worker (created lazily; stopped at interpreter exit)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = NodeWorker()
            atexit.register(_worker.stop)
        return _worker


def verify_in_node(vkey: dict, public: Sequence[int], proof_json: dict, node: NodeWorker | None = None) -> bool:
    """snarkjs groth16.verify (its own verifier, wasm pairings) in a node worker."""
    reply, _ = (node or worker()).call("verify", vkey=vkey, public=[str(int(v)) for v in public], proof=proof_json)
    return bool(reply["valid"])


def _point(raw: Any) -> Any:
    if raw is None:
        return None
    x, y = raw
    if isinstance(x, list):
        return ((int(x[0]), int(x[1])), (int(y[0]), int(y[1])))
    return (int(x), int(y))


class SnarkjsEngine:
    """MSMs over one zkey's sections, FFTs and proving, run in the shared node worker.

    The collaborative prover calls these on secret shares; the native engine exposes the same
    methods, so the prover does not care which one does the arithmetic.
    """

    name = "snarkjs"

    def __init__(self, zkey: str | os.PathLike, node: NodeWorker | None = None) -> None:
        self.zkey_path = Path(zkey)
        self._worker = node or worker()
        self._id, self._info = self._worker.load_zkey(self.zkey_path)

    def _zkey_id(self) -> int:
        """The worker's id for this zkey (re-loaded if the file changed or the worker restarted)."""
        self._id, self._info = self._worker.load_zkey(self.zkey_path)
        return self._id

    @property
    def n_vars(self) -> int:
        return int(self._info["n_vars"])

    @property
    def n_public(self) -> int:
        return int(self._info["n_public"])

    @property
    def domain_size(self) -> int:
        return int(self._info["domain_size"])

    def n_points(self, section: int) -> int:
        """How many points zkey section 5..9 holds."""
        return int(self._info["points"][section])

    def _check(self, what: str, sections: tuple[int, ...], section: int, count: int, start: int) -> None:
        """Same argument errors (ProofError) as the native engine, before any bytes move."""
        if section not in sections:
            raise ProofError(f"{what}: no {what[-2:].upper()} points in zkey section {section}")
        total = self.n_points(section)
        if start < 0 or start + count > total:
            raise ProofError(f"{what}: section {section} has {total} points, "
                             f"asked for {start}..{start + count}")

    def msm_g1(self, section: int, scalars: Sequence[int], start: int = 0) -> G1 | None:
        """Σ scalars[i]·P[start+i] over G1 section 5, 6, 8 or 9; None for infinity."""
        zid = self._zkey_id()
        self._check("msm_g1", G1_SECTIONS, section, len(scalars), start)
        reply, _ = self._worker.call("msm_g1", encode_scalars(scalars), zkey=zid,
                                     section=section, start=start)
        return _point(reply["point"])

    def msm_g2(self, section: int, scalars: Sequence[int], start: int = 0) -> G2 | None:
        """Σ scalars[i]·P[start+i] over G2 section 7; None for infinity."""
        zid = self._zkey_id()
        self._check("msm_g2", G2_SECTIONS, section, len(scalars), start)
        reply, _ = self._worker.call("msm_g2", encode_scalars(scalars), zkey=zid,
                                     section=section, start=start)
        return _point(reply["point"])

    def _msm_at(self, what: str, sections: tuple[int, ...], section: int, indices: Sequence[int],
                scalars: Sequence[int]) -> Any:
        zid = self._zkey_id()
        if section not in sections:
            raise ProofError(f"{what}: no {what[-5:-3].upper()} points in zkey section {section}")
        if len(indices) != len(scalars):
            raise ProofError(f"{what}: {len(indices)} indices for {len(scalars)} scalars")
        total = self.n_points(section)
        if indices and not 0 <= min(indices) <= max(indices) < total:
            raise ProofError(f"{what}: section {section} has {total} points, asked for indices "
                             f"{min(indices)}..{max(indices)}")
        payload = struct.pack(f"<{len(indices)}I", *indices) + encode_scalars(scalars)
        reply, _ = self._worker.call("msm_at", payload, zkey=zid, section=section, count=len(indices))
        return _point(reply["point"])

    def msm_g1_at(self, section: int, indices: Sequence[int], scalars: Sequence[int]) -> G1 | None:
        """Σ scalars[k]·P[indices[k]] over G1 section 5, 6, 8 or 9: a sparse MSM (only those points)."""
        return self._msm_at("msm_g1_at", G1_SECTIONS, section, indices, scalars)

    def msm_g2_at(self, section: int, indices: Sequence[int], scalars: Sequence[int]) -> G2 | None:
        """Σ scalars[k]·P[indices[k]] over G2 section 7."""
        return self._msm_at("msm_g2_at", G2_SECTIONS, section, indices, scalars)

    def verify(self, vkey: dict, public: Sequence[int], proof_json: dict) -> bool:
        """snarkjs groth16.verify in the worker (wasm pairings: milliseconds, not Python's seconds)."""
        return verify_in_node(vkey, public, proof_json, self._worker)

    def pairing_eq(self, pairs: Sequence[tuple[Any, Any]]) -> bool:
        """Π e(P_i, Q_i) == 1 in the worker (wasm: milliseconds; Python's pairing ≈ 0.4 s each)."""
        def g1(p: Any) -> Any:
            return None if p is None else [str(p[0]), str(p[1])]

        def g2(q: Any) -> Any:
            return None if q is None else [[str(q[0][0]), str(q[0][1])], [str(q[1][0]), str(q[1][1])]]

        reply, _ = self._worker.call("pairing_eq", pairs=[[g1(p), g2(q)] for p, q in pairs])
        return bool(reply["equal"])

    def fft(self, values: Sequence[int]) -> list[int]:
        """Forward NTT, natural order: out_k = Σ_i a_i ω^(ik), ω = w[log n] of snarkjs' table."""
        return self._worker.fft(values)

    def ifft(self, values: Sequence[int]) -> list[int]:
        """Inverse of fft (includes the 1/n factor)."""
        return self._worker.fft(values, inverse=True)

    def prove(self, witness: Sequence[int]) -> tuple[dict, list[int]]:
        """snarkjs groth16.prove on this zkey; returns (proof.json dict, public signals)."""
        reply, _ = self._worker.call("prove", encode_scalars(witness), zkey=self._zkey_id())
        return reply["proof"], [int(v) for v in reply["public"]]
