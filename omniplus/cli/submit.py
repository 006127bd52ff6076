"""`omniplus submit`: a DO shares its update among the servers, one share per server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = """Quantise this DO's update, compute its witness block in the clear, Shamir-share every wire
(degree t among n = number of --servers, n >= 2t+1), and send share j to server j only, signed
with the DO's Ethereum key. --servers lists the servers' public addresses in server order
(server-1 first); each connection only accepts that server's certificate from --ca.
With --status, only ask each server what it knows about this DO's submission."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a DO's update to the prover network", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", required=True, help="HOST:PORT,... public addresses, server 1 first")
    p.add_argument("--task", required=True, help="RollupMarket contract address")
    p.add_argument("--chain-id", type=int, default=31337, help="chain id (default 31337, anvil)")
    p.add_argument("--ca", type=Path, required=True, help="the network's CA certificate (ca.pem)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", help="the DO's private key (hex)")
    key.add_argument("--keyfile", type=Path, help="file holding the DO's private key")
    p.add_argument("--gradients", type=Path, help="gradients JSON (see `omniplus prove --help`)")
    p.add_argument("--row", type=int, default=0, help="this DO's row in the gradients file (default 0)")
    p.add_argument("--setup", type=Path, help="setup directory (circuit layout and parameters)")
    p.add_argument("--threshold", "-t", type=int, default=1, help="sharing degree t (default 1)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-server timeout in seconds")
    p.add_argument("--status", action="store_true", help="only query the servers' status for this DO")
    p.add_argument("--rpc", default=None,
                   help="with --status: also read the market on this chain (batch that included the DO, credit)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omniplus.contracts.chain import load_key
    from omniplus.core.errors import InputError
    from omniplus.servers.client import TaskRef, status, submit_block
    from omniplus.servers.signing import address_of, checksum

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers:
        raise InputError("--servers is empty")
    task = TaskRef.parse(args.task, args.chain_id)
    key = load_key(args.key, args.keyfile)
    ca = args.ca.read_bytes()
    me = address_of(key)
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))

    if args.status:
        rows = []
        for j, addr in enumerate(servers, start=1):
            st = status(addr, j, task, me, ca, timeout=args.timeout)
            rows.append({"server": j, "state": st.state, "reason": st.reason, "batch_index": st.batch_index,
                         "batch_tx": st.batch_tx})
        lines = [f"server-{r['server']}: {r['state']}" + (f" ({r['reason']})" if r["reason"] else "")
                 + (f", batch {r['batch_index']}" if r["batch_index"] >= 0 else "") for r in rows]
        out: dict = {"do": checksum(me), "servers": rows}
        if args.rpc:
            out["chain"] = chain_outcome(args.rpc, args.task, checksum(me))
            lines.append(_chain_line(out["chain"]))
        _print(args.json, out, lines)
        return 0

    if args.gradients is None or args.setup is None:
        raise InputError("--gradients and --setup are required to submit (or use --status)")
    wires, values = _block(args.setup, args.gradients, args.row)
    say(f"DO {checksum(me)}: block of {len(wires)} wires for market {args.task}")
    outcomes = submit_block(key, task, servers, wires, values, ca, t=args.threshold, timeout=args.timeout,
                            progress=say)
    ok = all(o.accepted for o in outcomes)
    _print(args.json,
           {"do": checksum(me), "accepted": ok,
            "servers": [{"server": o.server, "address": o.address, "accepted": o.accepted, "code": o.code,
                         "message": o.message} for o in outcomes]},
           [f"accepted by all {len(outcomes)} servers" if ok else "NOT accepted by every server"])
    return 0 if ok else 1


def chain_outcome(rpc: str, market: str, do: str) -> dict:
    """What the chain says: the batch whose payees include this DO, and its credit / withdrawals."""
    from omniplus.contracts.chain import connect
    from omniplus.contracts.rollup import RollupMarket

    m = RollupMarket.at(connect(rpc), market)
    batch = next((e for e in m.batch_events() if do.lower() in (p.lower() for p in e.payees)), None)
    withdrawn = m.contract.events.Withdrawn().get_logs(from_block=0, argument_filters={"payee": do})
    return {
        "included_in_batch": batch.index if batch else None,
        "batch_tx": batch.tx_hash if batch else None,
        "credit_wei": m.credit(do),
        "withdrawn_wei": sum(int(e["args"]["amount"]) for e in withdrawn),
    }


def _chain_line(c: dict) -> str:
    if c["included_in_batch"] is None:
        return "on-chain: not in any batch yet"
    return (f"on-chain: included in batch {c['included_in_batch']} (tx {c['batch_tx']}); "
            f"credit {c['credit_wei']} wei, withdrawn {c['withdrawn_wei']} wei")


def _block(setup_dir: Path, gradients: Path, row: int) -> tuple[list[int], list[int]]:
    """This DO's witness block in the protocol's block order (prover.mpc.batch.make_block)."""
    from omniplus.core.errors import InputError
    from omniplus.prover.mpc.batch import make_block
    from omniplus.prover.mpc.layout import load_layout
    from omniplus.prover.quantize import load_gradients, quantize

    try:
        from omniplus.prover.trusted_setup import SetupDir
    except ImportError as exc:
        raise InputError(f"cannot load setup directories in this build: {exc}") from None
    setup = SetupDir.load(setup_dir)
    scale_bits, rows = load_gradients(gradients)
    if not 0 <= row < len(rows):
        raise InputError(f"--row {row}: the gradients file has {len(rows)} row(s)")
    q = quantize([rows[row]], scale_bits, setup.params)[0]
    layout = load_layout(setup)
    return list(layout.slot_wires[0]), make_block(setup, layout, q)


def _print(as_json: bool, data: dict, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        for line in lines:
            print(line)
