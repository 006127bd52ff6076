"""`omniplus mo`: the model owner's side of the market (thin layer over omniplus.market_run and omniplus.ml).

  omniplus mo pretrain --out DIR   pretrain on the MO's little data, write the public part
                                   (what DOs fetch) and print its hash (the task's modelHash)
  omniplus mo run [options]        the whole market on a local prover network: anvil, three
                                   servers over mutual TLS, RollupMarket with the public part's
                                   hash, the DOs for R rounds, FedAvg from the on-chain aggregates
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from omniplus.api import log


def add_market_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by `mo run` and `demo` (defaults: omniplus.ml.config.MarketConfig)."""
    from omniplus.ml.attacks import ATTACKS
    from omniplus.ml.config import MarketConfig

    c = MarketConfig()
    p.add_argument("--dos", type=int, default=c.dos, help=f"data owners (default {c.dos})")
    p.add_argument("--malicious", default=",".join(map(str, c.malicious)),
                   help="indices of attacking DOs, comma-separated ('' for none; default %(default)s)")
    p.add_argument("--attack", choices=ATTACKS, default=c.attack, help="what attackers send (default %(default)s)")
    p.add_argument("--rounds", type=int, default=c.rounds, help=f"rounds = batches R (default {c.rounds})")
    p.add_argument("--batch", type=int, default=c.batch, help=f"DOs per batch N (default {c.batch})")
    p.add_argument("--hidden", default=",".join(map(str, c.hidden)), help="hidden layer widths (default %(default)s)")
    p.add_argument("--public", default="", help="published layers: all (default) or all but the output layer")
    p.add_argument("--bits", type=int, default=c.bits, help=f"k bits per coordinate (default {c.bits})")
    p.add_argument("--norm-bound", type=int, default=c.norm_bound, help=f"squared L2 bound B (default {c.norm_bound})")
    p.add_argument("--clip-factor", type=float, default=c.clip_factor,
                   help=f"clip = this × the MO's own weighted upload (default {c.clip_factor})")
    p.add_argument("--plain-model", action="store_true",
                   help="publish the true model instead of the perturbed one (the same rule, to compare)")
    p.add_argument("--mo-samples", type=int, default=c.mo_samples, help=f"MO's own samples (default {c.mo_samples})")
    p.add_argument("--alpha", type=float, default=None, help="Dirichlet α for non-IID DOs (default IID)")
    p.add_argument("--head-epochs", type=int, default=c.head_epochs,
                   help=f"epochs of a DO's own local head (default {c.head_epochs})")
    p.add_argument("--seed", type=int, default=c.seed)
    p.add_argument("--workdir", type=Path, default=None, help="configs, logs, the public model (default: temp)")


def config_from(args: argparse.Namespace):  # -> MarketConfig
    from omniplus.ml.config import MarketConfig

    return MarketConfig(
        dos=args.dos, malicious=tuple(int(x) for x in args.malicious.split(",") if x.strip()),
        attack=args.attack, rounds=args.rounds, batch=args.batch,
        hidden=tuple(int(x) for x in args.hidden.split(",") if x.strip()),
        public=tuple(x.strip() for x in args.public.split(",") if x.strip()), bits=args.bits,
        norm_bound=args.norm_bound, clip_factor=args.clip_factor, mo_samples=args.mo_samples, alpha=args.alpha,
        head_epochs=args.head_epochs, seed=args.seed, encrypted=not args.plain_model,
    ).check()


def run_with_workdir(cfg, workdir: Path | None) -> dict:
    from omniplus.bench.gas import plain_session_gas
    from omniplus.market_run import run_market

    if workdir is not None:
        return run_market(cfg, workdir, log, baseline_gas=plain_session_gas)
    with tempfile.TemporaryDirectory(prefix="omniplus-market-") as root:
        return run_market(cfg, root, log, baseline_gas=plain_session_gas)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mo", help="model owner: pretrain, publish, run the market", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    msub = p.add_subparsers(dest="mo_cmd", metavar="CMD")
    pre = msub.add_parser("pretrain", help="pretrain and write the public part")
    pre.add_argument("--out", type=Path, required=True, help="directory for model.pt and public_model.json")
    pre.add_argument("--mo-samples", type=int, default=40)
    pre.add_argument("--hidden", default="8")
    pre.add_argument("--public", default="fc1")
    pre.add_argument("--seed", type=int, default=0)
    pre.set_defaults(func=run_pretrain)
    r = msub.add_parser("run", help="the market end to end on a local prover network")
    add_market_arguments(r)
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.set_defaults(func=run_market_cmd)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_pretrain(args: argparse.Namespace) -> int:
    import torch

    from omniplus.ml.config import MarketConfig
    from omniplus.ml.model import accuracy, check_public, public_params, public_size
    from omniplus.ml.public_model import write_public
    from omniplus.ml.roles import prepare_data, pretrain
    from omniplus.ml.updates import flatten

    cfg = MarketConfig(mo_samples=args.mo_samples, hidden=tuple(int(x) for x in args.hidden.split(",")),
                       public=tuple(args.public.split(",")), seed=args.seed, bits=6, norm_bound=7535)
    mo, test, _ = prepare_data(cfg)
    model = pretrain(cfg, mo)
    layers = check_public(model, cfg.fedavg_public)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "model.pt")  # the whole model: stays with the MO
    spec = cfg.spec(public_size(model, layers))
    h = write_public(args.out / "public_model.json", model.arch, layers,
                     flatten(public_params(model, layers)), spec)
    print(json.dumps({"mo_only_accuracy": accuracy(model, test.x, test.y), "model_hash": "0x" + h.hex(),
                      "public_model": str(args.out / "public_model.json"), "public_size": spec.dims}))
    return 0


def run_market_cmd(args: argparse.Namespace) -> int:
    from omniplus.market_run import format_summary

    s = run_with_workdir(config_from(args), args.workdir)
    print(json.dumps(s, default=str) if args.json else format_summary(s))
    return 0
