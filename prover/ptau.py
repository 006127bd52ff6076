"""Powers of tau for the Groth16 setup: a cached development file, or a user-supplied ceremony file.

Development files come from prover/js/ptau_dev.js, which knows τ and writes the *prepared*
(Lagrange) sections directly: seconds instead of the ~29 minutes `snarkjs powersoftau prepare
phase2` needs at power 16. Whoever ran it could have kept τ, α, β, so a dev file is for tests and
demos; production passes a prepared file from a public ceremony (--ptau).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class PtauInfo:
    path: Path
    power: int
    ceremony_power: int
    sections: tuple[int, ...]

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
            power = ceremony = -1
            for _ in range(n_sections):
                sh = f.read(12)
                if len(sh) < 12:
                    raise SetupError(f"{path} is truncated")
                stype, size = struct.unpack("<IQ", sh)
                sections.append(stype)
                if stype == 1:
                    body = f.read(size)
                    n8 = struct.unpack_from("<I", body, 0)[0]
                    power, ceremony = struct.unpack_from("<II", body, 4 + n8)
                else:
                    f.seek(size, os.SEEK_CUR)
            end = f.tell()
    except OSError as exc:
        raise SetupError(f"cannot read ptau file {path}: {exc.strerror or exc}") from exc
    if power < 0:
        raise SetupError(f"{path} has no header section")
    if path.stat().st_size != end:
        raise SetupError(f"{path} is truncated or has trailing bytes")
    return PtauInfo(path, power, ceremony, tuple(sections))


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


def resolve_ptau(n_constraints: int, n_public: int, user_ptau: Path | None = None) -> tuple[Path, PtauInfo]:
    """The ptau to use for a circuit: the user's (checked) or the dev file of the needed power."""
    need = required_power(n_constraints, n_public)
    if user_ptau is None:
        path = dev_ptau(need)
        return path, ptau_info(path)
    user_ptau = Path(user_ptau)
    if not user_ptau.is_file():
        raise SetupError(f"ptau file {user_ptau} does not exist")
    info = ptau_info(user_ptau)
    if info.power < need:
        raise SetupError(
            f"{user_ptau} has power {info.power}, but this circuit ({n_constraints} constraints + "
            f"{n_public} public inputs) needs power >= {need}"
        )
    if not info.prepared:
        raise SetupError(
            f"{user_ptau} is not prepared for phase 2 (no Lagrange sections 12-15): run "
            "`snarkjs powersoftau prepare phase2` on it, or use a *_final.ptau from a ceremony"
        )
    return user_ptau, info
