"""`omniplus verify`: check a proof with the Python verifier, snarkjs, and optionally on-chain."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = """Verify a proof directory (proof.json, public.json) against a setup, three ways:
the Python verifier (py_ecc pairing), `snarkjs groth16 verify`, and with --onchain the setup's
Solidity verifier deployed on a chain (an anvil started on 127.0.0.1 and stopped on exit unless
--rpc is given). Exits 0 only if every check accepts."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a proof three ways", description=HELP)
    p.add_argument("--setup", type=Path, required=True, help="setup directory")
    p.add_argument("--proof", type=Path, required=True, help="proof directory from `omniplus prove`")
    p.add_argument("--onchain", action="store_true", help="also verify with the Solidity verifier")
    p.add_argument("--rpc", default=None, help="JSON-RPC URL (default: start a local anvil)")
    p.add_argument("--key", default=None, help="funded private key (hex) for --rpc")
    p.add_argument("--keyfile", type=Path, default=None, help="file holding the private key for --rpc")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.api import verify

    key = None
    if args.key or args.keyfile:
        from omniplus.contracts.chain import load_key

        key = load_key(args.key, args.keyfile)
    report = verify(args.setup, args.proof, onchain=args.onchain, rpc=args.rpc, key=key)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(f"python: {report.python}  snarkjs: {report.snarkjs}"
              + (f"  onchain: {report.onchain} (gas {report.verify_gas})" if args.onchain else ""))
    return 0 if report.ok else 1
