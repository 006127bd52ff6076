"""The market's rule in one process (no network, no proofs): the same MO and DO code as the devnet run
(omniplus/market_run.py), with the servers' check replaced by the same range/norm bound and the batch
aggregate by the sum of the accepted rows. For tests and for choosing sizes; the devnet run is the real
thing."""

from __future__ import annotations

import torch

from omniplus.ml.config import MarketConfig, Progress, spec_for
from omniplus.ml.model import accuracy, public_params
from omniplus.ml.roles import DataOwner, ModelOwner, prepare_data, pretrain
from omniplus.ml.updates import flatten


def simulate_market(cfg: MarketConfig, progress: Progress | None = None) -> dict:
    """MO-only and final accuracy, per round accuracy and the perturbed model's own accuracy."""
    cfg.check()
    say = progress or (lambda _m: None)
    torch.manual_seed(cfg.seed)
    mo_data, test, partitions = prepare_data(cfg)
    model = pretrain(cfg, mo_data)
    mo_only = accuracy(model, test.x, test.y)
    do_samples = float(sorted(len(p) for p in partitions)[len(partitions) // 2])
    mo = ModelOwner(cfg, model, mo_data, do_samples)
    dims = cfg.dims or mo.layout.dims
    dos = [DataOwner(i, "", "", partitions[i], cfg.attack if i in cfg.malicious else None) for i in range(cfg.dos)]
    rounds = []
    for r in range(cfg.rounds):
        members = dos[r * cfg.batch : (r + 1) * cfg.batch]
        if not members:
            break
        v = mo.new_version(r)
        doc = {"version": r, "arch": model.arch, "public_layers": v.layers,
               "weights": flatten(public_params(v.published, v.layers)).to(torch.float32),
               "upload": {"weights": v.upload_weights, "clip": v.clip, "head_epochs": cfg.head_epochs}}
        spec = spec_for(dims, cfg.bits, cfg.norm_bound, v.clip)
        rows = [do.version_row(doc, spec, seed=cfg.seed * 100003 + 97 * r + do.index) for do in members]
        ok = [row for row in rows if sum(x * x for x in row) <= cfg.norm_bound
              and all(-spec.limit - 1 <= x <= spec.limit for x in row)]
        if not ok:
            continue
        mo.apply([sum(c) for c in zip(*ok, strict=True)], spec)
        acc = accuracy(model, test.x, test.y)
        pert = accuracy(v.published, test.x, test.y) if cfg.encrypted else None
        rounds.append({"round": r, "accepted": len(ok), "rejected": len(rows) - len(ok), "accuracy": acc,
                       "perturbed_accuracy": pert})
        say(f"[sim] round {r}: {len(ok)}/{len(rows)} accepted, accuracy {acc:.1%}")
    return {"mo_only_accuracy": mo_only, "final_accuracy": rounds[-1]["accuracy"] if rounds else mo_only,
            "per_round": rounds, "dims": dims}
