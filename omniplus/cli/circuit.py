"""`omniplus circuit`: compile the gradient-validity circuit alone and print its constraint budget."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = """Compile the circuit for N DO slots of D coordinates of K bits with squared-norm bound B
(circom2, --O2 unless --O1), check that every DO slot is its own block of constraints (what lets a
server validate one DO's shares alone), and print the constraint count against the budget. No
setup is made; with --out the compiled files are kept there."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("circuit", help="compile the circuit and print its constraint budget", description=HELP)
    p.add_argument("--batch", type=int, required=True, metavar="N", help="DO slots per batch")
    p.add_argument("--dims", type=int, required=True, metavar="D", help="coordinates per update")
    p.add_argument("--bits", type=int, required=True, metavar="K", help="bits per signed coordinate")
    p.add_argument("--norm-bound", type=int, required=True, metavar="B", help="bound on the squared L2 norm")
    p.add_argument("--out", type=Path, default=None, help="keep the compiled files here (default: a temp dir)")
    p.add_argument("--O1", action="store_true", help="compile with --O1 instead of --O2")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from omniplus.circuits.build import budget_report, check_blocks, compile_circuit
    from omniplus.circuits.params import CircuitParams
    from omniplus.core.errors import InputError

    try:
        params = CircuitParams(args.batch, args.dims, args.bits, args.norm_bound).check()
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    out = args.out or Path(tempfile.mkdtemp(prefix="omniplus-circuit-"))
    try:
        compiled = compile_circuit(params, out, optimize=1 if args.O1 else 2)
        per_slot = check_blocks(params, compiled.r1cs, compiled.sym)
        print(budget_report(compiled))
        print(f"constraints per DO slot: {sorted(set(per_slot.values()))}" + (f"; files in {out}" if args.out else ""))
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    return 0
