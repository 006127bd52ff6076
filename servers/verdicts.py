"""Which rejections a DO may contest by resubmitting fresh shares (PROTOCOL.md step 2).

With n = 2t+1 servers neither validation opening can tell a bad DO from a lying server: the
consistency opening has one spare point, which detects that the n points are off a degree-t
curve but not whose point is off, and the degree-2t validity opening has no spare point at all.
So a DO rejected as inconsistent or invalid may resubmit fresh shares (a bounded number of
times, each a new signed submission with a new nonce), and the storage replaces its rejected
row (servers/storage.py). A reason that names a fault only the DO can have committed, checked
on data the DO signed, is final: such reasons start with PROVABLE_PREFIX, or are
REASON_WRONG_POINTS (prover/mpc/point_shares.py: the opened differences of its signed point
shares are a non-zero point, which t servers cannot fake).
"""

from __future__ import annotations

from omniplus.prover.mpc.point_shares import REASON_WRONG_POINTS
from omniplus.prover.mpc.validation import REASON_INCONSISTENT, REASON_INVALID

MAX_RESUBMISSIONS = 3
PROVABLE_PREFIX = "provable: "
DISPUTABLE = (REASON_INCONSISTENT, REASON_INVALID)
PROVABLE = (REASON_WRONG_POINTS,)


def may_resubmit(reason: str) -> bool:
    """True when the rejection could be a server's fault (see the module docstring)."""
    if reason.startswith(PROVABLE_PREFIX) or reason in PROVABLE:
        return False
    return reason in DISPUTABLE
