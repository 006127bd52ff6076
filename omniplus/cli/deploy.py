"""`omniplus deploy market|plain`: deploy RollupMarket (with its Groth16 verifier) or PlainMarket."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

HELP = """Deploy a market contract and print the addresses.

  market  the RollupMarket plus the setup's Groth16Verifier (--setup DIR), or an already deployed
          verifier (--verifier ADDR with --batch/--dims/--bits/--norm-bound)
  plain   the OmniLytics baseline PlainMarket (SecModelUpdate)

Works against any EVM JSON-RPC endpoint (--rpc) with a key (--key HEX or --keyfile FILE). Without
--rpc it starts a local anvil, deploys with its first development key and keeps the chain running
until Ctrl-C (--exit stops it right after deploying)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deploy RollupMarket or PlainMarket", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("market", "plain"))
    p.add_argument("--rpc", default=None, help="JSON-RPC URL (default: start a local anvil)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--key", default=None, help="deployer private key (hex)")
    g.add_argument("--keyfile", type=Path, default=None, help="file holding the deployer key")
    p.add_argument("--exit", action="store_true", help="with a local anvil: stop it after deploying")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    m = p.add_argument_group("market")
    m.add_argument("--setup", type=Path, default=None,
                   help="setup directory (Groth16Verifier.sol, params.json)")
    m.add_argument("--verifier", default=None,
                   help="address of a deployed Groth16Verifier (instead of --setup)")
    m.add_argument("--batch", type=int, default=None, help="N (with --verifier)")
    m.add_argument("--dims", type=int, default=None, help="d (with --verifier; plain: default 5701)")
    m.add_argument("--bits", type=int, default=None, help="k (with --verifier)")
    m.add_argument("--norm-bound", type=int, default=None, help="B (with --verifier)")
    m.add_argument("--reward-wei", type=int, default=10**15, help="reward per accepted DO (default 1e15)")
    m.add_argument("--batches", type=int, default=8, help="R, batches (default 8)")
    m.add_argument("--deadline-seconds", type=int, default=7 * 24 * 3600, help="from now (default 7 days)")
    m.add_argument("--model-hash", default="0x" + "00" * 32, help="32-byte hash of the public model")
    m.add_argument("--model-uri", default="", help="where the public model can be fetched")
    m.add_argument("--whitelist", default="", help="comma-separated DO addresses (default: open)")
    m.add_argument("--min-batch", type=int, default=2, help="N_min, at least 2 (default 2)")
    m.add_argument("--min-score", type=int, default=0,
                   help="a payee's contribution score must exceed this (>= 0, default 0: DOs whose update "
                        "does not agree with the rest of the batch are not paid)")
    m.add_argument("--committee", default="",
                   help="comma-separated signing addresses of servers 1..n (required for market)")
    m.add_argument("--certs", type=Path, default=None,
                   help="folder with server-j.pem: the task lists each server's certificate fingerprint")
    m.add_argument("--fingerprints", default="",
                   help="comma-separated 32-byte hex sha256 fingerprints of servers 1..n (instead of --certs)")
    m.add_argument("--threshold", type=int, default=None,
                   help="signatures per batch, t+1 (default: n//2 + 1)")
    m.add_argument("--deposit-wei", type=int, default=None,
                   help="market: default N*R*reward; plain: default 1e18")
    pl = p.add_argument_group("plain")
    pl.add_argument("--round-timeout", type=int, default=3600, help="seconds before a round can be failed")
    p.set_defaults(func=run)


def _market_params(args: argparse.Namespace):
    from omniplus.circuits.params import CircuitParams
    from omniplus.core.errors import InputError, SetupError

    if args.setup is not None:
        pj = args.setup / "params.json"
        if not pj.exists():
            raise SetupError(f"{pj} not found: is {args.setup} a setup directory?")
        try:
            return CircuitParams.from_json(pj.read_text())
        except ValueError as exc:
            raise SetupError(f"{pj}: {exc}") from exc
    missing = [n for n in ("batch", "dims", "bits", "norm_bound") if getattr(args, n) is None]
    if missing:
        raise InputError("with --verifier give " + ", ".join("--" + n.replace("_", "-") for n in missing))
    try:
        return CircuitParams(args.batch, args.dims, args.bits, args.norm_bound).check()
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def _committee(args: argparse.Namespace):
    """The server committee from --committee plus --certs DIR or --fingerprints."""
    from omniplus.contracts.committee import cert_fingerprint
    from omniplus.contracts.rollup import Committee
    from omniplus.core.errors import InputError

    members = tuple(a.strip() for a in args.committee.split(",") if a.strip())
    if not members:
        raise InputError("deploy market needs --committee ADDR,ADDR,... (the servers' signing addresses)")
    if args.certs is not None:
        fps = []
        for j in range(1, len(members) + 1):
            pem = args.certs / f"server-{j}.pem"
            if not pem.exists():
                raise InputError(f"--certs {args.certs}: {pem.name} is missing")
            fps.append(cert_fingerprint(pem.read_bytes()))
    else:
        try:
            fps = [bytes.fromhex(f.strip().removeprefix("0x")) for f in args.fingerprints.split(",") if f.strip()]
        except ValueError as exc:
            raise InputError(f"--fingerprints: {exc}") from None
        if len(fps) != len(members):
            raise InputError(f"give one fingerprint per committee member ({len(members)}), or --certs DIR")
    threshold = args.threshold if args.threshold is not None else len(members) // 2 + 1
    return Committee(members, tuple(fps), threshold)


