"""`omniplus devnet`: a complete local network (chain, servers, coordinator, DOs) in one command."""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from pathlib import Path

HELP = """Start anvil, make one self-signed identity per server and for the coordinator (pinned by
fingerprint, no CA), take a (cached) trusted setup, deploy the Groth16 verifier and RollupMarket,
start --servers server processes and the coordinator, have
--dos DOs register and submit random updates (the last --invalid of them above the norm bound:
their shares must be rejected by the servers' validation), wait for the batch proof to be verified
on-chain, print a summary and stop everything (unless --keep). Progress goes to stderr."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "devnet",
        help="run a local prover network end to end",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--servers", type=int, default=3, help="number of servers n (default 3)")
    p.add_argument("--threshold", "-t", type=int, default=1, help="sharing degree t (default 1)")
    p.add_argument("--dos", type=int, default=4, help="number of DOs (default 4)")
    p.add_argument("--invalid", type=int, default=1, help="how many DOs submit an out-of-bound update")
    p.add_argument("--batch", type=int, default=None, help="batch size N (default: max(--dos, 2))")
    p.add_argument("--dims", type=int, default=8, help="d (default 8)")
    p.add_argument("--bits", type=int, default=6, help="k (default 6)")
    p.add_argument("--norm-bound", type=int, default=2000, help="B (default 2000)")
    p.add_argument(
        "--backend", choices=("native", "snarkjs"), default="native", help="servers' prover engine"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the DOs' random updates")
    p.add_argument(
        "--workdir", type=Path, default=None, help="where configs, state and logs go (default: temp)"
    )
    p.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the batch (default 900)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.devnet import Devnet, DevnetOptions

    opts = DevnetOptions(
        servers=args.servers,
        threshold=args.threshold,
        dos=args.dos,
        invalid=args.invalid,
        batch=args.batch or max(args.dos, 2),
        dims=args.dims,
        bits=args.bits,
        norm_bound=args.norm_bound,
        backend=args.backend,
        seed=args.seed,
    )
    root = args.workdir or Path(tempfile.mkdtemp(prefix="omniplus-devnet-"))

    from omniplus.core.log import progress

    net = Devnet(root, opts, progress=progress)

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops everything we started, like Ctrl-C

    signal.signal(signal.SIGTERM, on_term)
    summary: dict = {}
    try:
        net.start()
        net.submit_dos()
        if args.keep:
            net.start_coordinator(batches=None)
            net._phase("batch", lambda: net.wait_batch(args.timeout))
        else:
            net.run_coordinator(args.timeout)
        summary = net.summary()
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            _print(summary)
        if args.keep:
            progress(
                f"running (workdir {root}, coordinator config {net.coordinator_config}); Ctrl-C stops"
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        progress("stopping")
    finally:
        net.stop()
    return 0 if summary.get("batch_tx") and summary.get("proof_verified_by_snarkjs") else 1


def _print(s: dict) -> None:
    print(f"market {s['market']} on {s['rpc_url']}")
    print(f"accepted ({len(s['accepted'])}): " + ", ".join(s["accepted"]))
    for who, why in s["rejected"].items():
        print(f"rejected {who}: {why}")
    print(
        f"batch {s['batch_index']}: tx {s['batch_tx']}, gas {s['verify_gas']}, "
        f"proof verified by snarkjs: {s['proof_verified_by_snarkjs']}"
    )
    for who, wei in s["credited"].items():
        print(f"credited {who}: {wei} wei")
    print("times (s): " + ", ".join(f"{k} {v}" for k, v in s["times_s"].items()))
