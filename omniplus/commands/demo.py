"""`omniplus demo`: the whole pipeline on an embedded default, with nothing to configure.

Part 1 makes (or reuses from the cache) a trusted setup for a small batch statement, proves the
same random batch with all three prover backends, checks each proof with the Python verifier,
snarkjs' verifier and the exported Solidity verifier on a local anvil it starts and stops, and
prints the gas of each on-chain verification.
Part 2 runs the prover network on loopback: anvil, three server processes over mutual TLS, the
coordinator and four DOs, one of them out of bound; the servers validate the shared updates,
prove the batch jointly, RollupMarket verifies it and credits the three honest DOs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from circuits.params import CircuitParams
from omniplus.api import log

DEFAULT = CircuitParams(batch=4, dims=32, bits=8, norm_bound=2**15)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="setup → prove with every backend → verify three ways", description=__doc__)
    p.add_argument("--dims", type=int, default=DEFAULT.dims, help=f"coordinates per update (default {DEFAULT.dims})")
    p.add_argument("--batch", type=int, default=DEFAULT.batch, help=f"DOs per batch (default {DEFAULT.batch})")
    p.add_argument("--bits", type=int, default=DEFAULT.bits, help=f"bits per coordinate (default {DEFAULT.bits})")
    p.add_argument("--norm-bound", type=int, default=DEFAULT.norm_bound,
                   help=f"squared L2 bound (default {DEFAULT.norm_bound})")
    p.add_argument("--backends", default="native,snarkjs,circom", help="comma-separated backends")
    p.add_argument("--no-network", action="store_true",
                   help="skip part 2 (the prover network: 3 servers, 4 DOs, one invalid)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from contracts.verifier import verify_onchain
    from omniplus.api import prove, random_gradients, verify
    from prover.proof import read_proof_dir
    from servers.chain import Anvil
    from servers.devnet import cached_setup

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
        for backend in backends:
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
            from omniplus.commands.devnet import _print

            print("\nprover network: 3 servers (mutual TLS), 4 DOs, one with an out-of-bound update")
            _print(network)
        print("all checks passed" if ok else "SOMETHING FAILED (see above)")
    return 0 if ok else 1


def run_network() -> dict:
    """Part 2: the devnet (anvil, 3 server processes, coordinator, 4 DOs of which 1 is invalid)."""
    from servers.devnet import Devnet, DevnetOptions

    with tempfile.TemporaryDirectory(prefix="omniplus-demo-net-") as root:
        net = Devnet(Path(root), DevnetOptions(backend="snarkjs"), progress=log)
        try:
            net.start()
            net.submit_dos()
            net.run_coordinator(900.0)
            return net.summary()
        finally:
            net.stop()
