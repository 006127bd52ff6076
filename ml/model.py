"""A small MLP for 8×8 digits (or any flat input), split into a public and a private part.

The public part is a configurable set of layers (OmniLytics Table 3 publishes chosen layers);
it is what the market trains: its weights are published (with their hash on-chain), the DOs
update it and the servers aggregate the updates. The private part never leaves the MO.

A DO still needs a forward pass through the layers it does not have. As in LG-FedAvg (Liang et
al. 2020), which OmniLytics follows, every DO keeps its *own local* copy of those layers: it
initialises them itself (from its own seed, never from the MO), first fits them to the public
layers on its data with the public part frozen (a short warm-up), then trains both; only the
public part's change is ever sent. The MO's private layers and the DOs' local ones are never
exchanged, so the MO's private part stays private and the DOs' local layers stay with the DOs.

Default split: the first (feature) layer is public and the classifier head is private: the
shared features improve with the DOs' data, while each party's head adapts to them locally.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

from omniplus.core.errors import InputError


class MLP(nn.Module):
    """in → hidden[0] → … → classes, ReLU between; layers are named fc1, fc2, …"""

    def __init__(self, in_features: int = 64, hidden: Sequence[int] = (8,), classes: int = 10) -> None:
        super().__init__()
        sizes = [in_features, *hidden, classes]
        self.names: list[str] = []
        for i in range(len(sizes) - 1):
            name = f"fc{i + 1}"
            self.add_module(name, nn.Linear(sizes[i], sizes[i + 1]))
            self.names.append(name)
        self.arch = {"in_features": in_features, "hidden": list(hidden), "classes": classes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, name in enumerate(self.names):
            x = getattr(self, name)(x)
            if i < len(self.names) - 1:
                x = torch.relu(x)
        return x


def make_model(arch: dict, seed: int) -> MLP:
    """A fresh model of this architecture with deterministic initial weights."""
    torch.manual_seed(seed)
    return MLP(arch["in_features"], tuple(arch["hidden"]), arch["classes"])


def check_public(model: MLP, public: Sequence[str]) -> list[str]:
    layers = list(public)
    unknown = [name for name in layers if name not in model.names]
    if unknown or not layers:
        raise InputError(f"public layers {layers} must be a non-empty subset of {model.names}")
    if set(layers) == set(model.names):
        raise InputError("at least one layer must stay private with the MO")
    return [n for n in model.names if n in layers]  # model order


def public_params(model: MLP, public: Sequence[str]) -> list[nn.Parameter]:
    """The public part's parameters in a fixed order (layer order, weight then bias)."""
    out: list[nn.Parameter] = []
    for name in check_public(model, public):
        layer = getattr(model, name)
        out += [layer.weight, layer.bias]
    return out


def private_params(model: MLP, public: Sequence[str]) -> list[nn.Parameter]:
    pub = set(check_public(model, public))
    out: list[nn.Parameter] = []
    for name in model.names:
        if name not in pub:
            layer = getattr(model, name)
            out += [layer.weight, layer.bias]
    return out


def public_size(model: MLP, public: Sequence[str]) -> int:
    return sum(p.numel() for p in public_params(model, public))


def model_hash(vector: torch.Tensor) -> bytes:
    """sha256 of the public weights as little-endian float32: what goes on-chain as modelHash."""
    return hashlib.sha256(vector.detach().to(torch.float32).contiguous().numpy().tobytes()).digest()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 0.05,
    seed: int = 0,
) -> None:
    """Plain minibatch SGD (momentum 0.9) on the given parameters only; the others stay fixed."""
    if len(y) == 0 or epochs <= 0:
        return
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(list(params), lr=lr, momentum=0.9)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            b = perm[i : i + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
