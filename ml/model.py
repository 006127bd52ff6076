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


class CNN(nn.Module):
    """A small CNN for square grey images given flat (side² values): conv 3×3 (padding 1) → ReLU →
    max-pool 2 per conv layer, then fully connected layers with ReLU between; layers conv1, …, fc1, ….

    Max-pooling and ReLU commute with a positive per-channel scale, so the model perturbation
    (ml/perturb.py) works on it as on the MLP."""

    def __init__(self, side: int = 8, channels: Sequence[int] = (16, 25), hidden: Sequence[int] = (16,),
                 classes: int = 10) -> None:
        super().__init__()
        if side % (1 << len(channels)):
            raise InputError(f"image side {side} is not divisible by 2^{len(channels)} (one pool per conv)")
        self.names: list[str] = []
        cin = 1
        for i, c in enumerate(channels):
            self.add_module(f"conv{i + 1}", nn.Conv2d(cin, c, 3, padding=1))
            self.names.append(f"conv{i + 1}")
            cin = c
        self.side = side
        self.pooled = (side >> len(channels)) ** 2  # positions per channel after the last pool
        sizes = [cin * self.pooled, *hidden, classes]
        for i in range(len(sizes) - 1):
            self.add_module(f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
            self.names.append(f"fc{i + 1}")
        self.arch = {"kind": "cnn", "side": side, "channels": list(channels), "hidden": list(hidden),
                     "classes": classes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.names[-1])(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the last layer (the penultimate activations)."""
        x = x.reshape(-1, 1, self.side, self.side)
        for name in self.names[:-1]:
            layer = getattr(self, name)
            if isinstance(layer, nn.Linear) and x.dim() > 2:
                x = x.flatten(1)  # channel-major: feature c·pooled + position
            x = torch.relu(layer(x))
            if isinstance(layer, nn.Conv2d):
                x = nn.functional.max_pool2d(x, 2)
        return x.flatten(1) if x.dim() > 2 else x


def _mlp_features(self: MLP, x: torch.Tensor) -> torch.Tensor:
    for name in self.names[:-1]:
        x = torch.relu(getattr(self, name)(x))
    return x


MLP.features = _mlp_features  # type: ignore[attr-defined]


def input_repeat(model: nn.Module, name: str) -> int:
    """How many input columns of layer `name` come from each output unit of the layer before it
    (1, or the pooled positions per channel for the first fully connected layer after convolutions)."""
    i = model.names.index(name)
    if i == 0:
        return 1
    prev, cur = getattr(model, model.names[i - 1]), getattr(model, name)
    if isinstance(prev, nn.Conv2d) and isinstance(cur, nn.Linear):
        return model.pooled
    return 1


def make_model(arch: dict, seed: int) -> nn.Module:
    """A fresh model of this architecture with deterministic initial weights."""
    torch.manual_seed(seed)
    if arch.get("kind", "mlp") == "cnn":
        return CNN(arch["side"], tuple(arch["channels"]), tuple(arch["hidden"]), arch["classes"])
    if arch.get("kind", "mlp") != "mlp":
        raise InputError(f"unknown model kind {arch.get('kind')!r} (mlp or cnn)")
    return MLP(arch["in_features"], tuple(arch["hidden"]), arch["classes"])


def check_public(model: nn.Module, public: Sequence[str], *, allow_all: bool = False) -> list[str]:
    """The public layers in model order. Without the perturbation (allow_all False) one layer must
    stay private with the MO; with it, the MO may trade every layer."""
    layers = list(public)
    unknown = [name for name in layers if name not in model.names]
    if unknown or not layers:
        raise InputError(f"public layers {layers} must be a non-empty subset of {model.names}")
    if set(layers) == set(model.names) and not allow_all:
        raise InputError("at least one layer must stay private with the MO")
    return [n for n in model.names if n in layers]  # model order


def public_params(model: nn.Module, public: Sequence[str]) -> list[nn.Parameter]:
    """The public part's parameters in a fixed order (layer order, weight then bias)."""
    out: list[nn.Parameter] = []
    for name in check_public(model, public, allow_all=True):
        layer = getattr(model, name)
        out += [layer.weight, layer.bias]
    return out


def private_params(model: nn.Module, public: Sequence[str]) -> list[nn.Parameter]:
    pub = set(check_public(model, public, allow_all=True))
    out: list[nn.Parameter] = []
    for name in model.names:
        if name not in pub:
            layer = getattr(model, name)
            out += [layer.weight, layer.bias]
    return out


def public_size(model: nn.Module, public: Sequence[str]) -> int:
    return sum(p.numel() for p in public_params(model, public))


def model_hash(vector: torch.Tensor) -> bytes:
    """sha256 of the public weights as little-endian float32: what goes on-chain as modelHash."""
    return hashlib.sha256(vector.detach().to(torch.float32).contiguous().numpy().tobytes()).digest()


def squared_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """½‖z − onehot(y)‖² per sample, averaged: its gradient in z is affine (z − t), which is what lets
    the MO remove the perturbation's output noise exactly (ml/perturb.py)."""
    t = nn.functional.one_hot(y, logits.shape[1]).to(logits.dtype)
    return 0.5 * ((logits - t) ** 2).sum(1).mean()


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
    loss: str = "ce",
) -> None:
    """Plain minibatch SGD (momentum 0.9) on the given parameters only; the others stay fixed.
    loss: "ce" (cross-entropy) or "mse" (squared error on the logits, what the perturbed market uses)."""
    fn = squared_loss if loss == "mse" else nn.functional.cross_entropy
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
            fn(model(x[b]), y[b]).backward()
            opt.step()
