"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class OmniplusError(Exception):
    """Base class: the message says what was wrong and where."""


class InputError(OmniplusError):
    """Bad user input: shapes, NaN/inf, values out of range, malformed files."""


class SetupError(OmniplusError):
    """A setup directory is missing, incomplete or does not match the statement."""


class ProofError(OmniplusError):
    """A proof could not be made, or a proof file is corrupt."""


class ChainError(OmniplusError):
    """The chain rejected a call, or could not be reached."""


class ToolError(OmniplusError):
    """An external tool (node, circom2, snarkjs, solc, anvil) failed; the message carries its stderr tail."""
