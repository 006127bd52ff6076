"""`omniplus setup`: the trusted setup for one statement, and later phase-2 contributions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = """Make a setup directory for the gradient-validity statement: N DO slots of D coordinates,
each a K-bit signed integer, squared L2 norm at most B. Steps: compile the circuit (circom2),
make the initial proving key, one phase-2 contribution per --contributors name (fresh
randomness each), export verification_key.json and Groth16Verifier.sol, write params.json and
contributions.json. Everything is built beside --out and renamed at the end.

Without --ptau the key is a DEVELOPMENT key computed directly from fresh tau, alpha, beta,
gamma, delta (discarded after use; params.json records "development": true): this machine knew
them, so it is for tests and demos only. With --ptau FILE (a prepared ceremony file, e.g. a
*_final.ptau) the file is checked first (BN254, power, at least one contribution, points on the
curve and in the subgroup, pairing checks of the tau/alpha/beta powers), then `snarkjs groth16
setup`, the contributions, and `snarkjs zkey verify` of the final key against the ptau.

Add a contribution to an existing setup later with `omniplus setup contribute`."""

CONTRIBUTE_HELP = """Add one phase-2 contribution to an existing setup directory: replaces
circuit_final.zkey, verification_key.json and Groth16Verifier.sol, and appends the name and
contribution hash to contributions.json. Proofs made with the old zkey no longer verify, and a
deployed verifier must be redeployed."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("setup", help="trusted setup for a statement (and phase-2 contributions)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, metavar="D", help="coordinates per update (d)")
    p.add_argument("--batch", type=int, metavar="N", help="DO slots per batch (N)")
    p.add_argument("--bits", type=int, metavar="K", help="bits per signed coordinate (k)")
    p.add_argument("--norm-bound", type=int, metavar="B", help="bound on the squared L2 norm of an update")
    p.add_argument("--ptau", type=Path, metavar="FILE",
                   help="prepared powers-of-tau file (default: cached development file)")
    p.add_argument("--contributors", default=None, metavar="A,B,C",
                   help="comma-separated phase-2 contributor names, one `snarkjs zkey contribute` each "
                        "(default: none for a development key, 'dev' with --ptau)")
    p.add_argument("--out", type=Path, metavar="DIR", help="new (or empty) output directory")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_setup_cmd)

    actions = p.add_subparsers(dest="setup_action", metavar="ACTION")
    c = actions.add_parser("contribute", help="add a phase-2 contribution to a setup",
                           description=CONTRIBUTE_HELP)
    c.add_argument("--setup", type=Path, required=True, metavar="DIR", help="setup directory")
    c.add_argument("--name", required=True, help="contributor name recorded in contributions.json")
    c.add_argument("--entropy", default=None, metavar="TEXT",
                   help="extra entropy text (mixed with OS randomness; default: random)")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=run_contribute_cmd)


def _progress(label: str, seconds: float) -> None:
    print(f"[setup] {label}: {seconds:.1f}s", file=sys.stderr, flush=True)


def run_setup_cmd(args: argparse.Namespace) -> int:
    from omniplus.circuits.params import CircuitParams
    from omniplus.core.errors import InputError
    from omniplus.prover.trusted_setup import run_setup

    missing = [f"--{n.replace('_', '-')}" for n in ("dims", "batch", "bits", "norm_bound", "out")
               if getattr(args, n) is None]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (see `omniplus setup --help`)")
    try:
        params = CircuitParams(batch=args.batch, dims=args.dims, bits=args.bits,
                               norm_bound=args.norm_bound).check()
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    names = None if args.contributors is None else [n.strip() for n in args.contributors.split(",") if n.strip()]
    print(f"[setup] {params.describe()}", file=sys.stderr, flush=True)
    setup = run_setup(params, args.out, ptau=args.ptau, contributors=names, progress=_progress)
    m = setup.manifest
    if args.json:
        print(json.dumps({"out": str(setup.path), "n_constraints": m["n_constraints"],
                          "contributions": setup.contributions(), "ptau": m["ptau"]}))
    else:
        print(f"setup in {setup.path}: {m['n_constraints']} constraints, "
              f"{len(setup.contributions())} contribution(s), ptau power {m['ptau']['power']}")
    return 0


def run_contribute_cmd(args: argparse.Namespace) -> int:
    from omniplus.prover.trusted_setup import contribute

    h = contribute(args.setup, args.name, args.entropy, progress=_progress)
    if args.json:
        print(json.dumps({"setup": str(args.setup), "name": args.name, "hash": h}))
    else:
        print(f"contribution by {args.name}: {h}")
    return 0
