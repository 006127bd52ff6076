"""The public Python API behind the CLI: prove a batch statement and verify it three ways.

Everything here composes the lower layers (prover/, contracts/, servers/) and adds the user-facing
guarantees: clear errors, progress on stderr, and output directories that are either complete or
absent.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omniplus.core.errors import InputError, ProofError
from omniplus.core.log import progress

log = progress  # progress lines on stderr, so stdout stays machine-readable (--json)


@dataclass
class ProveResult:
    out: Path
    backend: str
    seconds: float
    public: list[int]


@dataclass
class VerifyReport:
    python: bool | None = None
    snarkjs: bool | None = None
    onchain: bool | None = None
    verify_gas: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        checks = [v for v in (self.python, self.snarkjs, self.onchain) if v is not None]
        return bool(checks) and all(checks)

    def to_json(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def statement(setup_dir: Path, gradients: Path, context=None):
    """Load the setup, quantise the gradients and derive the public inputs [ctx, W…, S…] from the
    context (S: the packed contribution scores of the rows)."""
    from omniplus.prover.binding import BindingContext, public_inputs
    from omniplus.prover.quantize import load_gradients, quantize
    from omniplus.prover.trusted_setup import SetupDir

    setup = SetupDir.load(Path(setup_dir))
    ctx = context or BindingContext()
    scale_bits, rows = load_gradients(Path(gradients))
    q_rows = quantize(rows, scale_bits, setup.params)
    words, public = public_inputs(setup.params, ctx, q_rows)
    return setup, ctx, q_rows, words, public


def prove(setup_dir: Path, gradients: Path, backend: str, out: Path, context=None) -> ProveResult:
    """Make one Groth16 proof of the batch statement with the chosen backend; write out/ atomically."""
    from omniplus.prover.backends import ProveJob, get_backend
    from omniplus.prover.proof import write_proof_dir
    from omniplus.prover.witness import circuit_inputs, full_witness

    engine = get_backend(backend)
    setup, ctx, q_rows, words, signals = statement(setup_dir, gradients, context)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"output directory {out} exists and is not empty")
    log(f"[prove] {backend}: N={setup.params.batch} d={setup.params.dims} k={setup.params.bits}")
    witness = full_witness(setup, q_rows, signals)
    with tempfile.TemporaryDirectory(prefix="omniplus-prove-") as work:
        job = ProveJob(zkey=setup.zkey, wasm=setup.wasm, witness=witness,
                       input_json=circuit_inputs(setup.params, q_rows, signals), workdir=Path(work))
        t0 = time.perf_counter()
        proof, public = engine.prove(job)
        seconds = time.perf_counter() - t0
    if [int(x) for x in public] != signals:
        raise ProofError(f"{backend} backend returned other public signals than [ctx, W_0..W_(M-1)]")
    meta = {
        "backend": backend,
        "seconds": round(seconds, 4),
        "context": ctx.to_json() if hasattr(ctx, "to_json") else asdict(ctx),
        "words": [str(w) for w in words],
        "setup": str(Path(setup_dir).resolve()),
    }
    write_proof_dir(out, proof, public, meta)
    log(f"[prove] {backend}: proof written to {out} in {seconds:.2f}s")
    return ProveResult(out=out, backend=backend, seconds=seconds, public=[int(x) for x in public])


def verify(setup_dir: Path, proof_dir: Path, onchain: bool = False, rpc: str | None = None,
           key: str | None = None) -> VerifyReport:
    """Check one proof with the Python verifier, snarkjs' verifier and (optionally) the Solidity verifier."""
    from omniplus.core.errors import SetupError
    from omniplus.core.jsonfile import read_json
    from omniplus.prover.groth16_verify import verify as py_verify
    from omniplus.prover.proof import read_proof_dir
    from omniplus.prover.trusted_setup import SetupDir

    setup = SetupDir.load(Path(setup_dir))
    vkey = read_json(setup.vkey, SetupError, what="verification key")
    n_public = vkey.get("nPublic") if isinstance(vkey, dict) else None
    if type(n_public) is not int or not 0 <= n_public <= 1024:
        raise SetupError(f"verification key {setup.vkey}: nPublic missing or not a small integer")
    proof, public = read_proof_dir(Path(proof_dir), n_public=n_public)  # count checked before snarkjs
    report = VerifyReport()

    t0 = time.perf_counter()
    report.python = py_verify(vkey, proof, public)
    report.seconds["python"] = round(time.perf_counter() - t0, 3)
    log(f"[verify] python verifier: {'valid' if report.python else 'INVALID'}")

    # snarkjs reads the files as written; re-serialise so what it checks is exactly what we parsed.
    with tempfile.TemporaryDirectory(prefix="omniplus-verify-") as work:
        from omniplus.prover.proof import proof_to_json

        pj, pub = Path(work) / "proof.json", Path(work) / "public.json"
        pj.write_text(json.dumps(proof_to_json(proof)))
        pub.write_text(json.dumps([str(x) for x in public]))
        t0 = time.perf_counter()
        from omniplus.prover.snarkjs_verify import snarkjs_verify

        report.snarkjs = snarkjs_verify(setup.vkey, pub, pj)
        report.seconds["snarkjs"] = round(time.perf_counter() - t0, 3)
    log(f"[verify] snarkjs verifier: {'valid' if report.snarkjs else 'INVALID'}")

    if onchain:
        from omniplus.contracts.verifier import verify_onchain

        t0 = time.perf_counter()
        report.onchain, report.verify_gas = verify_onchain(setup, proof, public, rpc=rpc, key=key)
        report.seconds["onchain"] = round(time.perf_counter() - t0, 3)
        log(f"[verify] on-chain verifier: {'valid' if report.onchain else 'INVALID'} "
            f"(verify tx gas {report.verify_gas})")
    return report


