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
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    """Load the setup, quantise the gradients and derive the public inputs [ctx, W…] from the context."""
    from omniplus.prover.binding import BindingContext, pack_aggregate, public_signals
    from omniplus.prover.quantize import load_gradients, quantize
    from omniplus.prover.trusted_setup import SetupDir

    setup = SetupDir.load(Path(setup_dir))
    ctx = context or BindingContext()
    scale_bits, rows = load_gradients(Path(gradients))
    q_rows = quantize(rows, scale_bits, setup.params)
    aggregate = [sum(col) for col in zip(*q_rows, strict=True)]
    words = pack_aggregate(setup.params, aggregate)
    return setup, ctx, q_rows, words, public_signals(ctx, words)


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
