"""The MO's and the DOs' training steps: data partitions, pretraining, a DO's local update (honest or attacking)."""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from omniplus.ml.attacks import apply_attack
from omniplus.ml.config import MarketConfig
from omniplus.ml.data import Dataset, load_digits, split_dirichlet, split_iid, train_test_split
from omniplus.ml.model import (
    MLP,
    check_public,
    make_model,
    private_params,
    public_params,
    train,
)
from omniplus.ml.updates import QuantSpec, flatten, quantize_update, unflatten_into


# ---------------------------------------------------------------------- DO
@dataclass
class DataOwner:
    index: int
    address: str
    key: str
    data: Dataset
    attack: str | None = None
    rejected: str | None = None
    round: int | None = None

    def train_update(self, w: torch.Tensor, arch: dict, layers: Sequence[str], cfg: MarketConfig) -> torch.Tensor:
        """E epochs on the DO's data from public weights w, with its own local private layers
        (warmed up first with the public part frozen); returns the public part's change."""
        m = make_model(arch, 1000 + self.index + 7919 * cfg.seed)
        unflatten_into(public_params(m, layers), w)
        x, y = self.data.x, self.data.y
        train(m, private_params(m, layers), x, y, epochs=cfg.do_warmup_epochs, lr=cfg.lr, seed=self.index)
        train(m, list(m.parameters()), x, y, epochs=cfg.do_epochs, lr=cfg.lr, seed=self.index + 1)
        return flatten(public_params(m, layers)) - w.to(torch.float64)

    def quantised(self, update: torch.Tensor, spec: QuantSpec, seed: int) -> list[int]:
        if self.attack is None:
            return quantize_update(update, spec, seed)
        return quantize_update(apply_attack(self.attack, update, seed), spec, seed, clip=False)


# ---------------------------------------------------------------------- the run
def prepare_data(cfg: MarketConfig) -> tuple[Dataset, Dataset, list[Dataset]]:
    """(MO's private data, test set, one data partition per DO)."""
    ds = load_digits()
    tr, te = train_test_split(ds, cfg.test_fraction, cfg.seed)
    perm = np.random.default_rng(cfg.seed + 1).permutation(len(tr))
    mo, rest = tr.subset(perm[: cfg.mo_samples]), tr.subset(perm[cfg.mo_samples :])
    if cfg.alpha is None:
        partitions = split_iid(rest, cfg.dos, cfg.seed + 2)
    else:
        partitions = split_dirichlet(rest, cfg.dos, cfg.alpha, cfg.seed + 2, min_size=10)
    return mo, te, partitions


def pretrain(cfg: MarketConfig, mo: Dataset) -> MLP:
    model = make_model({"in_features": mo.x.shape[1], "hidden": list(cfg.hidden), "classes": 10}, cfg.seed)
    check_public(model, cfg.public)
    train(model, list(model.parameters()), mo.x, mo.y, epochs=cfg.mo_pre_epochs, batch_size=16, lr=0.05,
          seed=cfg.seed)
    return model
