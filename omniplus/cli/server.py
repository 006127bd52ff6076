"""`omniplus server`: run one server daemon of the prover network."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = """Run a server of the off-chain prover network until SIGTERM/SIGINT.

The TOML config names this server (id = its Shamir point), its public port (DO submissions,
server-side TLS) and peer port (other servers and the coordinator, mutual TLS), the peers, the
task (chain id, RollupMarket address, RPC URL for the registration check), the certificate
files (`omniplus certs`), the storage directory and the prover backend/engine. See
servers/config.py for every key. Logs are JSON lines on stderr."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("server", help="run a prover-network server daemon", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="server TOML config")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.servers.daemon import run as run_daemon

    return run_daemon(args.config)
