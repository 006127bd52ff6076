"""Datasets that need no download: scikit-learn's 8×8 digits, and MNIST IDX files at a user path.

Splits across DOs are IID (a random permutation in equal parts) or non-IID (per class, a
Dirichlet(α) partition for each DO, as is usual in federated-learning papers; small α = skewed).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from omniplus.core.errors import InputError


@dataclass
class Dataset:
    """Features as float32 (n, features) in [0, 1], labels as int64 (n,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: np.ndarray | list[int]) -> Dataset:
        ix = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return Dataset(self.x[ix], self.y[ix])


def load_digits() -> Dataset:
    """sklearn's digits (1797 images, 8×8, 16 grey levels), scaled to [0, 1]."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return Dataset(torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target, dtype=torch.int64))


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError(f"{path}: not an unsigned-byte IDX file (bad magic)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise InputError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    n = int(np.prod(shape)) if shape else 0
    body = raw[4 + 4 * ndim :]
    if len(body) != n:
        raise InputError(f"{path}: IDX header says {n} bytes of data, file has {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load_mnist_idx(images: str | Path, labels: str | Path) -> Dataset:
    """MNIST-format IDX files (optionally .gz) given by the user; images flattened and scaled to [0, 1]."""
    xi, yi = _read_idx(Path(images)), _read_idx(Path(labels))
    if xi.ndim < 2 or yi.ndim != 1 or xi.shape[0] != yi.shape[0]:
        raise InputError(f"IDX shapes do not match: images {xi.shape}, labels {yi.shape}")
    x = torch.tensor(xi.reshape(xi.shape[0], -1).astype(np.float32) / 255.0)
    return Dataset(x, torch.tensor(yi.astype(np.int64)))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (for tests and for exporting small sets)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, 0x08, a.ndim]) + struct.pack(">" + "I" * a.ndim, *a.shape)
    Path(path).write_bytes(head + a.tobytes())


def train_test_split(ds: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ds))
    n_test = int(round(len(ds) * test_fraction))
    return ds.subset(perm[n_test:]), ds.subset(perm[:n_test])


def split_iid(ds: Dataset, parts: int, seed: int) -> list[Dataset]:
    """Equal random parts."""
    if parts < 1:
        raise InputError("need at least one part")
    perm = np.random.default_rng(seed).permutation(len(ds))
    return [ds.subset(p) for p in np.array_split(perm, parts)]


def split_dirichlet(ds: Dataset, parts: int, alpha: float, seed: int, min_size: int = 1) -> list[Dataset]:
    """Non-IID: each class's samples are dealt out by Dirichlet(α) proportions (redrawn until every
    part has at least min_size samples)."""
    if alpha <= 0:
        raise InputError(f"Dirichlet alpha must be positive, got {alpha}")
    rng = np.random.default_rng(seed)
    y = ds.y.numpy()
    for _ in range(1000):
        buckets: list[list[int]] = [[] for _ in range(parts)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet([alpha] * parts))[:-1] * len(idx)).astype(int)
            for b, chunk in zip(buckets, np.split(idx, cuts), strict=True):
                b.extend(chunk.tolist())
        if min(len(b) for b in buckets) >= min_size:
            return [ds.subset(sorted(b)) for b in buckets]
    raise InputError(f"could not split {len(ds)} samples into {parts} parts of >= {min_size} with alpha={alpha}")
