"""The README's commands exist with the flags it shows (checked against the CLI's own parsers)."""

from __future__ import annotations

import argparse
import re

from omniplus.cli import VERBS, build_parser
from omniplus.core.resources import package_dir

README = (package_dir("omniplus").parent / "README.md").read_text()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def readme_commands() -> list[str]:
    """Every `omniplus …` inside backticks in the README."""
    return [m.strip().replace("\\|", "|") for m in re.findall(r"`(omniplus [^`]+)`", README)]


def test_the_readme_shows_commands() -> None:
    assert len(readme_commands()) >= 10
    assert "make demo" in README and "make test" in README


def test_every_readme_command_and_flag_exists() -> None:
    root = build_parser()
    verbs = _subparsers(root)
    problems = []
    for cmd in readme_commands():
        words = cmd.split()[1:]
        if not words or words[0].startswith("-"):
            continue
        parser = verbs.get(words[0])
        if parser is None:
            problems.append(f"{cmd!r}: no verb {words[0]!r}")
            continue
        # descend into sub-commands written as `a|b` or `a`
        rest = words[1:]
        subs = _subparsers(parser)
        if rest and subs and not rest[0].startswith("-"):
            names = rest[0].split("|")
            missing = [n for n in names if n not in subs]
            if missing:
                problems.append(f"{cmd!r}: no sub-command {missing}")
                continue
            parsers = [subs[n] for n in names]
            rest = rest[1:]
        else:
            parsers = [parser]
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", " ".join(rest)):
            if not any(flag in _flags(p) for p in parsers):
                problems.append(f"{cmd!r}: {flag} is not an option of `omniplus {words[0]}`")
    assert problems == [], "\n".join(problems)


def test_every_verb_is_in_the_readme() -> None:
    missing = [v for v in VERBS if f"omniplus {v}" not in README]
    assert missing == []