def _deploy(args: argparse.Namespace, w3, key: str) -> dict:
    from omniplus.contracts.plain import PlainMarket
    from omniplus.contracts.rollup import RollupMarket, TaskParams
    from omniplus.contracts.verifier import deploy_verifier
    from omniplus.core.errors import InputError

    if args.what == "plain":
        dims = args.dims or 5701
        deposit = 10**18 if args.deposit_wei is None else args.deposit_wei
        pm = PlainMarket.deploy(w3, key, dims, deposit, round_timeout=args.round_timeout)
        return {"plain_market": pm.address, "dims": dims, "deposit_wei": deposit,
                "gas": pm.deploy_receipt["gasUsed"]}
    if (args.setup is None) == (args.verifier is None):
        raise InputError("deploy market needs exactly one of --setup DIR or --verifier ADDR")
    params = _market_params(args)
    if args.min_score < 0:
        raise InputError(f"--min-score must be >= 0 (got {args.min_score}): pay is split by positive scores")
    gas = 0
    if args.setup is not None:
        v = deploy_verifier(w3, key, args.setup)
        verifier, gas = v.address, v.deploy_receipt["gasUsed"]
    else:
        verifier = args.verifier
    now = w3.eth.get_block("latest")["timestamp"]
    task = TaskParams.from_circuit(params, reward=args.reward_wei, batches=args.batches,
                                   deadline=now + args.deadline_seconds, min_batch=args.min_batch,
                                   min_score=args.min_score)
    try:
        model_hash = bytes.fromhex(args.model_hash.removeprefix("0x"))
    except ValueError as exc:
        raise InputError("--model-hash is 32 bytes of hex") from exc
    if len(model_hash) != 32:
        raise InputError("--model-hash is 32 bytes of hex")
    wl = [a.strip() for a in args.whitelist.split(",") if a.strip()]
    committee = _committee(args)
    m = RollupMarket.deploy(w3, key, verifier, task, committee=committee, model_hash=model_hash,
                            model_uri=args.model_uri, whitelist=wl, deposit=args.deposit_wei)
    return {"verifier": verifier, "market": m.address, "task_id": f"0x{m.task_id:064x}",
            "chain_id": w3.eth.chain_id, "deposit_wei": m.accounts()["deposit"], "deadline": task.deadline,
            "committee": committee.to_json(),
            "params": {"N": params.batch, "N_min": args.min_batch, "min_score": args.min_score, "d": params.dims,
                       "k": params.bits,
                       "B": params.norm_bound, "M": params.n_words, "w": params.word_bits, "c": params.per_word,
                       "R": args.batches},
            "gas": gas + m.deploy_receipt["gasUsed"]}


def _print(args: argparse.Namespace, out: dict) -> None:
    if args.json:
        print(json.dumps(out), flush=True)
        return
    for k, v in out.items():
        print(f"{k:14s}{v}")
    print(flush=True)


def run(args: argparse.Namespace) -> int:
    from omniplus.contracts.chain import Anvil, address_of, connect, load_key

    if args.rpc:
        if args.key is None and args.keyfile is None:
            from omniplus.core.errors import InputError
            raise InputError("with --rpc give --key HEX or --keyfile FILE")
        key = load_key(args.key, args.keyfile)
        w3 = connect(args.rpc)
        out = {"rpc_url": args.rpc, "deployer": address_of(key), **_deploy(args, w3, key)}
        _print(args, out)
        return 0
    with Anvil() as node:
        key = load_key(args.key, args.keyfile) if (args.key or args.keyfile) else node.keys[0]
        out = {"rpc_url": node.rpc_url, "deployer": address_of(key), **_deploy(args, node.w3, key)}
        _print(args, out)
        if args.exit:
            return 0
        if not args.json:
            print("local anvil running; Ctrl-C to stop", flush=True)
        try:
            while node.proc is not None and node.proc.poll() is None:
                threading.Event().wait(0.5)
        except KeyboardInterrupt:
            pass
    return 0
