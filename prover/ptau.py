"""Powers of tau for the Groth16 setup: a user-supplied ceremony file (checked), or a development file.

A ceremony file is checked before snarkjs ever reads it (check_ptau): BN254 curve, power, at least
one contribution, and (prover/js/ptau_check.js) every point used canonical, on the curve and in the
subgroup, τ, α, β ∉ {0, 1}, and the τ, α, β powers and Lagrange sections consistent (pairing checks
on random linear combinations). `omniplus setup` without --ptau does not use a ptau at all any more
(prover/js/zkey_dev.js); dev_ptau stays for benchmarks that run `snarkjs groth16 setup` themselves.

Development files come from prover/js/ptau_dev.js, which knows τ and writes the *prepared*
(Lagrange) sections directly: seconds instead of the ~29 minutes `snarkjs powersoftau prepare
phase2` needs at power 16. Whoever ran it could have kept τ, α, β, so a dev file is for tests and
demos; production passes a prepared file from a public ceremony (--ptau).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omniplus.core import resources as paths
from omniplus.core.errors import SetupError
from omniplus.core.tools import run_tool

MAX_DEV_POWER = 22  # beyond this the dev file is GBs; use a ceremony file
PREPARED_SECTIONS = (12, 13, 14, 15)
BN254_Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583
BLS12_381_Q = int("1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f624"
                  "1eabfffeb153ffffb9feffffffffaaab", 16)


@dataclass(frozen=True)
class PtauInfo:
    path: Path
    power: int
    ceremony_power: int
    sections: tuple[int, ...]
    n8: int = 32
    q: int = BN254_Q
    contributions: int = -1  # section 7's count (-1: no section 7)

    @property
    def prepared(self) -> bool:
        """Whether the Lagrange sections `zkey new` reads are present."""
        return all(s in self.sections for s in PREPARED_SECTIONS)


def required_power(n_constraints: int, n_public: int) -> int:
    """The power snarkjs' `zkey new` needs: the domain must exceed nConstraints + nPublic.

    snarkjs computes cirPower = ⌊log2(nConstraints + nPublic)⌋ + 1 and rejects ptau files with a
    smaller power (the H points use the ptau's Lagrange level cirPower + 1, which a prepared file
    of power cirPower has).
    """
    return max(1, (n_constraints + n_public).bit_length())


def ptau_info(path: Path) -> PtauInfo:
    """Read a .ptau header and its section list; SetupError if it is not a ptau file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"ptau":
                raise SetupError(f"{path} is not a powers-of-tau (.ptau) file")
            n_sections = struct.unpack_from("<I", head, 8)[0]
            sections: list[int] = []
            power = ceremony = n_contrib = -1
            n8 = q = 0
            for _ in range(n_sections):
                sh = f.read(12)
                if len(sh) < 12:
                    raise SetupError(f"{path} is truncated")
                stype, size = struct.unpack("<IQ", sh)
                sections.append(stype)
                if stype == 1:
                    body = f.read(size)
                    if len(body) < 4:
                        raise SetupError(f"{path}: header section too short")
                    n8 = struct.unpack_from("<I", body, 0)[0]
                    if n8 > 64 or len(body) != 4 + n8 + 8:
                        raise SetupError(f"{path}: malformed header section (n8 = {n8}, {len(body)} bytes)")
                    q = int.from_bytes(body[4:4 + n8], "little")
                    power, ceremony = struct.unpack_from("<II", body, 4 + n8)
                elif stype == 7 and n_contrib < 0:
                    body = f.read(min(size, 4))
                    if len(body) < 4:
                        raise SetupError(f"{path}: contributions section too short")
                    n_contrib = struct.unpack_from("<I", body, 0)[0]
                    f.seek(size - 4, os.SEEK_CUR)
                else:
                    f.seek(size, os.SEEK_CUR)
            end = f.tell()
    except OSError as exc:
        raise SetupError(f"cannot read ptau file {path}: {exc.strerror or exc}") from exc
    if power < 0:
        raise SetupError(f"{path} has no header section")
    if path.stat().st_size != end:
        raise SetupError(f"{path} is truncated or has trailing bytes")
    return PtauInfo(path, power, ceremony, tuple(sections), n8, q, n_contrib)


