"""`omniplus certs`: a development CA and certificates for a local server network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = """Write a development certificate authority and certificates into --out:
ca.pem/ca.key, server-<i>.pem/.key for i = 1..N (server and client use; SANs server-<i>,
localhost, 127.0.0.1) and one client certificate per --client name (default: coordinator).
For local networks and tests only: the CA key is written next to the certificates."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certs", help="make a development CA and server certificates", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory (must not hold a CA yet)")
    p.add_argument("--servers", type=int, default=3, help="number of servers (default 3)")
    p.add_argument("--client", action="append", default=None,
                   help="client certificate name (repeatable; default: coordinator)")
    p.add_argument("--json", action="store_true", help="print the files as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.servers.certs import make_network

    clients = tuple(args.client) if args.client else ("coordinator",)
    made = make_network(args.out, args.servers, clients=clients)
    if args.json:
        print(json.dumps({k: {"cert": str(v.cert), "key": str(v.key)} for k, v in made.items()}, indent=2))
    else:
        for name, pair in made.items():
            print(f"{name:14s} {pair.cert}  {pair.key}")
    return 0
