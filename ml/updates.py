"""Updates of the public part: flatten/unflatten, L2 clipping, k-bit quantisation, FedAvg.

The circuit's statement is on integers: each coordinate in [−2^(k−1), 2^(k−1)) and the squared
norm ≤ B. `QuantSpec` fixes how a float update maps onto it: clip to L2 norm C, multiply by
scale = T/C (T = the clip norm in quantised units), round stochastically (prover.quantize, the
one place for quantisation), so the rounding error per coordinate is < 1 and unbiased, and the
quantised norm is < T + √d. B = ⌈(T + √d)²⌉ therefore admits every honest update, and an update
scaled ×100 breaks it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from omniplus.core.errors import InputError


@dataclass(frozen=True)
class QuantSpec:
    """clip: L2 bound C on the float update; target: T = C·scale; bits: k; dims: the circuit's d."""

    clip: float
    target: float
    bits: int
    dims: int

    @property
    def scale(self) -> float:
        return self.target / self.clip

    @property
    def norm_bound(self) -> int:
        """B such that every clipped, stochastically rounded update passes."""
        return math.ceil((self.target + math.sqrt(self.dims)) ** 2)

    @property
    def limit(self) -> int:
        """Largest |q| the range check admits (the range is [−2^(k−1), 2^(k−1)−1])."""
        return (1 << (self.bits - 1)) - 1


def flatten(params: Sequence[nn.Parameter | torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in params])


def unflatten_into(params: Sequence[nn.Parameter], vector: torch.Tensor) -> None:
    """Copy `vector` (at least as long as the parameters; extra padding must be zero) into params."""
    n = sum(p.numel() for p in params)
    if vector.numel() < n:
        raise InputError(f"vector has {vector.numel()} values, the public part has {n}")
    i = 0
    with torch.no_grad():
        for p in params:
            p.copy_(vector[i : i + p.numel()].reshape(p.shape).to(p.dtype))
            i += p.numel()


def clip_l2(update: torch.Tensor, bound: float) -> torch.Tensor:
    norm = float(update.norm())
    return update if norm <= bound else update * (bound / norm)


def pad(vector: torch.Tensor, dims: int) -> torch.Tensor:
    if vector.numel() > dims:
        raise InputError(f"public part has {vector.numel()} values, the circuit only {dims}")
    return torch.cat([vector, torch.zeros(dims - vector.numel(), dtype=vector.dtype)])


def quantize_update(update: torch.Tensor, spec: QuantSpec, seed: int, *, clip: bool = True) -> list[int]:
    """Clip (unless told not to: attackers), scale, stochastically round to k-bit integers.

    Honest DOs: each coordinate is also clamped to the range (only bites for a spike beyond
    2^(k−1) quantised units). Without `clip`, values are rounded but not clamped in norm."""
    from omniplus.prover.quantize import stochastic_round

    u = pad(update.to(torch.float64), spec.dims)
    if clip:
        u = clip_l2(u, spec.clip)
    q = stochastic_round((u * spec.scale).tolist(), seed)
    lim = spec.limit
    return [max(-lim - 1, min(lim, v)) for v in q]


def quantize_chunked(update: torch.Tensor, spec: QuantSpec, seed: int, *, clip: bool = True) -> list[list[int]]:
    """A model larger than one circuit: cut into chunks of spec.dims, each clipped and quantised alone.

    Per-chunk (e.g. per-layer) clipping is what makes every chunk pass its own circuit's norm bound
    spec.norm_bound; one global clip would let one chunk take the whole norm budget. The last chunk
    is zero-padded (prover.chunks.split_rows pads the same way)."""
    u = update.reshape(-1).to(torch.float64)
    if u.numel() == 0:
        raise InputError("empty update")
    k = -(-u.numel() // spec.dims)
    u = torch.cat([u, torch.zeros(k * spec.dims - u.numel(), dtype=u.dtype)])
    return [quantize_update(u[i * spec.dims:(i + 1) * spec.dims], spec, seed * 1_000_003 + i, clip=clip)
            for i in range(k)]


def dequantize(values: Sequence[int], spec: QuantSpec) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float64) / spec.scale


def fedavg_delta(aggregate: Sequence[int], accepted: int, spec: QuantSpec) -> torch.Tensor:
    """The mean update of the accepted DOs from the on-chain sum of their quantised updates."""
    if accepted <= 0:
        raise InputError("no accepted DO in the batch")
    return dequantize(aggregate, spec) / accepted