def dev_ptau_path(power: int) -> Path:
    return paths.cache_dir() / "ptau" / f"dev_{power}.ptau"


def dev_ptau(power: int, *, timeout: float = 1800) -> Path:
    """A prepared development ptau of exactly this power, made once and cached.

    Written to a temporary file in the cache folder and renamed, so a crash or a concurrent
    process never leaves a half-written file under the final name.
    """
    if not 1 <= power <= MAX_DEV_POWER:
        raise SetupError(f"development ptau power {power} is outside [1, {MAX_DEV_POWER}]")
    target = dev_ptau_path(power)
    if target.exists():
        try:
            info = ptau_info(target)
            if info.power == power and info.prepared:
                return target
        except SetupError:
            pass
        target.unlink(missing_ok=True)  # corrupt cache entry: rebuild
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".dev_{power}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        run_tool(["node", paths.JS_DIR / "ptau_dev.js", str(power), tmp], what="ptau_dev.js",
                 timeout=timeout)
        info = ptau_info(Path(tmp))
        if info.power != power or not info.prepared:
            raise SetupError(f"ptau_dev.js wrote an unexpected file (power {info.power})")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def check_ptau_header(user_ptau: Path) -> PtauInfo:
    """The cheap checks (curve, layout, contributions), before any circuit work; SetupError if refused."""
    user_ptau = Path(user_ptau)
    if not user_ptau.is_file():
        raise SetupError(f"ptau file {user_ptau} does not exist")
    info = ptau_info(user_ptau)
    if info.n8 == 48 and info.q == BLS12_381_Q:
        raise SetupError(f"{user_ptau} is a BLS12-381 powers of tau; this circuit needs BN254 (bn128)")
    if info.n8 != 32 or info.q != BN254_Q:
        raise SetupError(f"{user_ptau} is not over BN254 (bn128): its base field has {info.n8}-byte "
                         f"modulus {info.q:#x}")
    missing = [s for s in range(1, 8) if s not in info.sections]
    if missing:
        raise SetupError(f"{user_ptau} lacks section(s) {missing}: not a complete powers of tau")
    if not info.prepared:
        raise SetupError(
            f"{user_ptau} is not prepared for phase 2 (no Lagrange sections 12-15): run "
            "`snarkjs powersoftau prepare phase2` on it, or use a *_final.ptau from a ceremony"
        )
    if info.contributions < 1:
        raise SetupError(f"{user_ptau} records no contribution (tau = alpha = beta = 1 in a fresh "
                         "`powersoftau new` file): anyone could forge proofs; contribute first")
    return info


def check_ptau(user_ptau: Path, n_constraints: int, n_public: int, *, timeout: float = 3600) -> PtauInfo:
    """Every check before use: header (check_ptau_header), power, then the cryptographic checks of
    prover/js/ptau_check.js over the sections the setup reads. SetupError with the reason if refused."""
    info = check_ptau_header(user_ptau)
    need = required_power(n_constraints, n_public)
    if info.power < need:
        raise SetupError(
            f"{user_ptau} has power {info.power}, but this circuit ({n_constraints} constraints + "
            f"{n_public} public inputs) needs power >= {need}"
        )
    proc = run_tool(["node", paths.JS_DIR / "ptau_check.js", str(Path(user_ptau).absolute()), str(need)],
                    what="ptau_check.js", timeout=timeout)
    try:
        res = json.loads((proc.stdout or b"").decode(errors="replace").strip().splitlines()[-1])
        ok = res["ok"] is True
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise SetupError(f"ptau_check.js printed no verdict for {user_ptau}") from exc
    if not ok:
        raise SetupError(f"{user_ptau} refused: {res.get('error', 'check failed')}")
    if len(res.get("checks", [])) != 5:
        raise SetupError(f"ptau_check.js ran only {res.get('checks')} on {user_ptau}")
    return info


def resolve_ptau(n_constraints: int, n_public: int, user_ptau: Path | None = None) -> tuple[Path, PtauInfo]:
    """The ptau to use for a circuit: the user's (fully checked) or the dev file of the needed power."""
    if user_ptau is None:
        path = dev_ptau(required_power(n_constraints, n_public))
        return path, ptau_info(path)
    return Path(user_ptau), check_ptau(Path(user_ptau), n_constraints, n_public)
