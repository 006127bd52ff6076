"""The `omniplus` command: a thin layer over the Python API.

Each verb lives in `omniplus/commands/<verb>.py` and provides `register(subparsers)`, which adds
its parser and sets `func` to a callable taking the parsed args and returning an exit code.
Library errors (`OmniplusError` and its subclasses) become one-line messages and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from omniplus import __version__, commands
from omniplus.errors import OmniplusError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omniplus",
        description="A secure data market for machine learning run as a ZK rollup.",
    )
    parser.add_argument("--version", action="version", version=f"omniplus {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"omniplus.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
