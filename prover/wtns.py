"""The .wtns witness file: section 1 = n8, prime r, count; section 2 = plain little-endian values."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

from omniplus.core.errors import ProofError
from omniplus.prover.binfile import read_binfile, write_binfile
from omniplus.prover.field import N8, R, int_to_le

MAGIC = b"wtns"
VERSION = 2


def read_wtns(path: str | os.PathLike) -> list[int]:
    """All witness values (wire 0 first); ProofError naming the file if anything is off."""
    bf = read_binfile(path, MAGIC, max_version=2, error=ProofError)
    head = bf.section(1)
    if len(head) < 8:
        raise bf.fail("header section too short")
    (n8,) = struct.unpack_from("<I", head, 0)
    if n8 != N8 or len(head) != 4 + n8 + 4:
        raise bf.fail(f"unexpected field size n8={n8} / header length {len(head)}")
    prime = int.from_bytes(head[4:4 + n8], "little")
    if prime != R:
        raise bf.fail("witness is not over the BN254 scalar field")
    (count,) = struct.unpack_from("<I", head, 4 + n8)
    body = bytes(bf.section(2))
    if len(body) != count * n8:
        raise bf.fail(f"values section has {len(body)} bytes, expected {count} × {n8}")
    out = [int.from_bytes(body[i:i + n8], "little") for i in range(0, len(body), n8)]
    for i, v in enumerate(out):
        if v >= R:
            raise bf.fail(f"witness value {i} is not reduced mod r")
    return out


def write_wtns(path: str | os.PathLike, witness: Sequence[int]) -> None:
    """Write values (reduced mod r) in the layout snarkjs reads; atomic."""
    head = struct.pack("<I", N8) + int_to_le(R) + struct.pack("<I", len(witness))
    body = b"".join(int_to_le(int(v) % R) for v in witness)
    write_binfile(path, MAGIC, VERSION, [(1, head), (2, body)])
