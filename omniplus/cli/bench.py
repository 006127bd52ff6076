"""`omniplus bench prover|gas|mpc|round|chunks|attack|load`: benchmarks that print a table and save CSV/PNG.

Each benchmark is a module `bench/<name>.py` (`omniplus.bench.<name>`) providing `add_arguments(parser)` and
`run(args) -> int`; this verb only dispatches. Results go to bench/results/ unless --out says
otherwise; --json prints the rows as JSON instead of the table.
"""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "prover": "setup and proving time per backend, native/snarkjs ratios (issue 2)",
    "gas": "PlainMarket vs RollupMarket gas per operation (issue 3)",
    "mpc": "collaborative proof vs single prover: time, CPU, bytes, rounds (issue 4)",
    "round": "one market round on a devnet: wall and CPU per phase, DO training to submission (issue 11)",
    "chunks": "models larger than one circuit: K chunk proofs in one transaction, gas and prover time per parameter",
    "attack": "attackers' pay share and accuracy: equal vs contribution pay (± multi-Krum) per attack and rate",
    "load": "N concurrent DOs submitting to a 3-server devnet: DOs/s, p50/p99 latency, server RSS (issue 10)",
}


def register(sub: argparse._SubParsersAction, argv: list[str] | None = None) -> None:
    """The bench verb; only the benchmark named in argv (all of them when argv is None) is imported."""
    p = sub.add_parser("bench", help="run a benchmark", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="bench", metavar="BENCH")
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    for name, text in BENCHES.items():
        if argv is not None and name != chosen:
            bsub.add_parser(name, help=text, add_help=False)
            continue
        module = importlib.import_module(f"omniplus.bench.{name}")
        bp = bsub.add_parser(name, help=text, description=text)
        module.add_arguments(bp)
        bp.set_defaults(func=module.run)
    p.set_defaults(func=lambda args: p.print_help() or 2)
