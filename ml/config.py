"""The market's configuration: one dataclass of knobs, checked before anything runs, and the quantisation it implies."""


from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omniplus.core.errors import InputError

if TYPE_CHECKING:  # torch is imported only when a spec is made, so `--help` stays instant
    from omniplus.ml.updates import QuantSpec

Progress = Callable[[str], None]


@dataclass
class MarketConfig:
    """Everything about one run; defaults are the demo's: the MLP 64→12→10 traded whole, each DO uploading
    its statistics at the published version (d = 1,001), N=3, k=16, B=4·10⁹ (≈ 51k constraints, 2^16),
    12 DOs over R=4 rounds, DO 5 (round 1) sending ×100: its batch keeps 2 honest DOs."""

    dos: int = 12
    malicious: tuple[int, ...] = (5,)  # DO indices that attack
    attack: str = "scale"
    free_riders: tuple[int, ...] = ()  # DO indices that upload the zero update (screened out: score 0)
    rounds: int = 4  # R
    batch: int = 3  # N (N_min = 2: a batch that loses one rejected DO still has two)
    hidden: tuple[int, ...] = (12,)
    model: str = "mlp"  # or "cnn": conv channels below, then the hidden layers (8×8 digits)
    channels: tuple[int, ...] = (16, 25)
    public: tuple[str, ...] = ()  # published layers; () = every layer (the encrypted model's default)
    bits: int = 16  # k
    norm_bound: int = 4_000_000_000  # B
    dims: int | None = None  # circuit d; None = the upload's size (larger = zero-padded)
    clip: float = 5.0  # L2 bound on the float update (the CLI's FedAvg path: `omniplus do train`)
    encrypted: bool = True  # publish the perturbed model (False: --plain-model, the same rule in the clear)
    clip_factor: float = 2.0  # market: clip = this × the MO's own weighted upload, scaled to a DO's data size
    body_lr: float = 1.0  # market: the MO's step on the body per round (mean gradient)
    ridge: float = 0.1  # market: λ of the least-squares head step
    per_coordinate: bool = False  # market: weight each upload coordinate (not each segment) to unit size
    head_memory: float = 1.0  # market: weight of earlier rounds' head statistics (0 = this batch only)
    head_epochs: int = 20  # market: epochs of a DO's own local head (for the body's gradient)
    noise: float = 10.0  # perturbation: γ = noise·std(logits)·N(0, I) on the published output layer
    spread: float = 4.0  # perturbation: hidden scales log-uniform in [1/spread, spread]
    check_recovery: bool = True  # harness: compare the MO's recovery with the plaintext sums each round
    secret_seed: int | None = None  # None: fresh secrets from the OS per version (tests may fix them)
    mo_samples: int = 40
    test_fraction: float = 0.25
    alpha: float | None = None  # Dirichlet α for non-IID DOs; None = IID
    mo_pre_epochs: int = 40
    mo_epochs: int = 10
    do_warmup_epochs: int = 5
    do_epochs: int = 30
    lr: float = 0.1
    seed: int = 0
    backend: str = "snarkjs"
    reward_wei: int = 10**15
    plain_gas: bool = True

    @property
    def fedavg_public(self) -> tuple[str, ...]:
        """The public layers of the FedAvg split (`omniplus do train`, `bench attack`): fc1 unless set."""
        return self.public or ("fc1",)

    @property
    def arch(self) -> dict:
        if self.model == "cnn":
            return {"kind": "cnn", "side": 8, "channels": list(self.channels), "hidden": list(self.hidden),
                    "classes": 10}
        if self.model != "mlp":
            raise InputError(f"unknown model {self.model!r} (mlp or cnn)")
        return {"in_features": 64, "hidden": list(self.hidden), "classes": 10}

    def spec(self, d_public: int) -> QuantSpec:
        """T = √B − √d (so ⌈(T + √d)²⌉ ≤ B): the largest clip norm in quantised units B admits."""
        d = self.dims or d_public
        if d < d_public:
            raise InputError(f"circuit d={d} is smaller than the public part ({d_public} values)")
        return spec_for(d, self.bits, self.norm_bound, self.clip)

    def check(self) -> MarketConfig:
        if not 1 <= self.batch:
            raise InputError("N must be positive")
        if self.dos > self.batch * self.rounds:
            raise InputError(f"{self.dos} DOs do not fit in R={self.rounds} batches of N={self.batch}")
        if not (self.bits >= 2 and self.norm_bound > 0 and self.clip_factor > 0 and self.ridge >= 0):
            raise InputError(f"k={self.bits}, B={self.norm_bound}, clip factor {self.clip_factor} and ridge "
                             f"{self.ridge} must be positive")
        if any(not 0 <= i < self.dos for i in self.free_riders):
            raise InputError(f"free-rider DO indices {self.free_riders} must be in [0, {self.dos})")
        if any(not 0 <= i < self.dos for i in self.malicious):
            raise InputError(f"malicious DO indices {self.malicious} must be in [0, {self.dos})")
        for r in range(self.rounds):  # the round plan: a batch that loses its attackers keeps N_min = 2
            members = range(r * self.batch, min(self.dos, (r + 1) * self.batch))
            honest = [i for i in members if i not in self.malicious and i not in self.free_riders]
            if members and len(honest) < 2:
                raise InputError(f"round {r} has {len(honest)} honest DO(s) of {len(members)}: once the "
                                 "attackers are rejected it falls below N_min = 2")
        return self


def paper_preset(**over: object) -> MarketConfig:
    """OmniLytics' workload on 8×8 digits: the CNN (5,571 traded parameters, a 5,724-value upload), N = 4
    DOs per batch, R = 8, one ×100 attacker (round 1: its batch keeps 3 honest DOs), per-coordinate upload
    weights; the body stays as pretrained (its steps did not help at these sizes).

    k = 9, B = 6·10^7: 252,234 constraints with the contribution scores (229,337 without), inside 2^18
    (≈ +1 constraint per coordinate per DO, +N·d = 22,896) with ≈ 9.9k to spare; k = 10 (252,262) would not
    fit with them. In the in-process market (ml/simulate.py, seeds 0-3) k = 9 ends 0.4-1.1 points below k = 10
    (seed 0: 78.6 % vs 79.3 %, MO alone 65.5 %); k = 8 clamps the head's statistics and loses more."""
    base: dict = dict(model="cnn", channels=(16, 25), hidden=(16,), dos=32, batch=4, rounds=8, malicious=(5,),
                      bits=9, norm_bound=60_000_000, per_coordinate=True, body_lr=0.0)
    base.update(over)
    return MarketConfig(**base)


def spec_for(dims: int, bits: int, norm_bound: int, clip: float) -> QuantSpec:
    """The quantisation a task's (d, k, B) implies for a float clip C: T = √B − √d, scale T/C.
    The MO and every DO derive it from the same on-chain numbers."""
    target = math.sqrt(norm_bound) - math.sqrt(dims) - 1e-6
    if target <= 1:
        raise InputError(f"B={norm_bound} is too small for d={dims}: no room for an update")
    from omniplus.ml.updates import QuantSpec

    spec = QuantSpec(clip=clip, target=target, bits=bits, dims=dims)
    assert spec.norm_bound <= norm_bound
    return spec
