"""The iden3 binary container used by .r1cs, .wtns, .zkey and .ptau files.

Layout: 4-byte magic, u32 version, u32 section count, then sections {u32 type, u64 size, data},
all little-endian. A type may repeat (snarkjs never does for the files we read); we keep a list.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from omniplus.core.errors import OmniplusError, SetupError


@dataclass
class BinFile:
    """A parsed container: the raw file bytes plus (offset, size) of every section by type."""

    path: str
    magic: bytes
    version: int
    data: bytes
    sections: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    error: type[OmniplusError] = SetupError

    def fail(self, what: str) -> OmniplusError:
        """An error of the file's class naming the file."""
        return self.error(f"{self.path}: {what}")

    def section(self, stype: int, *, required: bool = True) -> memoryview | None:
        """The bytes of the single section of this type (zero-copy)."""
        entries = self.sections.get(stype)
        if not entries:
            if required:
                raise self.fail(f"section {stype} is missing")
            return None
        if len(entries) > 1:
            raise self.fail(f"section {stype} appears {len(entries)} times")
        off, size = entries[0]
        return memoryview(self.data)[off:off + size]


def read_binfile(path: str | os.PathLike, magic: bytes, *, max_version: int = 1,
                 error: type[OmniplusError] = SetupError) -> BinFile:
    """Read a container, checking magic, version and that every section lies inside the file."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if len(data) < 12:
        raise error(f"{name}: truncated header ({len(data)} bytes)")
    if data[:4] != magic:
        raise error(f"{name}: wrong magic {data[:4]!r}, expected {magic!r}")
    version, n_sections = struct.unpack_from("<II", data, 4)
    if not 1 <= version <= max_version:
        raise error(f"{name}: unsupported version {version}")
    bf = BinFile(name, magic, version, data, error=error)
    pos = 12
    for i in range(n_sections):
        if pos + 12 > len(data):
            raise error(f"{name}: truncated at the header of section {i + 1} of {n_sections}")
        stype, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if pos + size > len(data):
            raise error(f"{name}: section {stype} claims {size} bytes, only {len(data) - pos} left "
                        "(file truncated)")
        bf.sections.setdefault(stype, []).append((pos, size))
        pos += size
    if pos != len(data):
        raise error(f"{name}: {len(data) - pos} trailing bytes after the last section")
    return bf


def build_binfile(magic: bytes, version: int, sections: list[tuple[int, bytes]]) -> bytes:
    """Serialise sections (type, payload) into a container."""
    out = [magic, struct.pack("<II", version, len(sections))]
    for stype, payload in sections:
        out.append(struct.pack("<IQ", stype, len(payload)))
        out.append(bytes(payload))
    return b"".join(out)


def write_binfile(path: str | os.PathLike, magic: bytes, version: int,
                  sections: list[tuple[int, bytes]]) -> None:
    """Write a container atomically (temp file beside, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(build_binfile(magic, version, sections))
    os.replace(tmp, path)
