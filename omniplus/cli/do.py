"""`omniplus do`: a data owner's side of the market (thin layer over ml/market.py).

  omniplus do train --public FILE --market ADDR --rpc URL --part I --of N --out UPDATE
      check the published public part against the task's on-chain modelHash, apply the batches
      already on-chain, train E epochs on this DO's share of digits (own local private layers),
      clip and quantise with stochastic rounding; writes the k-bit update
  omniplus do register --market ADDR --rpc URL --key HEX      once per task
  omniplus do submit --update UPDATE --market ADDR --rpc URL --key HEX --setup DIR
                     --servers H:P,H:P,H:P --ca FILE
      share the update and send share j to server j (refused if not registered for the task)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _market(rpc: str, address: str):
    from omniplus.contracts.chain import connect
    from omniplus.contracts.rollup import RollupMarket

    return RollupMarket.at(connect(rpc), address)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("do", help="data owner: train, register, submit", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="do_cmd", metavar="CMD")
    t = dsub.add_parser("train", help="train and quantise an update")
    t.add_argument("--public", type=Path, required=True, help="the MO's published public_model.json")
    t.add_argument("--market", required=True)
    t.add_argument("--rpc", required=True)
    t.add_argument("--part", type=int, required=True, help="this DO's share index of digits")
    t.add_argument("--of", type=int, required=True, help="number of shares")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, required=True)
    t.set_defaults(func=run_train)
    r = dsub.add_parser("register", help="register for the task (once)")
    r.add_argument("--market", required=True)
    r.add_argument("--rpc", required=True)
    r.add_argument("--key", required=True)
    r.set_defaults(func=lambda a: print(_market(a.rpc, a.market).register(a.key)["transactionHash"].hex()) or 0)
    s = dsub.add_parser("submit", help="share the update to the servers")
    s.add_argument("--update", type=Path, required=True)
    s.add_argument("--market", required=True)
    s.add_argument("--rpc", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--setup", type=Path, required=True)
    s.add_argument("--servers", required=True, help="comma-separated public addresses, server 1 first")
    s.add_argument("--ca", type=Path, required=True)
    s.add_argument("--threshold", "-t", type=int, default=1)
    s.set_defaults(func=run_submit)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_train(args: argparse.Namespace) -> int:
    from omniplus.circuits.params import CircuitParams
    from omniplus.ml.market import DataOwner, MarketConfig, current_public, prepare_data, read_public, spec_for
    from omniplus.ml.model import make_model
    from omniplus.ml.updates import quantize_update

    market = _market(args.rpc, args.market)
    doc = read_public(args.public, market.contract.functions.modelHash().call())
    t = market.contract.functions
    params = CircuitParams(t.batchSize().call(), t.dims().call(), t.bits().call(), t.normBound().call())
    # k, B and d come from the task on-chain; only the float clip comes from the MO's file
    spec = spec_for(params.dims, params.bits, params.norm_bound, doc["quant"].clip)
    w = current_public(doc["weights"], market, params, spec)
    cfg = MarketConfig(dos=args.of, do_epochs=args.epochs, seed=args.seed, hidden=tuple(doc["arch"]["hidden"]),
                       public=tuple(doc["public_layers"]))
    shares = prepare_data(cfg)[2]
    if not 0 <= args.part < args.of:
        raise SystemExit("--part must be in [0, --of)")
    make_model(doc["arch"], 0)  # architecture check before training
    do = DataOwner(args.part, "", "", shares[args.part])
    q = quantize_update(do.train_update(w, doc["arch"], doc["public_layers"], cfg), spec, args.seed + args.part)
    args.out.write_text(json.dumps({"market": market.address, "q": q}))
    print(json.dumps({"out": str(args.out), "sq_norm": sum(v * v for v in q), "bound": params.norm_bound}))
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from omniplus.contracts.chain import address_of
    from omniplus.ml.market import submit_row
    from omniplus.prover.mpc.layout import load_layout
    from omniplus.prover.trusted_setup import SetupDir

    market = _market(args.rpc, args.market)
    setup = SetupDir.load(args.setup)
    q = json.loads(args.update.read_text())["q"]
    submit_row(setup, load_layout(setup), market, args.key, address_of(args.key), q, args.ca.read_bytes(),
               [s.strip() for s in args.servers.split(",")], args.threshold)
    print("submitted")
    return 0
