"""The MO's and the DOs' training steps: data partitions, pretraining, a DO's local update (honest or attacking)."""


from __future__ import annotations

import copy
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from omniplus.core.errors import InputError
from omniplus.ml.attacks import apply_attack
from omniplus.ml.config import MarketConfig
from omniplus.ml.data import Dataset, load_digits, split_dirichlet, split_iid, train_test_split
from omniplus.ml.model import (
    check_public,
    make_model,
    private_params,
    public_params,
    train,
)
from omniplus.ml.perturb import (
    Recovered,
    Secrets,
    apply_recovered,
    draw_secrets,
    layout_for,
    perturb,
    segment_weights,
    stats_layout,
    stats_recover,
    stats_upload,
)
from omniplus.ml.updates import QuantSpec, dequantize, flatten, quantize_update, unflatten_into


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

    def version_row(self, doc: dict, spec: QuantSpec, seed: int) -> list[int]:
        """The market's upload for one checked model version (ml.model_versions.read_version): the
        statistics at the published point (ml/perturb.py), weighted as the version says, clipped to its
        clip and quantised to the task's (d, k, B). The DO never needs to know whether it is perturbed."""
        m = make_model(doc["arch"], 0)  # layers the MO did not publish are never used (features only)
        unflatten_into(public_params(m, doc["public_layers"]), doc["weights"])
        lay = stats_layout(m)
        u = stats_upload(m, lay, self.data.x, self.data.y, seed=seed, head_epochs=doc["upload"]["head_epochs"])
        uw = doc["upload"]["weights"]
        if uw.numel() != lay.dims:
            raise InputError(f"model version {doc['version']}: {uw.numel()} upload weights, the upload has {lay.dims}")
        return self.quantised(u * uw, spec, seed)


# ---------------------------------------------------------------------- MO (the market's rule)
@dataclass
class Version:
    """One published version and what only the MO keeps of it."""

    version: int
    published: nn.Module  # the perturbed model (or the true one with --plain-model)
    secrets: Secrets | None
    upload_weights: torch.Tensor
    clip: float
    layers: list[str]


class ModelOwner:
    """Per round: draw fresh secrets, publish the perturbed model with the upload's weighting and clip;
    after the batch, recover the batch's true statistics from the de-quantised on-chain aggregate and
    apply them to the true model (which never leaves the MO)."""

    def __init__(self, cfg: MarketConfig, model: nn.Module, mo_data: Dataset, do_samples: float) -> None:
        self.cfg, self.model, self.data = cfg, model, mo_data
        self.layers = check_public(model, cfg.public or model.names, allow_all=True)
        if self.layers not in (list(model.names), list(model.names[:-1])):
            raise InputError(f"the market's DOs need every hidden layer: publish {list(model.names)} (default) "
                             f"or {list(model.names[:-1])} (the output layer kept by the MO), not {self.layers}")
        self.layout = stats_layout(model)
        self.full = layout_for(model, model.names, encrypted=True)
        self.do_samples = do_samples
        self.current: Version | None = None
        self.memory: Recovered | None = None

    def new_version(self, version: int) -> Version:
        cfg = self.cfg
        s = None
        if cfg.encrypted:
            seed = secrets.randbits(62) if cfg.secret_seed is None else cfg.secret_seed * 1000003 + version
            s = draw_secrets(self.model, self.full, self.data.x, version=version, seed=seed, spread=cfg.spread,
                             noise=cfg.noise)
        pub = perturb(self.model, s) if s is not None else copy.deepcopy(self.model)
        own = stats_upload(pub, self.layout, self.data.x, self.data.y, seed=version,
                           head_epochs=cfg.head_epochs) * (self.do_samples / len(self.data))
        w = segment_weights(self.layout, own, per_coordinate=cfg.per_coordinate)
        clip = cfg.clip_factor * float((own * w).norm())
        self.current = Version(version, pub, s, w, clip, self.layers)
        return self.current

    def apply(self, aggregate: Sequence[int], spec: QuantSpec) -> Recovered:
        """De-quantise, undo the weighting, recover (linear), step; returns the batch's true statistics."""
        v = self.current
        if v is None:
            raise InputError("no model version published yet")
        total = dequantize(list(aggregate)[: self.layout.dims], spec) / v.upload_weights
        rec = stats_recover(total, self.model, self.layout, v.secrets)
        # the head's statistics of every round so far (true coordinates; stale by the body's steps only)
        # plus the MO's own data's: the least-squares head uses all of them
        m = self.cfg.head_memory
        self.memory = rec if self.memory is None else Recovered(
            rec.body, m * self.memory.t + rec.t, m * self.memory.p + rec.p, m * self.memory.mm + rec.mm,
            m * self.memory.m + rec.m, m * self.memory.count + rec.count)
        own = stats_recover(stats_upload(self.model, self.layout, self.data.x, self.data.y, seed=v.version,
                                         head_epochs=0), self.model, self.layout, None)
        mem = self.memory
        head = Recovered(rec.body, mem.t + own.t, mem.p + own.p, mem.mm + own.mm, mem.m + own.m,
                         mem.count + own.count)
        apply_recovered(self.model, self.layout, head, lr=self.cfg.body_lr * head.count / rec.count,
                        ridge=self.cfg.ridge)
        return rec


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


def pretrain(cfg: MarketConfig, mo: Dataset) -> nn.Module:
    arch = cfg.arch if cfg.model == "cnn" else {"in_features": mo.x.shape[1], "hidden": list(cfg.hidden),
                                                 "classes": 10}
    model = make_model(arch, cfg.seed)
    if cfg.public:
        check_public(model, cfg.public, allow_all=True)
    train(model, list(model.parameters()), mo.x, mo.y, epochs=cfg.mo_pre_epochs, batch_size=16, lr=0.05,
          seed=cfg.seed)
    return model
