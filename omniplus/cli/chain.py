"""`omniplus chain`: a local development chain (anvil on 127.0.0.1) with funded keys."""

from __future__ import annotations

import argparse
import json
import signal
import threading

HELP = """Start anvil on 127.0.0.1, print its RPC URL and the funded development keys (from the
public test mnemonic: never use them on a real network), and run until interrupted (Ctrl-C)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chain", help="run a local development chain", description=HELP)
    p.add_argument("--port", type=int, default=8545, help="port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--accounts", type=int, default=10, help="number of funded keys")
    p.add_argument("--chain-id", type=int, default=31337)
    p.add_argument("--json", action="store_true", help="print {rpc_url, chain_id, accounts} as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.contracts.chain import Anvil

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Anvil(port=args.port or None, accounts=args.accounts, chain_id=args.chain_id) as node:
        if args.json:
            print(json.dumps({"rpc_url": node.rpc_url, "chain_id": node.chain_id,
                              "accounts": [{"address": a.address, "key": a.key} for a in node.accounts]}),
                  flush=True)
        else:
            print(f"RPC URL   {node.rpc_url}  (chain id {node.chain_id})")
            print("Funded development keys (public test mnemonic: for local use only):")
            for i, a in enumerate(node.accounts):
                print(f"  [{i}] {a.address}  {a.key}")
            print("Running; Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                if node.proc is None or node.proc.poll() is not None:
                    print("anvil exited", flush=True)
                    return 1
        except KeyboardInterrupt:
            pass
    return 0
