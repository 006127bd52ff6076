"""Data: digits, IID and Dirichlet splits, the MNIST IDX loader; the published model's hash check."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from omniplus.core.errors import InputError
from omniplus.ml.data import load_digits, load_mnist_idx, split_dirichlet, split_iid, write_idx
from omniplus.ml.public_model import HashMismatch, read_public, write_public
from omniplus.ml.updates import QuantSpec


def test_digits_and_splits() -> None:
    ds = load_digits()
    assert ds.x.shape == (1797, 64) and float(ds.x.max()) <= 1.0 and set(ds.y.tolist()) == set(range(10))
    parts = split_iid(ds, 8, 0)
    assert sum(len(p) for p in parts) == len(ds) and max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    skew = split_dirichlet(ds, 8, 0.1, 0, min_size=5)
    assert sum(len(p) for p in skew) == len(ds) and min(len(p) for p in skew) >= 5
    # small α: each part is dominated by few classes
    top = [np.bincount(p.y.numpy(), minlength=10).max() / len(p) for p in skew]
    assert np.mean(top) > 0.4
    with pytest.raises(InputError):
        split_dirichlet(ds, 4, 0.0, 0)


def test_mnist_idx_loader(tmp_path) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "img.idx", imgs)
    write_idx(tmp_path / "lab.idx", labels)
    with gzip.open(tmp_path / "lab.idx.gz", "wb") as f:
        f.write((tmp_path / "lab.idx").read_bytes())
    ds = load_mnist_idx(tmp_path / "img.idx", tmp_path / "lab.idx.gz")
    assert ds.x.shape == (5, 784) and ds.y.tolist() == [3, 1, 4, 1, 5]
    assert torch.allclose(ds.x[2], torch.tensor(imgs[2].reshape(-1) / 255.0, dtype=torch.float32))
    (tmp_path / "bad.idx").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(InputError, match="IDX"):
        load_mnist_idx(tmp_path / "img.idx", tmp_path / "bad.idx")
    with pytest.raises(InputError, match="shapes"):
        load_mnist_idx(tmp_path / "img.idx", tmp_path / "img.idx")


def test_public_model_hash_mismatch(tmp_path) -> None:
    spec = QuantSpec(clip=1.0, target=10.0, bits=6, dims=4)
    w = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float32)
    h = write_public(tmp_path / "pub.json", {"in_features": 1, "hidden": [], "classes": 3}, ["fc1"], w, spec)
    doc = read_public(tmp_path / "pub.json", h)
    assert torch.equal(doc["weights"], w) and doc["quant"] == spec
    w2 = w.clone()
    w2[0] += 1e-3  # the MO (or a server hosting the file) changed the weights after deploying
    write_public(tmp_path / "pub.json", {"in_features": 1, "hidden": [], "classes": 3}, ["fc1"], w2, spec)
    with pytest.raises(HashMismatch, match="modelHash"):
        read_public(tmp_path / "pub.json", h)
