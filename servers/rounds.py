"""Where the MPC protocol plugs into the server daemon: the `RoundEngine` interface.

The daemon owns sockets, storage and the Control RPCs; the engine owns the mathematics. When the
coordinator calls Control.StartValidation or Control.StartBatch, the daemon records the round,
loads this server's stored shares and runs the engine in a worker thread with a `RoundContext`
whose `channel` is a prover.mpc.net.Net bound to the round's session (servers/transport.py).
The same engine runs unchanged over `InProcessHub` in unit tests.

An engine is named in the config as `[prover] engine = "module:factory"`; the daemon calls
`factory(config)` once at start-up. Contract for implementers:

* `expected_wires()` — the wire indices of a DO block, in block order (for prover/mpc:
  `layout.slot_wires[0]`, the slot-independent order of prover.mpc.batch.make_block). Submit
  refuses any other list before storing anything. None disables the check (wires must then
  only be distinct and non-zero, and limits.max_wires applies).
* `point_slots()` (optional) — how many batch slots a DO's point shares cover
  (prover/mpc/point_shares.py: 320 bytes per slot); Submit checks their encoding. An engine
  without it makes Submit refuse point shares. `.point_shares` of a StoredSubmission holds them.
* Stored shares reach the engine as `StoredSubmission`s: `.share_values()` is this server's
  block in that order, `.payee` the registered payee, `.do_address` the DO.
* `validate(ctx, submissions)` — PROTOCOL.md step 2 over the channel; return a Verdict per DO
  (every DO passed in must get one). Raise to fail the round; the daemon records the error and
  aborts the session so peers stop waiting.
* `prove_batch(ctx, batch, submissions)` — steps 3-5; `submissions` are in slot order. Return
  JSON-serialisable data (e.g. the opened proof and aggregate words); the daemon stores it and
  returns it in RoundStatus.result.
* Check `ctx.cancelled` between heavy steps (Control.Abort sets it and fails pending receives).
* Anything that must survive a restart of this server goes through `ctx.put`/`ctx.get`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from omniplus.servers.config import ServerConfig
    from omniplus.servers.storage import Storage, StoredSubmission
    from omniplus.servers.transport import Channel


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str = ""  # told to the DO (Status RPC) when invalid


@dataclass(frozen=True)
class BatchRequest:
    batch_index: int
    do_addresses: tuple[bytes, ...]  # slot order
    params: dict[str, Any] = field(default_factory=dict)  # from the coordinator (binding context, ...)


@dataclass
class RoundContext:
    session: str
    kind: str  # "validate" | "batch"
    party: int  # this server's Shamir point
    n: int
    t: int
    channel: Channel  # a prover.mpc.net.Net for this session
    config: ServerConfig
    storage: Storage
    cancelled: threading.Event
    log: Callable[..., None]  # log(event, **fields): one structured log line
    # the servers running this round (sorted); n stays the committee size. A round may leave a
    # server named as deviating out (servers/coordinator.py) while 2t+1 remain.
    parties: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.parties:
            self.parties = tuple(range(1, self.n + 1))

    def put(self, key: str, value: bytes) -> None:
        """Persist a blob for this session (fsync'd before returning)."""
        self.storage.put_data(self.session, key, value)

    def get(self, key: str) -> bytes | None:
        return self.storage.get_data(self.session, key)


class RoundEngine(Protocol):
    def expected_wires(self) -> Sequence[int] | None: ...

    def validate(
        self, ctx: RoundContext, submissions: Sequence[StoredSubmission]
    ) -> dict[bytes, Verdict]: ...

    def prove_batch(
        self, ctx: RoundContext, batch: BatchRequest, submissions: Sequence[StoredSubmission]
    ) -> dict[str, Any]: ...


def load_engine(spec: str, config: ServerConfig) -> RoundEngine | None:
    """`module:factory` -> factory(config); empty spec -> None (the server takes submissions only)."""
    if not spec:
        return None
    import importlib

    from omniplus.core.errors import InputError

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"[prover] engine must be 'module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"[prover] engine {spec!r} cannot be loaded: {exc}") from None
    return factory(config)
