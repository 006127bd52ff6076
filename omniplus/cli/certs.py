"""`omniplus certs`: an operator's own key pair and self-signed TLS certificate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = """Write one operator identity into --out: NAME.key (P-256, mode 0600) and a self-signed
NAME.pem (server and client use; SANs NAME, --host values). Print its fingerprint: the sha256 of
the certificate's DER, which the task lists for each server (`omniplus deploy --certs DIR` or
`--fingerprints`) and which DOs, peers and the coordinator pin. No CA is involved.

--servers N (development networks only) writes server-1..N plus each --client name at once."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certs", help="make an operator's key pair and self-signed certificate", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--name", default=None, help="the identity's name, e.g. server-2 or coordinator")
    p.add_argument("--host", action="append", default=None,
                   help="a host name or IP the certificate is valid for (repeatable; default localhost, 127.0.0.1)")
    p.add_argument("--servers", type=int, default=None, help="development: server-1..N at once")
    p.add_argument("--client", action="append", default=None,
                   help="with --servers: client identity name (repeatable; default: coordinator)")
    p.add_argument("--json", action="store_true", help="print the files and fingerprints as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.contracts.committee import cert_fingerprint
    from omniplus.core.errors import InputError
    from omniplus.servers.certs import make_identity, make_network

    if (args.name is None) == (args.servers is None):
        raise InputError("give --name NAME (one operator) or --servers N (a development network)")
    if args.name is not None:
        hosts = tuple(args.host) if args.host else ("localhost", "127.0.0.1")
        made = {args.name: make_identity(args.out, args.name, hosts)}
    else:
        clients = tuple(args.client) if args.client else ("coordinator",)
        made = make_network(args.out, args.servers, clients=clients)
    rows = {k: {"cert": str(v.cert), "key": str(v.key),
                "fingerprint": "0x" + cert_fingerprint(v.cert.read_bytes()).hex()} for k, v in made.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for name, r in rows.items():
            print(f"{name:14s} {r['cert']}  {r['key']}  sha256 {r['fingerprint']}")
    return 0
