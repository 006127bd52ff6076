"""`omniplus demo`: the whole pipeline on an embedded default, with nothing to configure.

The default (`--part market`) is the data market with real training (omniplus/market_run.py): anvil,
three server processes over mutual TLS, RollupMarket carrying the public model's hash, the MO
and 8 DOs on scikit-learn's digits for 3 rounds (batches of N=3, N_min=2), one DO malicious (its update
scaled ×100 breaks the norm bound: the servers reject it and it is never paid). It ends with
MO-only vs final accuracy, gas per batch next to PlainMarket (OmniLytics) for the same d, N, R,
payments per DO, the rejected DO and why, time per phase, and a PNG of accuracy and gas per round.

`--part backends` (formerly part 1) makes (or reuses from the cache) a trusted setup for a small
batch statement, proves the same random batch with all three prover backends, checks each proof
with the Python verifier, snarkjs' verifier and the exported Solidity verifier on a local anvil
it starts and stops, and prints the gas of each on-chain verification.
`--part network` (formerly part 2) runs the prover network on loopback: anvil, three server
processes over mutual TLS, the coordinator and four DOs, one of them out of bound; the servers
validate the shared updates, prove the batch jointly, RollupMarket verifies it and credits the
three honest DOs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from omniplus.api import log
from omniplus.circuits.params import CircuitParams

DEFAULT = CircuitParams(batch=4, dims=32, bits=8, norm_bound=2**15)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the ML data market end to end (or: --part backends|network)",
                       description=__doc__)
    p.add_argument("--part", choices=("market", "backends", "network"), default="market",
                   help="market (default): MO + 8 DOs training digits over the prover network; "
                        "backends: prove one batch with every backend; network: the random-update devnet")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the market's PNG and JSON (default bench/results/)")
    p.add_argument("--workdir", type=Path, default=None, help="market: configs, logs, model (default temp)")
    sizes = p.add_argument_group("sizes of --part backends|network (the market's come from its model)")
    sizes.add_argument("--dims", type=int, default=None, help=f"coordinates per update (default {DEFAULT.dims})")
    sizes.add_argument("--batch", type=int, default=None, help=f"DOs per batch (default {DEFAULT.batch})")
    sizes.add_argument("--bits", type=int, default=None, help=f"bits per coordinate (default {DEFAULT.bits})")
    sizes.add_argument("--norm-bound", type=int, default=None, help=f"squared L2 bound (default {DEFAULT.norm_bound})")
    p.add_argument("--backends", default="native,snarkjs,circom", help="comma-separated backends")
    p.add_argument("--no-network", action="store_true",
                   help="backends part: skip the prover network afterwards")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--preset", choices=("default", "paper"), default="default",
                   help="market: default (MLP 64→12→10, N=3, R=4) or paper (the CNN, 5,571 traded parameters, "
                        "N=4, R=8, k=9, ≈229k constraints: 2^18 with room for the contribution scores)")
    enc = p.add_mutually_exclusive_group()
    enc.add_argument("--plain-model", action="store_true",
                     help="market: publish the true model (no encryption), the same training rule")
    enc.add_argument("--compare-plain", action="store_true",
                     help="market: run encrypted, then the same run with --plain-model, and compare")
    p.set_defaults(func=run)


SIZE_FLAGS = ("dims", "batch", "bits", "norm_bound")


def run(args: argparse.Namespace) -> int:
    from omniplus.core.errors import InputError

    given = [f"--{n.replace('_', '-')}" for n in SIZE_FLAGS if getattr(args, n) is not None]
    if args.part == "market":
        if given:
            raise InputError(f"{', '.join(given)} apply to --part backends|network; the market's sizes come "
                             "from its model (see `omniplus mo run --help`)")
        return run_market_demo(args)
    for n in SIZE_FLAGS:
        if getattr(args, n) is None:
            setattr(args, n, getattr(DEFAULT, n))
    if args.part == "network":
        args.backends = ""
    return run_backends(args)


def run_market_demo(args: argparse.Namespace) -> int:
    """The default: the ML market (omniplus/market_run.py) with defaults only."""
    from omniplus.bench.gas import plain_session_gas
    from omniplus.core.resources import BENCH_RESULTS
    from omniplus.market_run import format_summary, plot, run_market
    from omniplus.ml.config import MarketConfig, paper_preset

    def default(**kw):  # type: ignore[no-untyped-def]
        return MarketConfig(free_riders=(1,), **kw)  # DO 1 (round 0) free-rides: screened out, paid 0

    make = paper_preset if args.preset == "paper" else default
    cfg = make(encrypted=not args.plain_model).check()
    out = Path(args.out) if args.out else BENCH_RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = "demo_market" if args.preset == "default" else f"demo_market_{args.preset}"

    def one(c: MarketConfig) -> dict:
        log(f"[demo] the market ({'encrypted' if c.encrypted else 'plain'} model, preset {args.preset}): MO + "
            f"{c.dos} DOs (DO {','.join(map(str, c.malicious))} sends its update ×100"
            + (f"; DO {','.join(map(str, c.free_riders))} free-rides with the zero update" if c.free_riders else "")
            + f"), {c.rounds} rounds of "
            f"N={c.batch}, 3 servers over mutual TLS, snarkjs engine")
        if args.workdir is not None:
            return run_market(c, Path(args.workdir) / ("encrypted" if c.encrypted else "plain"), log,
                              baseline_gas=plain_session_gas)
        with tempfile.TemporaryDirectory(prefix="omniplus-demo-market-") as root:
            return run_market(c, root, log, baseline_gas=plain_session_gas)

    s = one(cfg)
    plain_file = out / f"{stem}_plain.json"
    if not cfg.encrypted:
        plain_file.write_text(json.dumps(s, indent=2, default=str))
    elif args.compare_plain:
        p = one(make(encrypted=False).check())
        plain_file.write_text(json.dumps(p, indent=2, default=str))
        s["compare"] = {"mode": "plain", "final_accuracy": p["final_accuracy"], "source": "run now",
                        "round_s": _round_s(p), "encrypted_round_s": _round_s(s)}
    elif plain_file.exists():  # the last stored --plain-model/--compare-plain run of this preset
        p = json.loads(plain_file.read_text())
        if p.get("params") == s["params"] and p.get("mo_only_accuracy") == s["mo_only_accuracy"]:
            s["compare"] = {"mode": "plain", "final_accuracy": p["final_accuracy"],
                            "source": f"stored run {plain_file}"}
    s["png"] = str(plot(s, out / f"{stem}.png"))
    ok = (s["final_accuracy"] > s["mo_only_accuracy"] and bool(s["rejected"])
          and all(v == 0 for a, v in s["paid"].items() if a in s["rejected"])
          and all(r.get("recovery", {"within_bound": True})["within_bound"] for r in s["per_round"]))
    if s.get("compare"):
        ok = ok and abs(s["final_accuracy"] - s["compare"]["final_accuracy"]) <= 0.01
    s["ok"] = ok
    (out / f"{stem}.json").write_text(json.dumps(s, indent=2, default=str))
    if args.json:
        print(json.dumps(s, default=str))
    else:
        print(format_summary(s))
        print(f"PNG: {s['png']}")
        print("all checks passed" if ok else "SOMETHING FAILED (no gain, attacker not rejected, recovery out of "
              "its bound, or encrypted more than 1 point from plain)")
    return 0 if ok else 1


def _round_s(s: dict) -> float:
    """Mean wall time of one round (publish, DO work, submit, batch, MO update)."""
    keys = ("publish_s", "train_s", "submit_s", "batch_s", "mo_update_s")
    return round(sum(sum(r[k] for k in keys) for r in s["per_round"]) / max(1, len(s["per_round"])), 2)


def run_backends(args: argparse.Namespace) -> int:
    from omniplus.api import prove, random_gradients, verify
    from omniplus.contracts.chain import Anvil
    from omniplus.contracts.verifier import verify_onchain
    from omniplus.devnet import cached_setup
    from omniplus.prover.proof import read_proof_dir

    params = CircuitParams(args.batch, args.dims, args.bits, args.norm_bound).check()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    t0 = time.perf_counter()
    log(f"[demo] statement: {params.describe()}")
    setup = cached_setup(params, progress=log)
    log(f"[demo] setup ready in {time.perf_counter() - t0:.1f}s: {setup.path}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="omniplus-demo-") as work, Anvil() as node:
        grads = Path(work) / "gradients.json"
        grads.write_text(json.dumps(random_gradients(params, params.batch, scale_bits=4)))
        for backend in backends:  # --part network: none
            res = prove(setup.path, grads, backend, Path(work) / backend)
            report = verify(setup.path, res.out)
            proof, public = read_proof_dir(res.out)
            report.onchain, report.verify_gas = verify_onchain(setup, proof, public, rpc=node.rpc_url,
                                                               key=node.keys[0])
            log(f"[demo] {backend}: on-chain verifier {'accepts' if report.onchain else 'REJECTS'} "
                f"(gas {report.verify_gas})")
            rows.append({"backend": backend, "prove_s": round(res.seconds, 2), "python": report.python,
                         "snarkjs": report.snarkjs, "onchain": report.onchain, "verify_gas": report.verify_gas})
    ok = all(r["python"] and r["snarkjs"] and r["onchain"] for r in rows)
    network = None if args.no_network else run_network()
    if network is not None:
        ok = ok and bool(network.get("batch_tx")) and bool(network.get("proof_verified_by_snarkjs"))
    if args.json:
        print(json.dumps({"params": params.to_json(), "rows": rows, "network": network, "ok": ok}))
    else:
        print(f"\nomniplus demo — {params.describe()}")
        print(f"{'backend':<9} {'prove s':>8} {'python':>7} {'snarkjs':>8} {'on-chain':>9} {'verify gas':>11}")
        for r in rows:
            print(f"{r['backend']:<9} {r['prove_s']:>8.2f} {str(r['python']):>7} {str(r['snarkjs']):>8} "
                  f"{str(r['onchain']):>9} {r['verify_gas']:>11,}")
        if network is not None:
            from omniplus.cli.devnet import _print

            print("\nprover network: 3 servers (mutual TLS), 4 DOs, one with an out-of-bound update")
            _print(network)
        print("all checks passed" if ok else "SOMETHING FAILED (see above)")
    return 0 if ok else 1


def run_network() -> dict:
    """Part 2: the devnet (anvil, 3 server processes, coordinator, 4 DOs of which 1 is invalid)."""
    from omniplus.devnet import Devnet, DevnetOptions

    with tempfile.TemporaryDirectory(prefix="omniplus-demo-net-") as root:
        net = Devnet(Path(root), DevnetOptions(backend="snarkjs"), progress=log)
        try:
            net.start()
            net.submit_dos()
            net.run_coordinator(900.0)
            return net.summary()
        finally:
            net.stop()
