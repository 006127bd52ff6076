"""The `omniplus` command: a thin layer over the typed API.

Each verb lives in `omniplus/cli/<verb>.py` and provides `register(subparsers)`, which adds its
parser and sets `func` to a callable taking the parsed args and returning an exit code. Verbs load
lazily: `omniplus --help` lists them from the table below without importing any, and
`omniplus VERB ...` imports only that verb's module, so start-up stays cheap for every process.
Library errors (`OmniplusError` and its subclasses) become one-line messages and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from omniplus import __version__
from omniplus.core.errors import OmniplusError

# verb -> one-line help (shown by `omniplus --help`; each module repeats it in its own parser)
VERBS: dict[str, str] = {
    "circuit": "compile the circuit and print its constraint budget",
    "setup": "trusted setup for a statement (and phase-2 contributions)",
    "prove": "prove a batch statement",
    "verify": "verify a proof three ways",
    "chain": "run a local development chain",
    "deploy": "deploy RollupMarket or PlainMarket",
    "certs": "make an operator's key pair and self-signed certificate",
    "server": "run a prover-network server daemon",
    "coordinator": "drive validation and batch proofs of the prover network",
    "devnet": "the whole prover network on loopback",
    "mo": "model owner: pretrain, publish, run the market",
    "do": "data owner: train, register, submit",
    "bench": "run a benchmark",
    "demo": "the ML data market end to end (or: --part backends|network)",
}


def _chosen_verb(argv: list[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in VERBS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the verb named in argv (all of them when argv is None) is imported."""
    parser = argparse.ArgumentParser(
        prog="omniplus",
        description="A secure data market for machine learning run as a ZK rollup.",
    )
    parser.add_argument("--version", action="version", version=f"omniplus {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    chosen = None if argv is None else _chosen_verb(argv)
    for name, text in VERBS.items():
        if argv is None or name == chosen:
            module = importlib.import_module(f"omniplus.cli.{name}")
            if name == "bench":  # the one verb whose sub-commands are modules of their own
                module.register(sub, None if argv is None else argv[argv.index(name) + 1:])
            else:
                module.register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except OmniplusError as exc:
        print(f"omniplus {args.verb}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"omniplus {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
