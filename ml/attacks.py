"""Malicious DOs' updates (OmniLytics Table 5 uses random vectors; we add two classic others).

Each takes the honest update the DO would have sent (float, public part) and returns what the
attacker sends instead. Attackers skip clipping: an update that breaks the norm bound is
rejected by the servers' validation and never paid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omniplus.core.errors import InputError

if TYPE_CHECKING:  # torch loads with the first attack, not with the list of names
    import torch

ATTACKS = ("random", "scale", "signflip", "zero")


RANDOM_SPREAD = 10.0  # per coordinate: a random "model" far outside what honest training moves


def random_vector(update: torch.Tensor, seed: int, spread: float = RANDOM_SPREAD) -> torch.Tensor:
    """Uniform noise in [−spread, spread] of the same shape (the paper's Byzantine DO uploads random
    data of the model's dimension; the spread is our choice, stated in the bench's output)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(update.shape, generator=gen, dtype=torch.float64) * 2 - 1) * spread


def scaled(update: torch.Tensor, factor: float = 100.0) -> torch.Tensor:
    return update * factor


def sign_flipped(update: torch.Tensor) -> torch.Tensor:
    return -update


def apply_attack(name: str, update: torch.Tensor, seed: int) -> torch.Tensor:
    if name == "random":
        return random_vector(update, seed)
    if name == "scale":
        return scaled(update)
    if name == "signflip":
        return sign_flipped(update)
    if name == "zero":  # a free-rider: uploads nothing, hoping to be paid (contribution score 0)
        return update * 0
    raise InputError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