def fresh_dir(path: Path) -> Path:
    """A new empty directory (tests and the demo use it for scratch output)."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def random_gradients(params, rows: int, scale_bits: int, seed: int | None = None) -> dict:
    """A gradients document of random updates inside the range and norm bounds of `params`."""
    import random

    from omniplus.prover.samples import valid_row

    rng = random.Random(seed if seed is not None else secrets.randbits(32))
    return {"scale_bits": scale_bits,
            "gradients": [[q / 2**scale_bits for q in valid_row(params, rng)] for _ in range(rows)]}


@dataclass
class ChunkProof:
    """One chunk's proof: public signals [ctx_i, W…, S…], the words, the prover's seconds and the
    chunk's partial contribution scores (slot order; a payee's score is the sum over chunks)."""

    index: int
    proof: Any
    words: list[int]
    public: list[int]
    seconds: float
    scores: list[int] = field(default_factory=list)


def _prove_chunk(setup_dir: str, backend: str, index: int, rows: list[list[int]], signals: list[int]
                 ) -> tuple[dict, list[int], float]:
    """Prove one chunk (module level, so a process pool can run it); returns (proof JSON, public, s)."""
    from omniplus.prover.backends import ProveJob, get_backend
    from omniplus.prover.proof import proof_to_json
    from omniplus.prover.trusted_setup import SetupDir
    from omniplus.prover.witness import circuit_inputs, full_witness

    setup = SetupDir.load(Path(setup_dir))
    engine = _BACKENDS.setdefault(backend, get_backend(backend))
    with tempfile.TemporaryDirectory(prefix=f"omniplus-chunk{index}-") as work:
        job = ProveJob(zkey=setup.zkey, wasm=setup.wasm, witness=full_witness(setup, rows, signals),
                       input_json=circuit_inputs(setup.params, rows, signals), workdir=Path(work))
        t0 = time.perf_counter()
        proof, public = engine.prove(job)
        seconds = time.perf_counter() - t0
    if [int(x) for x in public] != signals:
        raise ProofError(f"chunk {index}: {backend} returned other public signals than [ctx_{index}, W…]")
    return proof_to_json(proof), [int(x) for x in public], seconds


_BACKENDS: dict[str, Any] = {}  # one backend (and its node worker) per process, reused across chunks


def prove_chunks(setup_dir: Path, chunk_rows: Sequence[Sequence[Sequence[int]]], context: Any, backend: str,
                 jobs: int = 1) -> list[ChunkProof]:
    """One proof per chunk of a batch (prover.chunks.split_rows gives chunk_rows), chunk i bound to
    ctx_i = chunk_ctx(context, i, K). `jobs` > 1 proves chunks in that many processes at once
    (each loads the zkey; the snarkjs worker already uses every core inside one MSM)."""
    from concurrent.futures import ProcessPoolExecutor

    from omniplus.prover.binding import chunk_public_signals, pack_aggregate, pack_scores
    from omniplus.prover.contribution import scores
    from omniplus.prover.proof import proof_from_json
    from omniplus.prover.trusted_setup import SetupDir

    setup = SetupDir.load(Path(setup_dir))
    k = len(chunk_rows)
    work = []
    for i, rows in enumerate(chunk_rows):
        words = pack_aggregate(setup.params, [sum(col) for col in zip(*rows, strict=True)])
        part = scores(rows)
        sig = chunk_public_signals(context, i, k, words, pack_scores(setup.params, part))
        work.append((i, [list(r) for r in rows], words, sig, part))
    if jobs <= 1:
        done = [_prove_chunk(str(setup.path), backend, i, rows, sig) for i, rows, _w, sig, _s in work]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_prove_chunk, str(setup.path), backend, i, rows, sig)
                       for i, rows, _w, sig, _s in work]
            done = [f.result() for f in futures]
    return [ChunkProof(i, proof_from_json(p), words, public, s, part)
            for (i, _r, words, _sig, part), (p, public, s) in zip(work, done, strict=True)]
