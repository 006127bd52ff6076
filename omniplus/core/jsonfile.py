"""Reading JSON the tool did not write: any content gives one OmniplusError naming the file.

`json.loads` alone lets hostile content escape as other exceptions: a 5,000-digit integer
(ValueError from Python's 4,300-digit int limit), deep nesting (RecursionError), non-UTF-8 bytes
(UnicodeDecodeError), NaN/Infinity literals (accepted as floats). Here integers longer than
MAX_INT_DIGITS, non-finite constants and files above max_bytes are refused before int() or the
parser sees them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from omniplus.core.errors import InputError, OmniplusError

MAX_INT_DIGITS = 200  # far above any field element (77 digits) or count in our files
MAX_BYTES = 256 << 20
MAX_DEPTH = 64  # our files nest 3 deep; json's C scanner can overflow the C stack (a segfault,
#                 not a RecursionError) when some library has raised the recursion limit
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth_ok(text: str) -> bool:
    """Nesting depth of [ and { (outside strings) is at most MAX_DEPTH: checked without recursion."""
    depth = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif c in "]}":
            depth -= 1
    return True


def _parse_int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer with {len(s.lstrip('-'))} digits (at most {MAX_INT_DIGITS} allowed)")
    return int(s)


def _parse_constant(s: str) -> Any:
    raise _Refused(f"{s} is not a number JSON allows")


class _Refused(ValueError):
    pass


def loads(text: str | bytes, where: str, error: type[OmniplusError] = InputError, *,
          nonfinite: bool = False) -> Any:
    """Parse JSON text; `where` names the source in the error. With nonfinite, NaN/Infinity come
    back as floats for a caller that reports them with their position (the gradients reader)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where}: not UTF-8 text (byte {exc.start}: {text[exc.start:exc.start + 1]!r})") from None
    if not _depth_ok(text):
        raise error(f"{where}: JSON nested more than {MAX_DEPTH} deep")
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=float if nonfinite else _parse_constant)
    except _Refused as exc:
        raise error(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. a float literal the parser cannot convert
        raise error(f"{where}: not valid JSON ({str(exc)[:80]})") from None


def read_json(path: str | os.PathLike, error: type[OmniplusError] = InputError, *, what: str = "",
              max_bytes: int = MAX_BYTES, nonfinite: bool = False) -> Any:
    """Read and parse a JSON file; error(...) naming the file for every problem."""
    p = Path(path)
    where = f"{what} {p}".strip()
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise error(f"{where}: {size} bytes, larger than the {max_bytes}-byte limit for this file")
        data = p.read_bytes()
    except OSError as exc:
        raise error(f"{where}: cannot read ({exc.strerror or exc})") from None
    return loads(data, where, error, nonfinite=nonfinite)
