"""Models larger than one circuit: K chunks of the same (N, d_chunk, k, B) circuit per batch.

Why one circuit for every chunk: one setup, one verification key and one deployed verifier serve
all K = ceil(d / d_chunk) chunks, and the contract loops over them (RollupMarket.submitChunkedBatch).
Each chunk has its own norm bound B (per-chunk clipping: a DO clips every chunk of its update to B
before quantising); the last chunk is zero-padded. Chunk i of a batch is bound to ctx_i
(prover.binding.chunk_ctx), so a chunk proof verifies only at its own index of its own batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from omniplus.core.errors import InputError


def n_chunks(dims: int, d_chunk: int) -> int:
    """K = ceil(d / d_chunk)."""
    if dims < 1 or d_chunk < 1:
        raise InputError(f"d={dims} and d_chunk={d_chunk} must be positive")
    return -(-dims // d_chunk)


def split_rows(rows: Sequence[Sequence[int]], d_chunk: int) -> list[list[list[int]]]:
    """[chunk][DO][coordinate]: every row cut into d_chunk pieces, the last one zero-padded."""
    if not rows:
        raise InputError("no rows to split")
    d = len(rows[0])
    if any(len(r) != d for r in rows):
        raise InputError("rows of different lengths")
    k = n_chunks(d, d_chunk)
    out = []
    for i in range(k):
        lo = i * d_chunk
        out.append([[int(x) for x in r[lo:lo + d_chunk]] + [0] * max(0, lo + d_chunk - d) for r in rows])
    return out


def join_chunks(chunks: Sequence[Sequence[int]], dims: int) -> list[int]:
    """Chunk aggregates back into one d-vector (the padding must be zero)."""
    flat = [int(x) for c in chunks for x in c]
    if len(flat) < dims or any(flat[dims:]):
        raise InputError(f"chunks give {len(flat)} coordinates with non-zero padding past d={dims}")
    return flat[:dims]
