"""`omniplus bench attack`: who gets paid and what the model ends at, against the attack rate.

Default table (`--table pay`, issue 12): rows for equal pay (today's market: every valid DO paid
the same), contribution pay (ml/pay_round.py: the MO-reference screen, `select` on the batch scores,
the budget pro rata to the scores) and contribution + multi-Krum over the round's batch aggregates,
for random-in-bound, sign-flip, zero (free-rider) and x100 attackers at 0-16 %; columns: the share of
all payments that went to attackers and the final accuracy. `--table accuracy` is the earlier table
(OmniLytics Table 5), described below.

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
import copy
import os
import time
from typing import Any

import numpy as np
import torch

from omniplus.bench.common import Column, add_output_arguments, int_list, log, report
from omniplus.ml.attacks import ATTACKS, PAY_ATTACKS, RANDOM_SPREAD, apply_attack, round_attack
from omniplus.ml.config import MarketConfig
from omniplus.ml.krum import multi_krum
from omniplus.ml.model import accuracy, check_public, private_params, public_params, public_size, train
from omniplus.ml.pay_round import PayRule, market_round, reference_update
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


# ------------------------------------------------------------------ the pay table (issue 12)
PAY_RATES = (0, 4, 8, 16)
PAY_SCHEMES = {  # name: rule (mu filled from --mu, screen from --screen-cos)
    "equal": dict(mode="equal"),
    "contribution": dict(mode="contribution"),
    "contribution_krum": dict(mode="contribution", krum=True),
    "contribution_noscreen": dict(mode="contribution", screen=False),
}
DEFAULT_PAY_SCHEMES = ("equal", "contribution", "contribution_krum", "contribution_noscreen")
BATCH_BUDGET = 10**18 + 7  # wei per batch (odd, so the floor leaves dust to account for)


def pay_rule(name: str, *, mu: float, screen_cos: float, n_min: int) -> PayRule:
    spec = PAY_SCHEMES[name]
    return PayRule(mode=spec["mode"], n_min=n_min, mu=mu if spec.get("krum") else None,
                   screen_cos=screen_cos if spec.get("screen", True) and spec["mode"] == "contribution" else None)


def run_pay_scheme(cfg: MarketConfig, rule: PayRule, attack: str | None, attackers: set[int], partitions: list,
                   mo: Any, test: Any, pre: Any, mo_rounds: int, rep: int, collude: bool,
                   reference_mode: str = "mo+last") -> dict[str, Any]:
    """One market run: per MO round every DO trains from the public part, the round's batches (a fresh
    shuffle per round, the same in every scheme) are settled by `rule`, the MO steps on the result."""
    model = copy.deepcopy(pre)
    layers = check_public(model, cfg.fedavg_public)
    spec = cfg.spec(public_size(model, layers))
    dos = len(partitions)
    owners = [DataOwner(i, "", "", partitions[i]) for i in range(dos)]
    mo_owner = DataOwner(-1, "", "", mo)
    paid_att = paid_all = dust = budget_all = 0
    honest_valid = honest_unpaid = att_paid_slots = 0
    last = None
    for r in range(mo_rounds):
        w = flatten(public_params(model, layers)).to(torch.float32)
        skip = attack in ("zero", "random_inbound")  # these never train
        upd = {i: (torch.zeros(w.numel(), dtype=torch.float64) if skip and i in attackers
                   else owners[i].train_update(w, model.arch, layers, cfg)) for i in range(dos)}
        bad = sorted(attackers)
        sent = dict(zip(bad, round_attack(attack, [upd[i] for i in bad], cfg.clip, 50_000 + 1000 * rep + r,
                                          collude=collude), strict=True)) if attack and bad else {}
        rows = {i: (quantize_update(sent[i], spec, 1000 * r + i, clip=False) if i in sent
                    else quantize_update(upd[i], spec, 1000 * r + i)) for i in range(dos)}
        own = mo_owner.train_update(w, model.arch, layers, cfg)
        ref = reference_update(own, last if reference_mode == "mo+last" else None)
        reference = quantize_update(ref * (cfg.clip / max(float(ref.norm()), 1e-12)), spec, 999_000 + r)
        order = np.random.default_rng(7_000 + 100 * rep + r).permutation(dos).tolist()
        batches = [(order[g : g + cfg.batch], [rows[i] for i in order[g : g + cfg.batch]])
                   for g in range(0, dos, cfg.batch)]
        out = market_round(batches, spec, cfg.norm_bound, BATCH_BUDGET, rule, reference)
        for b in out.batches:
            budget_all += BATCH_BUDGET
            dust += b.dust
            for i in b.members:
                amount = b.paid.get(i, 0)
                paid_all += amount
                if i in attackers:
                    paid_att += amount
                    att_paid_slots += amount > 0
                elif b.reasons.get(i) != "bound":
                    honest_valid += 1
                    honest_unpaid += amount == 0
        assert paid_all + dust == budget_all  # conservation, every batch
        last = out.delta if out.delta is not None else last
        if out.delta is not None:
            unflatten_into(public_params(model, layers),
                           (w.to(torch.float64) + out.delta[: w.numel()]).to(torch.float32))
        train(model, private_params(model, layers), mo.x, mo.y, epochs=cfg.mo_epochs, batch_size=16, lr=0.05,
              seed=cfg.seed + r)
    return {"accuracy": accuracy(model, test.x, test.y), "paid_att": paid_att, "paid_all": paid_all,
            "att_paid_slots": att_paid_slots, "honest_valid": honest_valid, "honest_unpaid": honest_unpaid}


def run_pay_bench(rates: list[int], attacks: list[str], schemes: list[str], dos: int, batch: int, mo_rounds: int,
                  repeats: int, epochs: int, mu: float, screen_cos: float, n_min: int,
                  collude: bool, reference_mode: str = "mo+last") -> list[dict]:
    """Rows (attack, rate, scheme). Rate 0 is run once per scheme (attack "none"); every cell uses the
    same attacker set per (rate, repeat) and the same batch shuffles, so schemes differ only by the rule."""
    torch.set_num_threads(1)
    configs = ([("none", 0)] if 0 in rates else []) + [(a, r) for a in attacks for r in rates if r > 0]
    rules = {s: pay_rule(s, mu=mu, screen_cos=screen_cos, n_min=n_min) for s in schemes}
    base_acc: dict[str, float] = {}
    setups: dict[int, tuple] = {}  # per repeat: the data split and the pretrained model (shared by every cell)
    rows: list[dict] = []
    for attack, rate in configs:
        n_att = round(dos * rate / 100)
        for name in schemes:
            agg = {"accuracy": [], "paid_att": 0, "paid_all": 0, "att_paid_slots": 0, "honest_valid": 0,
                   "honest_unpaid": 0}
            for rep in range(repeats):
                if rep not in setups:
                    cfg = MarketConfig(dos=dos, batch=batch, rounds=-(-dos // batch), seed=rep, do_epochs=epochs,
                                       do_warmup_epochs=max(1, epochs // 5), plain_gas=False, **FEDAVG_STATEMENT)
                    mo, test, partitions = prepare_data(cfg)
                    setups[rep] = (cfg, mo, test, partitions, pretrain(cfg, mo))
                cfg, mo, test, partitions, pre = setups[rep]
                att = set(np.random.default_rng(1000 + rep + 31 * rate).choice(dos, size=n_att, replace=False).tolist())
                res = run_pay_scheme(cfg, rules[name], None if attack == "none" else attack, att, partitions, mo,
                                     test, pre, mo_rounds, rep, collude, reference_mode)
                agg["accuracy"].append(res.pop("accuracy"))
                for k, v in res.items():
                    agg[k] += v
            acc = float(np.mean(agg["accuracy"]))
            if attack == "none":
                base_acc[name] = acc
            row = {"attack": attack, "attack_rate_pct": rate, "attackers": n_att, "scheme": name,
                   "attacker_pay_share": agg["paid_att"] / agg["paid_all"] if agg["paid_all"] else 0.0,
                   "attackers_paid": agg["att_paid_slots"], "accuracy": round(acc, 4),
                   "acc_vs_no_attack": (round(acc - base_acc[name], 4) if name in base_acc else None),
                   "honest_unpaid_pct": (round(100 * agg["honest_unpaid"] / agg["honest_valid"], 1)
                                         if agg["honest_valid"] else None),
                   "load1": round(os.getloadavg()[0], 2)}
            rows.append(row)
            log(f"[attack] {attack} {rate}% {name}: attackers' share {row['attacker_pay_share']:.2%}, "
                f"accuracy {acc:.1%} (load {row['load1']})")
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", choices=("pay", "accuracy"), default="pay",
                   help="pay: payments and accuracy by pay rule (default); accuracy: the OmniLytics Table 5 columns")
    p.add_argument("--rates", type=int_list, default=None,
                   help="attack rates in %% (default 0,4,8,16 for pay, 0,2,…,16 for accuracy)")
    p.add_argument("--dos", type=int, default=50, help="DOs per MO round (default 50)")
    p.add_argument("--batch", type=int, default=5, help="DOs per batch N (default 5)")
    p.add_argument("--mo-rounds", type=int, default=None, help="MO rounds (default 3 for pay, 2 for accuracy)")
    p.add_argument("--repeats", type=int, default=None,
                   help="runs averaged per cell (default 2 for pay, 1 for accuracy)")
    p.add_argument("--epochs", type=int, default=20, help="DO training epochs (default 20)")
    p.add_argument("--full", action="store_true",
                   help="pay table at a larger size: 100 DOs, 5 MO rounds, 3 repeats (≈ 4x the default's time)")
    p.add_argument("--attacks", default=",".join(PAY_ATTACKS),
                   help=f"pay table: attacks (default {','.join(PAY_ATTACKS)})")
    p.add_argument("--pay-schemes", default=",".join(DEFAULT_PAY_SCHEMES),
                   help=f"pay table: rows per cell (default {','.join(DEFAULT_PAY_SCHEMES)})")
    p.add_argument("--mu", type=float, default=0.25, help="pay table: multi-Krum μ (default 0.25)")
    p.add_argument("--screen-cos", type=float, default=0.1,
                   help="pay table: the reference screen's cosine τ (default 0.1)")
    p.add_argument("--reference", choices=("mo+last", "mo"), default="mo+last",
                   help="pay table: the screen's reference: the MO's own update plus last round's step (default) "
                        "or the MO's own update only")
    p.add_argument("--n-min", type=int, default=2, help="pay table: N_min per batch (default 2)")
    p.add_argument("--no-collude", action="store_true",
                   help="pay table: attackers act alone (default: a round's attackers send one shared vector)")
    p.add_argument("--attack", choices=ATTACKS, default="random", help="accuracy table: what attackers send")
    p.add_argument("--schemes", default=",".join(SCHEMES),
                   help=f"accuracy table: columns (default {','.join(SCHEMES)})")
    add_output_arguments(p)


def run(args: argparse.Namespace) -> int:
    if args.table == "pay":
        return run_pay(args)
    return run_accuracy(args)


def run_pay(args: argparse.Namespace) -> int:
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    schemes = [s.strip() for s in args.pay_schemes.split(",") if s.strip()]
    bad = [a for a in attacks if a not in PAY_ATTACKS] + [s for s in schemes if s not in PAY_SCHEMES]
    if bad:
        raise SystemExit(f"unknown attacks/schemes {bad}; attacks {list(PAY_ATTACKS)}, schemes {list(PAY_SCHEMES)}")
    rates = args.rates or list(PAY_RATES)
    dos = 100 if args.full and args.dos == 50 else args.dos
    mo_rounds = args.mo_rounds or (5 if args.full else 3)
    repeats = args.repeats or (3 if args.full else 2)
    t0 = time.monotonic()
    log("[attack] simulated in-process: validation = the circuit's range/norm bound, scores and budget split = "
        "prover/contribution.py; no servers or chain are started")
    rows = run_pay_bench(rates, attacks, schemes, dos, args.batch, mo_rounds, repeats, args.epochs, args.mu,
                         args.screen_cos, args.n_min, not args.no_collude, args.reference)
    columns = [Column("attack", "attack"), Column("attack_rate_pct", "rate %"), Column("attackers", "att."),
               Column("scheme", "pay rule"), Column("attacker_pay_share", "att. share", "{:.2%}"),
               Column("attackers_paid", "att. paid"), Column("accuracy", "accuracy", "{:.1%}"),
               Column("acc_vs_no_attack", "vs no attack", "{:+.1%}"),
               Column("honest_unpaid_pct", "honest unpaid %", "{:.1f}"), Column("load1", "load 1m", "{:.2f}")]

    def draw(fig: Any) -> None:
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        for a in attacks:
            for s in schemes:
                pts = [r for r in rows if r["scheme"] == s and r["attack"] in (a, "none")]
                x = [r["attack_rate_pct"] for r in pts]
                ax1.plot(x, [100 * r["attacker_pay_share"] for r in pts], "o-", label=f"{a}/{s}")
                ax2.plot(x, [r["accuracy"] for r in pts], "o-", label=f"{a}/{s}")
        ax1.set_xlabel("attack rate (%)")
        ax1.set_ylabel("attackers' share of payments (%)")
        ax2.set_xlabel("attack rate (%)")
        ax2.set_ylabel("final accuracy")
        ax2.legend(fontsize=5, ncol=2)

    notes = [
        "simulated in-process: validation = the circuit's range/norm bound on each quantised update; "
        "scores s_i = <g_i, a - g_i>, select() and split_budget() from prover/contribution.py",
        f"{dos} DOs per MO round, batches of N={args.batch} (fresh shuffle per round), N_min={args.n_min}, "
        f"{mo_rounds} MO rounds, {repeats} run(s) per cell; {time.monotonic() - t0:.0f}s",
        "equal: every valid DO paid budget//n (today); contribution: reference screen (cos >= "
        f"{args.screen_cos:g} against the MO's reference: {args.reference}) + batch scores; "
        f"contribution_krum: + multi-Krum (mu={args.mu:g}) over batch aggregates before the MO step; "
        "contribution_noscreen: batch scores only",
        ("attackers act alone" if args.no_collude else "colluding attackers: a round's attackers send one "
         "shared vector") + "; in-bound attacks use the whole clip norm; scale = x100 (breaks the bound)",
        "att. share = attackers' wei / all wei paid; honest unpaid % = valid honest DO-rounds paid 0",
    ]
    return report(args, "attack", rows, columns, notes, draw)


def run_accuracy(args: argparse.Namespace) -> int:
    args.rates = args.rates or list(RATES)
    args.mo_rounds = args.mo_rounds or 2
    args.repeats = args.repeats or 1
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
            "zero": "the zero update (a free-rider)",
        }[args.attack],
        "fedavg/krum_*: no bound (every update aggregated, as OmniLytics); bound_*: the servers reject "
        "updates outside the range/norm bound, then multi-Krum over batch aggregates",
    ]
    return report(args, "attack", rows, columns, notes, draw)
