"""`omniplus bench attack`: final accuracy against the attack rate (OmniLytics Table 5).

Simulated in-process (no servers, no chain): the servers' validity check is exactly the
circuit's range and norm bound, applied here to each quantised update, and the aggregate is the
sum of the accepted updates — what the prover network computes on shares and posts on-chain.
As in OmniLytics, each MO round runs P batches of N DOs in parallel from the same public model;
the MO then keeps the m batch aggregates multi-Krum selects (μ) and averages them.

Columns: plain FedAvg with no bound (every update averaged), OmniLytics' multi-Krum without the
bound (μ = 0.5, 0.25), and this market: the bound alone (FedAvg over the accepted updates) and
the bound plus multi-Krum (μ = 0.5, 0.25).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from omniplus.bench.common import Column, add_output_arguments, int_list, log, report
from omniplus.ml.attacks import ATTACKS, RANDOM_SPREAD, apply_attack
from omniplus.ml.config import MarketConfig
from omniplus.ml.krum import multi_krum
from omniplus.ml.model import accuracy, check_public, private_params, public_params, public_size, train
from omniplus.ml.roles import DataOwner, prepare_data, pretrain
from omniplus.ml.updates import dequantize, flatten, quantize_update, unflatten_into

RATES = (0, 2, 4, 6, 8, 12, 16)
SCHEMES = {  # name: (bound, mu or None for plain FedAvg)
    "fedavg": (False, None),
    "krum_0.5": (False, 0.5),
    "krum_0.25": (False, 0.25),
    "bound_fedavg": (True, None),
    "bound_krum_0.5": (True, 0.5),
    "bound_krum_0.25": (True, 0.25),
}


# the FedAvg split's statement (the market's former default: MLP 64→8→10, fc1 traded, k=6, B=7535)
FEDAVG_STATEMENT = dict(hidden=(8,), public=("fc1",), bits=6, norm_bound=7535)


def run_scheme(cfg: MarketConfig, bound: bool, mu: float | None, attackers: set[int], dos: int,
               mo_rounds: int, partitions: list, mo: Any, test: Any) -> tuple[float, int]:
    """One run: final accuracy and how many attacker updates the bound rejected."""
    model = pretrain(cfg, mo)
    layers = check_public(model, cfg.fedavg_public)
    spec = cfg.spec(public_size(model, layers))
    owners = [DataOwner(i, "", "", partitions[i], cfg.attack if i in attackers else None) for i in range(dos)]
    rejected = 0
    for r in range(mo_rounds):
        w = flatten(public_params(model, layers)).to(torch.float32)
        groups: list[torch.Tensor] = []
        counts: list[int] = []
        for g in range(0, dos, cfg.batch):
            vecs = []
            for do in owners[g : g + cfg.batch]:
                upd = do.train_update(w, model.arch, layers, cfg) if do.attack != "random" else torch.zeros(w.numel())
                seed = 1000 * r + do.index
                if do.attack is None:
                    vecs.append(dequantize(quantize_update(upd, spec, seed), spec))
                elif bound:
                    q = quantize_update(apply_attack(do.attack, upd, seed), spec, seed, clip=False)
                    if sum(v * v for v in q) > cfg.norm_bound:
                        rejected += 1  # the servers' validation: never aggregated, never paid
                        continue
                    vecs.append(dequantize(q, spec))
                else:
                    vecs.append(torch.nn.functional.pad(apply_attack(do.attack, upd, seed).to(torch.float64),
                                                        (0, spec.dims - w.numel())))
            if vecs:
                groups.append(torch.stack(vecs).mean(0))
                counts.append(len(vecs))
        keep = list(range(len(groups))) if mu is None else multi_krum(groups, mu)
        total = sum(counts[i] for i in keep)
        delta = sum(groups[i] * counts[i] for i in keep) / total
        unflatten_into(public_params(model, layers), (w.to(torch.float64) + delta[: w.numel()]).to(torch.float32))
        train(model, private_params(model, layers), mo.x, mo.y, epochs=cfg.mo_epochs, batch_size=16, lr=0.05,
              seed=cfg.seed + r)
    return accuracy(model, test.x, test.y), rejected


def run_attack_bench(rates: list[int], dos: int, batch: int, mo_rounds: int, repeats: int, attack: str,
                     schemes: list[str], epochs: int) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for rate in rates:
        row: dict[str, Any] = {"attack_rate_pct": rate, "attackers": round(dos * rate / 100)}
        rej = 0
        for name in schemes:
            bound, mu = SCHEMES[name]
            accs = []
            for rep in range(repeats):
                cfg = MarketConfig(dos=dos, batch=batch, rounds=-(-dos // batch), attack=attack, seed=rep,
                                   do_epochs=epochs, do_warmup_epochs=max(1, epochs // 5), plain_gas=False,
                                   **FEDAVG_STATEMENT)
                mo, test, partitions = prepare_data(cfg)
                rng = np.random.default_rng(1000 + rep)
                attackers = set(rng.choice(dos, size=row["attackers"], replace=False).tolist())
                acc, rj = run_scheme(cfg, bound, mu, attackers, dos, mo_rounds, partitions, mo, test)
                accs.append(acc)
                rej += rj
            row[name] = round(float(np.mean(accs)), 4)
            log(f"[attack] rate {rate}% {name}: {row[name]:.1%}")
        row["rejected_by_bound"] = rej
        rows.append(row)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rates", type=int_list, default=list(RATES), help="attack rates in %% (default 0,2,…,16)")
    p.add_argument("--dos", type=int, default=50, help="DOs per MO round (default 50)")
    p.add_argument("--batch", type=int, default=5, help="DOs per batch N (default 5)")
    p.add_argument("--mo-rounds", type=int, default=2, help="MO rounds (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="runs averaged per cell (default 1)")
    p.add_argument("--epochs", type=int, default=20, help="DO training epochs (default 20)")
    p.add_argument("--attack", choices=ATTACKS, default="random", help="what attackers send (default random)")
    p.add_argument("--schemes", default=",".join(SCHEMES), help=f"columns (default {','.join(SCHEMES)})")
    add_output_arguments(p)


def run(args: argparse.Namespace) -> int:
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise SystemExit(f"unknown schemes {unknown}; choose from {list(SCHEMES)}")
    t0 = time.monotonic()
    log("[attack] simulated in-process: the servers' validity check is the circuit's range/norm bound, "
        "applied to each quantised update; no servers or chain are started")
    rows = run_attack_bench(args.rates, args.dos, args.batch, args.mo_rounds, args.repeats, args.attack,
                            schemes, args.epochs)
    columns = [Column("attack_rate_pct", "attack %"), Column("attackers", "attackers"),
               *[Column(s, s, "{:.1%}") for s in schemes], Column("rejected_by_bound", "rejected")]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for s in schemes:
            ax.plot([r["attack_rate_pct"] for r in rows], [r[s] for r in rows], "o-", label=s)
        ax.set_xlabel("attack rate (%)")
        ax.set_ylabel("final accuracy")
        ax.set_title(f"{args.attack} attackers, {args.dos} DOs in batches of {args.batch}")
        ax.legend()

    notes = [
        "simulated in-process: the servers' validity check = the circuit's range/norm bound on each "
        "quantised update; aggregates as the prover network would post them",
        f"{args.dos} DOs per MO round in batches of N={args.batch}; multi-Krum over the batch aggregates; "
        f"{args.repeats} run(s) per cell; {time.monotonic() - t0:.0f}s",
        f"attack {args.attack}: " + {
            "random": f"uniform noise in [-{RANDOM_SPREAD:g}, {RANDOM_SPREAD:g}] per coordinate",
            "scale": "the honest update x100",
            "signflip": "minus the honest update",
        }[args.attack],
        "fedavg/krum_*: no bound (every update aggregated, as OmniLytics); bound_*: the servers reject "
        "updates outside the range/norm bound, then multi-Krum over batch aggregates",
    ]
    return report(args, "attack", rows, columns, notes, draw)
