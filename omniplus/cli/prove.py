"""`omniplus prove`: one Groth16 proof of the batch statement with a chosen backend."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omniplus.prover.backends.base import BACKEND_NAMES

HELP = """Quantise the gradients file, build the witness and prove the batch statement.

The gradients file is JSON {"scale_bits": f, "gradients": [[float, ...], ...]}: one row per DO
(at most the setup's N rows; missing rows are zero updates), d floats each. Each value is
quantised to round(x * 2^f) and must fit the setup's k-bit range and squared-norm bound.
The public inputs are [ctx, W_0..W_(M-1)]: the packed aggregate words themselves, and ctx, a hash
of the market context (chain id, market address, task, batch index, payees, model version) given
by the flags below.
Writes proof.json, public.json (snarkjs format) and meta.json into --out."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prove", help="prove a batch statement", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=BACKEND_NAMES, default="snarkjs",
                   help="prover engine (default snarkjs)")
    p.add_argument("--setup", type=Path, required=True, help="setup directory from `omniplus setup`")
    p.add_argument("--gradients", type=Path, required=True, help="gradients JSON file (see above)")
    p.add_argument("--out", type=Path, required=True, help="output directory (must be new or empty)")
    p.add_argument("--chain-id", type=int, default=31337, help="binding: chain id (default 31337, anvil)")
    p.add_argument("--market", default="0x" + "00" * 20, help="binding: RollupMarket address")
    p.add_argument("--task-id", type=int, default=0, help="binding: the market's task id")
    p.add_argument("--batch-index", type=int, default=0, help="binding: batch index")
    p.add_argument("--model-version", type=int, default=None,
                   help="binding: the public model version the DOs trained from (default: the batch index)")
    p.add_argument("--payees", default="", help="binding: comma-separated payee addresses")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.api import prove
    from omniplus.prover.binding import BindingContext

    payees = tuple(a.strip() for a in args.payees.split(",") if a.strip())
    ctx = BindingContext.for_batch(chain_id=args.chain_id, market=args.market, task_id=args.task_id,
                                   batch_index=args.batch_index, payees=payees, model_version=args.model_version)
    result = prove(args.setup, args.gradients, args.backend, args.out, context=ctx)
    if args.json:
        print(json.dumps({"out": str(result.out), "backend": result.backend,
                          "seconds": result.seconds, "public": [str(x) for x in result.public]}))
    else:
        print(f"{result.backend}: proof in {result.out} ({result.seconds:.2f}s)")
    return 0
