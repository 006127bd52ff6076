"""`omniplus do`: a data owner's side of the market (thin layer over omniplus.ml and
omniplus.servers.data_owner).

  omniplus do train --public FILE --market ADDR --rpc URL --part I --of N --out UPDATE
      check the published public part against the task's on-chain modelHash, apply the batches
      already on-chain, train E epochs on this DO's partition of digits (own local private layers),
      clip and quantise with stochastic rounding; writes the k-bit update
  omniplus do register --market ADDR --rpc URL --key HEX      once per task
  omniplus do submit --market ADDR --rpc URL --key HEX --setup DIR --servers H:P,H:P,H:P
                     (--update UPDATE | --gradients FILE [--row I])
      compute the witness block in the clear, Shamir-share every wire (degree t among the n listed
      servers, n >= 2t+1) and send share j to server j only, signed with the DO's key (refused
      if not registered for the task). --update takes `do train`'s k-bit update; --gradients a
      floats file as for `omniplus prove` (quantised with its scale_bits). Server j must present
      the certificate whose sha256 the task's on-chain committee lists for it (pinned; no CA):
      an impostor is refused before any share leaves
  omniplus do submit --status --market ADDR --key HEX --servers ... (--rpc URL | --fingerprints FP,...)
      only ask each server what it knows about this DO's own submission, in a request signed by
      the DO's key (a server answers nobody else about it); with --rpc also which batch included
      it and its credit on-chain
"""

from __future__ import annotations

import argparse
import json
import sys
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
    t.add_argument("--part", type=int, required=True, help="this DO's partition of digits (0-based)")
    t.add_argument("--of", type=int, required=True, help="number of partitions")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, required=True)
    t.set_defaults(func=run_train)
    r = dsub.add_parser("register", help="register for the task (once)")
    r.add_argument("--market", required=True)
    r.add_argument("--rpc", required=True)
    r.add_argument("--key", required=True)
    r.set_defaults(func=lambda a: print(_market(a.rpc, a.market).register(a.key)["transactionHash"].hex()) or 0)
    s = dsub.add_parser("submit", help="share the update to the servers (or --status: ask them)")
    s.add_argument("--market", required=True, help="RollupMarket contract address")
    s.add_argument("--rpc", help="chain RPC URL (required to submit; with --status adds the on-chain outcome)")
    s.add_argument("--chain-id", type=int, default=31337, help="chain id when no --rpc is given (default 31337)")
    key = s.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", help="the DO's private key (hex)")
    key.add_argument("--keyfile", type=Path, help="file holding the DO's private key")
    s.add_argument("--servers", required=True, help="HOST:PORT,... public addresses, server 1 first")
    s.add_argument("--fingerprints", default=None,
                   help="0x sha256 of each server's certificate, server 1 first (default: the task's committee)")
    s.add_argument("--setup", type=Path, help="setup directory (circuit layout and parameters)")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--update", type=Path, help="a k-bit update written by `omniplus do train`")
    src.add_argument("--gradients", type=Path, help="a gradients JSON (see `omniplus prove --help`)")
    s.add_argument("--row", type=int, default=0, help="with --gradients: this DO's row (default 0)")
    s.add_argument("--threshold", "-t", type=int, default=1, help="sharing degree t (default 1)")
    s.add_argument("--timeout", type=float, default=30.0, help="per-server timeout in seconds")
    s.add_argument("--status", action="store_true", help="only query the servers' status for this DO")
    s.add_argument("--json", action="store_true", help="print the outcome as JSON")
    s.set_defaults(func=run_submit)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_train(args: argparse.Namespace) -> int:
    from omniplus.circuits.params import CircuitParams
    from omniplus.ml.config import MarketConfig, spec_for
    from omniplus.ml.model import make_model
    from omniplus.ml.public_model import current_public, read_public
    from omniplus.ml.roles import DataOwner, prepare_data
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
    partitions = prepare_data(cfg)[2]
    if not 0 <= args.part < args.of:
        raise SystemExit("--part must be in [0, --of)")
    make_model(doc["arch"], 0)  # architecture check before training
    do = DataOwner(args.part, "", "", partitions[args.part])
    q = quantize_update(do.train_update(w, doc["arch"], doc["public_layers"], cfg), spec, args.seed + args.part)
    args.out.write_text(json.dumps({"market": market.address, "q": q}))
    print(json.dumps({"out": str(args.out), "sq_norm": sum(v * v for v in q), "bound": params.norm_bound}))
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from omniplus.contracts.chain import load_key
    from omniplus.core.errors import InputError
    from omniplus.servers.data_owner import Destination, chain_outcome, server_status, submit_update
    from omniplus.servers.signing import address_of, checksum

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers:
        raise InputError("--servers is empty")
    key = load_key(args.key, args.keyfile)
    me = checksum(address_of(key))
    from omniplus.servers.pinning import parse_fingerprint

    fps = [parse_fingerprint(f.strip(), "--fingerprints") for f in (args.fingerprints or "").split(",") if f.strip()]
    to = Destination(servers=servers, fingerprints=fps, threshold=args.threshold, timeout=args.timeout)
    if args.status:
        market = _market(args.rpc, args.market) if args.rpc else None
        chain_id = market.chain_id if market is not None else args.chain_id
        rows = server_status(key=key, market_address=args.market, chain_id=chain_id, to=to, market=market)
        out: dict = {"do": me, "servers": rows}
        lines = [f"server-{r['server']}: {r['state']}" + (f" ({r['reason']})" if r["reason"] else "")
                 + (f", batch {r['batch_index']}" if r["batch_index"] >= 0 else "")
                 + (f", score {r['score']}" if r.get("score") is not None else "") for r in rows]
        scores = {r["score"] for r in rows if r.get("score") is not None}
        out["score"] = scores.pop() if len(scores) == 1 else None  # the servers agree (one screening)
        if args.rpc:
            out["chain"] = chain_outcome(_market(args.rpc, args.market), me)
            out["payment_wei"] = out["chain"]["paid_wei"]
            if out["chain"]["score"] is not None:
                out["score"] = out["chain"]["score"]  # the proven score (equals the servers' when screened)
            lines.append(_chain_line(out["chain"]))
        _print(args.json, out, lines)
        return 0
    if args.rpc is None or args.setup is None or (args.update is None and args.gradients is None):
        raise InputError("submitting needs --rpc, --setup and --update or --gradients (or use --status)")
    from omniplus.prover.mpc.layout import load_layout
    from omniplus.prover.trusted_setup import SetupDir

    setup = SetupDir.load(args.setup)
    row = _row(args, setup.params)
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    outcomes = submit_update(key=key, market=_market(args.rpc, args.market), setup=setup,
                             layout=load_layout(setup), row=row, to=to, progress=say)
    _print(args.json,
           {"do": me, "accepted": True,
            "servers": [{"server": o.server, "address": o.address, "accepted": o.accepted, "code": o.code,
                         "message": o.message} for o in outcomes]},
           [f"accepted by all {len(outcomes)} servers"])
    return 0


