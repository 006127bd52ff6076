"""`omniplus coordinator`: form batches of validated DOs and drive the servers to a proof on-chain."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

HELP = """Run the coordinator of a prover network (servers/coordinator.py).

It watches RollupMarket registrations and the servers' stored submissions, starts validation
rounds, forms batches of up to N valid DOs, has the servers prove each batch jointly, verifies
the proof locally (a failing proof is logged and never sent) and calls submitBatch. A round that
a server drops (crash, restart) is aborted everywhere and retried under a new session once every
server is healthy again. The TOML config lists the servers' peer and public addresses, the
coordinator's certificate, the task (RPC URL, market), the setup directory and the key that pays
for submitBatch. Logs are JSON lines on stderr; state.json in the state directory records every
batch and attempt."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "coordinator",
        help="drive validation and batch proofs of the prover network",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, required=True, help="coordinator TOML config")
    p.add_argument(
        "--status",
        action="store_true",
        help="print the persisted state (batches, rejected DOs, servers named as deviating) and exit",
    )
    p.add_argument(
        "--batches",
        type=int,
        default=None,
        help="exit after this many batches are on-chain (default: run until SIGTERM)",
    )
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--json", action="store_true", help="print the submitted batches as JSON at exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.servers.coordinator import Coordinator, load_coordinator_config, status_report

    if args.status:
        report = status_report(load_coordinator_config(args.config))
        print(json.dumps(report, indent=2, default=str) if args.json else report["text"])
        return 0
    coord = Coordinator(load_coordinator_config(args.config))

    def on_signal(signum: int, _frame: Any) -> None:
        coord.log("signal", signal=signal.Signals(signum).name)
        coord.stopping.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
    try:
        batches = coord.run(batches=args.batches, timeout=args.timeout)
    finally:
        coord.close()
    if args.json:
        print(json.dumps([b.__dict__ for b in batches], indent=2, default=str))
    else:
        for b in batches:
            print(f"batch {b.index}: {len(b.payees)} DOs, tx {b.tx}, gas {b.gas_used}", file=sys.stderr)
    return 0

