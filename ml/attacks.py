"""Malicious DOs' updates (OmniLytics Table 5 uses random vectors; we add two classic others).

Each takes the honest update the DO would have sent (float, public part) and returns what the
attacker sends instead. Attackers skip clipping: an update that breaks the norm bound is
rejected by the servers' validation and never paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from omniplus.core.errors import InputError

if TYPE_CHECKING:  # torch loads with the first attack, not with the list of names
    import torch

ATTACKS = ("random", "scale", "signflip", "zero")
# the pay bench's attackers (`round_attack`): the in-bound ones use the whole clip norm C
PAY_ATTACKS = ("random_inbound", "signflip", "zero", "scale")


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


def zero(update: torch.Tensor) -> torch.Tensor:
    """The free-rider: a valid update that carries nothing."""
    return update * 0


def _to_norm(v: torch.Tensor, norm: float) -> torch.Tensor:
    n = float(v.norm())
    return v * 0 if n == 0 else v * (norm / n)


def round_attack(name: str, honest: Sequence[torch.Tensor], clip: float, seed: int, *,
                 collude: bool = True) -> list[torch.Tensor]:
    """What each of a round's attackers sends, from the honest updates they would have sent.

    In-bound attackers scale to the clip norm C (the most weight the bound allows: honest updates
    are usually well inside it). Colluding attackers send one shared vector, so they agree with
    each other: sign-flippers send -(their mean honest update), random ones one shared random
    direction. "scale" (x100 of the own update) breaks the bound and is rejected whatever it does."""
    import torch

    if name not in PAY_ATTACKS:
        raise InputError(f"unknown attack {name!r}; choose one of {', '.join(PAY_ATTACKS)}")
    out: list[torch.Tensor] = []
    for i, h in enumerate(honest):
        if name == "zero":
            out.append(zero(h))
        elif name == "scale":
            out.append(scaled(h))
        elif name == "signflip":
            base = torch.stack(list(honest)).mean(0) if collude else h
            out.append(_to_norm(-base.to(torch.float64), clip * (1 - 1e-9)))
        else:
            out.append(_to_norm(random_vector(h, seed if collude else seed * 7919 + i), clip * (1 - 1e-9)))
    return out


def apply_attack(name: str, update: torch.Tensor, seed: int) -> torch.Tensor:
    if name == "random":
        return random_vector(update, seed)
    if name == "scale":
        return scaled(update)
    if name == "signflip":
        return sign_flipped(update)
    if name == "zero":  # a free-rider: uploads nothing, hoping to be paid (contribution score 0)
        return zero(update)
    raise InputError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