def _read(path: Path) -> bytes:
    from omniplus.core.errors import InputError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None


def _row(args: argparse.Namespace, params) -> list[int]:
    """The DO's quantised row: from `do train`'s update file, or quantised from a gradients file."""
    from omniplus.core.errors import InputError
    from omniplus.prover.quantize import load_gradients, quantize

    if args.update is not None:
        from omniplus.core.jsonfile import loads

        doc = loads(_read(args.update), str(args.update))
        q = doc.get("q") if isinstance(doc, dict) else None
        if q is None:
            raise InputError(f"{args.update}: not an update written by `omniplus do train` (no 'q' list)")
        if not isinstance(q, list) or len(q) != params.dims or not all(type(v) is int for v in q):
            raise InputError(f"{args.update}: 'q' must be a list of {params.dims} integers")
        return q  # range and norm are checked when the block is built
    scale_bits, rows = load_gradients(args.gradients)
    if not 0 <= args.row < len(rows):
        raise InputError(f"--row {args.row}: {args.gradients} has {len(rows)} row(s)")
    return quantize([rows[args.row]], scale_bits, params)[0]


def _chain_line(c: dict) -> str:
    if c["included_in_batch"] is None:
        return "on-chain: not in any batch yet"
    return (f"on-chain: included in batch {c['included_in_batch']} (tx {c['batch_tx']}); "
            f"score {c.get('score')}, paid {c.get('paid_wei', 0)} wei; "
            f"credit {c['credit_wei']} wei, withdrawn {c['withdrawn_wei']} wei")


def _print(as_json: bool, data: dict, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        for line in lines:
            print(line)
