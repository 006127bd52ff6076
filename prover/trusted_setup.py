"""The Groth16 trusted setup for one CircuitParams, written as a self-checking directory.

Why a directory with a manifest: every later step (prove, MPC, deploy) must use the *same*
circuit, zkey and verifier. params.json records the statement and the sha256 of circuit.r1cs,
and SetupDir.load refuses a directory whose files are missing or do not match it.

Two ways to the initial key (docs/DESIGN.md, "Setup directory"):
- development (no --ptau): prover/js/zkey_dev.js computes the key straight from fresh τ, α, β, γ, δ
  (seconds to minutes instead of the ptau + `snarkjs groth16 setup` route's tens of minutes); this
  machine knew the toxic waste, so params.json records "development": true.
- ceremony (--ptau FILE): the ptau is checked (prover/ptau.py check_ptau) before `snarkjs groth16
  setup` reads it, and the final zkey is checked against it with `snarkjs zkey verify` before the
  setup directory appears.

Phase 2: one `snarkjs zkey contribute` per named operator, each with fresh randomness (snarkjs
mixes 64 bytes from the OS with the entropy text); the setup is sound if any one of them
discarded theirs. The entropy text goes to snarkjs on stdin, not argv, so `ps` does not show it.
Layout: docs/DESIGN.md, "Setup directory".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omniplus.circuits.build import check_blocks, compile_circuit, r1cs_header
from omniplus.circuits.params import CircuitParams
from omniplus.core import resources as paths
from omniplus.core.errors import SetupError, ToolError
from omniplus.core.jsonfile import read_json
from omniplus.core.tools import run_tool
from omniplus.prover.ptau import check_ptau, check_ptau_header, required_power
from omniplus.prover.solidity_verifier import verifier_source
from omniplus.prover.zkey import read_zkey

FILES = {
    "params": "params.json",
    "circom": "circuit.circom",
    "r1cs": "circuit.r1cs",
    "sym": "circuit.sym",
    "wasm": "circuit_js/circuit.wasm",
    "zkey": "circuit_final.zkey",
    "vkey": "verification_key.json",
    "verifier_sol": "Groth16Verifier.sol",
    "contributions": "contributions.json",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

Progress = Callable[[str, float], None]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class SetupDir:
    """A validated setup directory: file paths plus the circuit parameters."""

    path: Path
    params: CircuitParams
    manifest: dict

    @property
    def dir(self) -> Path:
        return self.path

    def file(self, key: str) -> Path:
        return self.path / FILES[key]

    circom = property(lambda self: self.file("circom"))
    r1cs = property(lambda self: self.file("r1cs"))
    sym = property(lambda self: self.file("sym"))
    wasm = property(lambda self: self.file("wasm"))
    zkey = property(lambda self: self.file("zkey"))
    vkey = property(lambda self: self.file("vkey"))
    verifier_sol = property(lambda self: self.file("verifier_sol"))
    contributions_file = property(lambda self: self.file("contributions"))
    params_file = property(lambda self: self.file("params"))

    def contributions(self) -> list[dict]:
        return json.loads(self.contributions_file.read_text())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SetupDir:
        """Check every file is there and params.json matches circuit.r1cs; SetupError otherwise."""
        path = Path(path)
        if not path.is_dir():
            raise SetupError(f"setup directory {path} does not exist (run `omniplus setup`)")
        for rel in FILES.values():
            if not (path / rel).is_file():
                raise SetupError(f"setup directory {path} is incomplete: {rel} is missing")
        try:
            manifest = read_json(path / FILES["params"], SetupError)
            params = CircuitParams.from_json(manifest)
        except (ValueError, TypeError) as exc:
            raise SetupError(f"{path / FILES['params']} is malformed: {exc}") from exc
        want = manifest.get("r1cs_sha256")
        if not want or sha256_file(path / FILES["r1cs"]) != want:
            raise SetupError(
                f"{path / FILES['r1cs']} does not match {FILES['params']} (r1cs_sha256 differs): "
                "the directory mixes files from different setups"
            )
        try:
            contribs = read_json(path / FILES["contributions"], SetupError)
            if not isinstance(contribs, list):
                raise ValueError("not a list")
            # a ceremony key without a phase-2 contribution has delta = 1 (public); a development
            # key's delta is fresh toxic waste like tau, so it may have none
            if not contribs and manifest.get("development") is not True:
                raise ValueError("no phase-2 contribution recorded")
        except ValueError as exc:
            raise SetupError(f"{path / FILES['contributions']} is malformed: {exc}") from exc
        return cls(path, params, manifest)


def _snarkjs(*args: str | os.PathLike, cwd: Path, what: str, input: bytes | None = None,
             timeout: float = 3600) -> str:
    proc = run_tool([paths.node_tool("snarkjs"), *args], cwd=cwd, what=what, timeout=timeout, input=input)
    return (proc.stdout or b"").decode(errors="replace")


def _parse_contribution_hash(out: str) -> str:
    """snarkjs prints 'Contribution Hash:' then four lines of 4 hex words; join them."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if "Contribution Hash" in line:
            words = re.findall(r"\b[0-9a-f]{8}\b", " ".join(lines[i + 1: i + 5]))
            if len(words) == 16:
                return "".join(words)
    raise SetupError("snarkjs zkey contribute did not print a contribution hash")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise SetupError(f"contributor name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    return name


def _contribute(src: Path, dst: Path, name: str, entropy: str | None, cwd: Path) -> str:
    """One phase-2 contribution src → dst; returns snarkjs' contribution hash (hex)."""
    text = entropy if entropy else secrets.token_hex(32)
    out = _snarkjs("zkey", "contribute", src, dst, f"--name={name}", cwd=cwd,
                   what=f"snarkjs zkey contribute ({name})", input=(text + "\n").encode())
    h = _parse_contribution_hash(out)
    _check_zkey(dst, _zkey_shape(src), f"snarkjs zkey contribute ({name})")
    return h


def _zkey_shape(path: Path) -> tuple[int, int, int]:
    z = read_zkey(path, points=False)
    return z.n_vars, z.n_public, z.domain_size


def _check_zkey(path: Path, shape: tuple[int, int, int], what: str) -> None:
    """snarkjs may exit 0 without writing a usable key (e.g. groth16 setup on a curve mismatch)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise SetupError(f"{what} wrote no zkey ({path.name})")
    got = _zkey_shape(path)
    if got != shape:
        raise SetupError(f"{what} wrote a zkey for (nVars, nPublic, domain) = {got}, expected {shape}")


def _circuit_shape(r1cs: Path) -> tuple[int, int, int]:
    """(nVars, nPublic, domain size) the circuit's zkey must have."""
    h = r1cs_header(r1cs)
    n_public = h["n_pub_out"] + h["n_pub_in"]
    return h["n_wires"], n_public, 1 << required_power(h["n_constraints"], n_public)


def _export(zkey: Path, vkey: Path, sol: Path, cwd: Path) -> None:
    _snarkjs("zkey", "export", "verificationkey", zkey, vkey, cwd=cwd,
             what="snarkjs zkey export verificationkey")
    n_public = _zkey_shape(zkey)[1]
    try:
        vk = json.loads(vkey.read_text())
        ok = vk.get("protocol") == "groth16" and vk.get("nPublic") == n_public and len(vk["IC"]) == n_public + 1
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise SetupError(f"snarkjs zkey export verificationkey wrote an unusable {vkey.name}")
    sol.write_text(verifier_source(vk))  # not snarkjs' template: it passes EIP-170 at ~240 inputs


def dev_zkey(r1cs: Path, out: Path, *, timeout: float = 7200) -> dict:
    """The development proving key for `r1cs`, computed directly from fresh toxic waste (zkey_dev.js).

    Returns zkey_dev.js' statistics; SetupError unless the file it wrote parses with the r1cs' shape.
    """
    proc = run_tool(["node", paths.JS_DIR / "zkey_dev.js", Path(r1cs).absolute(), Path(out).absolute()],
                    what="zkey_dev.js", timeout=timeout)
    try:
        stats = json.loads((proc.stdout or b"").decode(errors="replace").strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise SetupError("zkey_dev.js printed no statistics") from exc
    _check_zkey(Path(out), _circuit_shape(Path(r1cs)), "zkey_dev.js")
    return stats


def verify_zkey(r1cs: Path, ptau: Path, zkey: Path, cwd: Path) -> None:
    """`snarkjs zkey verify`: the key must derive from this ptau and r1cs; its text is checked, not
    just its exit code (snarkjs reports some failures with exit 0)."""
    try:
        out = _snarkjs("zkey", "verify", r1cs, ptau, zkey, cwd=cwd, what="snarkjs zkey verify")
    except ToolError as exc:
        raise SetupError(f"the setup's zkey does not verify against {ptau}: {exc}") from exc
    if "ZKey Ok!" not in out or "INVALID" in out.upper():
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise SetupError(f"the setup's zkey does not verify against {ptau}: {tail}")


class _Steps:
    """Times each step and reports it through the progress callback."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.times: dict[str, float] = {}

    def run(self, label: str, fn: Callable[[], object]) -> object:
        t = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t
        self.times[label] = round(dt, 3)
        if self.progress:
            self.progress(label, dt)
        return result


def run_setup(params: CircuitParams, out: str | os.PathLike, ptau: str | os.PathLike | None = None,
              contributors: Sequence[str] | None = None, *, progress: Progress | None = None) -> SetupDir:
    """Compile, make the initial key, contribute once per operator, export; all-or-nothing.

    Initial key: without `ptau`, zkey_dev.js from fresh toxic waste; with it, the checked ptau and
    `snarkjs groth16 setup`. `contributors` (default: none for a development key, whose delta is
    already fresh; ("dev",) with a ptau, where delta starts at 1) each add one `snarkjs zkey
    contribute`; with a ptau, `snarkjs zkey verify` checks the final key before it is kept.

    Everything is built in a temporary directory beside `out` and renamed onto it at the end
    (`out` may not exist yet or be an empty directory), so a failure leaves nothing half-written.
    """
    params = params.check()
    out = Path(out).absolute()
    if contributors is None:
        contributors = () if ptau is None else ("dev",)
    names = [_check_name(n) for n in contributors]
    if not names and ptau is not None:
        raise SetupError("a ceremony setup needs at least one phase-2 contributor (without one, delta is 1: "
                         "public)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SetupError(f"{out} exists and is not an empty directory: choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    steps = _Steps(progress)
    try:
        if ptau is not None:  # curve, layout and contributions: refuse before any circuit work
            check_ptau_header(Path(ptau))
        compiled = steps.run("compile circuit (circom2 --O2)", lambda: compile_circuit(params, tmp))
        check_blocks(params, compiled.r1cs, compiled.sym)
        shape = _circuit_shape(compiled.r1cs)
        n_public = shape[1]
        z0 = tmp / "circuit_0000.zkey"
        if ptau is None:
            stats = steps.run("development proving key from fresh toxic waste (zkey_dev.js)",
                              lambda: dev_zkey(compiled.r1cs, z0))
            ptau_record = {"file": None, "power": stats["power"], "development": True}
        else:
            ptau_path = Path(ptau).absolute()
            info = steps.run("check the powers of tau (curve, power, points, pairings)",
                             lambda: check_ptau(ptau_path, compiled.n_constraints, n_public))
            steps.run("snarkjs groth16 setup",
                      lambda: _snarkjs("groth16", "setup", compiled.r1cs, ptau_path, z0, cwd=tmp,
                                       what="snarkjs groth16 setup"))
            _check_zkey(z0, shape, "snarkjs groth16 setup")
            ptau_record = {"file": ptau_path.name, "power": info.power, "development": False,
                           "sha256": sha256_file(ptau_path)}
        contribs: list[dict] = []
        prev = z0
        for i, name in enumerate(names, start=1):
            nxt = tmp / f"circuit_{i:04d}.zkey"
            h = steps.run(f"phase-2 contribution {i}/{len(names)} ({name})",
                          lambda p=prev, n=nxt, nm=name: _contribute(p, n, nm, None, tmp))
            contribs.append({"name": name, "hash": h})
            prev.unlink()
            prev = nxt
        os.replace(prev, tmp / FILES["zkey"])
        if ptau is not None:
            steps.run("snarkjs zkey verify (zkey against r1cs and ptau)",
                      lambda: verify_zkey(compiled.r1cs, Path(ptau).absolute(), tmp / FILES["zkey"], tmp))
        steps.run("export verification key and Solidity verifier",
                  lambda: _export(tmp / FILES["zkey"], tmp / FILES["vkey"], tmp / FILES["verifier_sol"], tmp))
        (tmp / FILES["contributions"]).write_text(json.dumps(contribs, indent=2) + "\n")
        manifest = {
            **params.to_json(),
            "r1cs_sha256": sha256_file(compiled.r1cs),
            "n_constraints": compiled.n_constraints,
            "n_wires": compiled.n_wires,
            "n_public": n_public,
            "circom_optimization": compiled.optimize,
            "development": ptau is None,  # this machine knew the toxic waste
            "setup": "development (zkey_dev.js)" if ptau is None else "ceremony ptau + snarkjs groth16 setup",
            "ptau": ptau_record,
            "timings_s": steps.times,
        }
        (tmp / FILES["params"]).write_text(json.dumps(manifest, indent=2) + "\n")
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SetupDir.load(out)


def contribute(setup_dir: str | os.PathLike | SetupDir, name: str, entropy: str | None = None, *,
               progress: Progress | None = None) -> str:
    """Add one phase-2 contribution to an existing setup; returns its hash.

    The new zkey, verification key and verifier are made beside the old ones and then each is
    swapped in with an atomic rename (zkey last but one, contributions.json last), so a failure
    before the swaps leaves the setup exactly as it was.
    """
    setup = setup_dir if isinstance(setup_dir, SetupDir) else SetupDir.load(setup_dir)
    name = _check_name(name)
    d = setup.path
    work = Path(tempfile.mkdtemp(prefix=".contribute-", dir=d))
    steps = _Steps(progress)
    try:
        new_zkey = work / FILES["zkey"]
        h = steps.run(f"phase-2 contribution ({name})",
                      lambda: _contribute(setup.zkey, new_zkey, name, entropy, work))
        steps.run("export verification key and Solidity verifier",
                  lambda: _export(new_zkey, work / FILES["vkey"], work / FILES["verifier_sol"], work))
        contribs = setup.contributions() + [{"name": name, "hash": h}]
        (work / FILES["contributions"]).write_text(json.dumps(contribs, indent=2) + "\n")
        for key in ("vkey", "verifier_sol", "zkey", "contributions"):
            os.replace(work / FILES[key], d / FILES[key])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return h
