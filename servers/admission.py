"""Admission of a DO's share: every check that decides whether a submission may be stored.

`check_submission` is pure (shape, lengths, canonical field elements, task, sharing parameters,
expiry, signature); `admit` adds the checks that need state (registration, replay, duplicate)
and stores the share. A refused submission raises `Rejected` (its `code` is the gRPC status the
daemon answers) and leaves no trace; an accepted one is on disk before `admit` returns.
"""

from __future__ import annotations

import time
from typing import Any

from omniplus.core.errors import ChainError, InputError
from omniplus.prover.field import R
from omniplus.servers import batch_policy, signing
from omniplus.servers.config import ServerConfig
from omniplus.servers.registry import Registry
from omniplus.servers.rounds import RoundEngine
from omniplus.servers.storage import Rejected, Storage, StoredSubmission

PROTOCOL_VERSION = 1


def check_submission(
    req: Any, cfg: ServerConfig, engine: RoundEngine | None, now: float | None = None
) -> tuple[list[int], bytes]:
    """Shape and binding checks that need no I/O. Returns (wires, payload hash); Rejected otherwise."""
    now = time.time() if now is None else now
    bad = "INVALID_ARGUMENT"
    if req.version != PROTOCOL_VERSION:
        raise Rejected(
            bad, f"unsupported protocol version {req.version}; this server speaks {PROTOCOL_VERSION}"
        )
    if len(req.market) != 20:
        raise Rejected(bad, f"market must be a 20-byte address, got {len(req.market)} bytes")
    if len(req.do_address) != 20:
        raise Rejected(bad, f"do_address must be 20 bytes, got {len(req.do_address)} bytes")
    task = cfg.task
    if (req.chain_id, req.market) != (task.chain_id, task.market_bytes):
        raise Rejected(
            bad,
            f"wrong task: this server serves market {task.market} on chain {task.chain_id}; "
            f"got market 0x{req.market.hex()} on chain {req.chain_id}",
        )
    if req.server_index != cfg.id:
        raise Rejected(bad, f"share for server {req.server_index} sent to server {cfg.id}")
    if (req.n_servers, req.threshold) != (cfg.n, cfg.threshold):
        raise Rejected(
            bad,
            f"sharing parameters n={req.n_servers}, t={req.threshold} do not match the network's "
            f"n={cfg.n}, t={cfg.threshold}",
        )
    wires = list(req.wires)
    m = len(wires)
    if m == 0:
        raise Rejected(bad, "empty block: no wires")
    if m > cfg.limits.max_wires:
        raise Rejected(bad, f"{m} wires exceed the limit of {cfg.limits.max_wires}")
    expected = engine.expected_wires() if engine is not None else None
    if expected is not None:
        if m != len(expected):
            raise Rejected(bad, f"wrong block length: {m} wires, the circuit's DO block has {len(expected)}")
        if wires != list(expected):
            raise Rejected(bad, "wire indices differ from the circuit's DO block (slot 0, block order)")
    if len(set(wires)) != m:
        raise Rejected(bad, "wire indices must be distinct")
    if 0 in wires:
        raise Rejected(bad, "wire 0 is the constant 1 and is never shared")
    if len(req.shares) != 32 * m:
        raise Rejected(
            bad, f"wrong share payload length: {len(req.shares)} bytes for {m} wires (want {32 * m})"
        )
    sh = req.shares
    for i in range(m):
        if int.from_bytes(sh[32 * i : 32 * i + 32], "little") >= R:
            raise Rejected(bad, f"share {i} (wire {wires[i]}) is not a canonical field element (>= r)")
    if len(req.nonce) != 32:
        raise Rejected(bad, f"nonce must be 32 bytes, got {len(req.nonce)}")
    if req.expiry <= now:
        raise Rejected(bad, "submission expired (expiry is in the past)")
    if req.expiry > now + cfg.limits.max_expiry_seconds:
        raise Rejected(bad, f"expiry more than {cfg.limits.max_expiry_seconds}s in the future")
    if len(req.signature) != 65:
        raise Rejected("UNAUTHENTICATED", f"signature must be 65 bytes, got {len(req.signature)}")
    points = bytes(req.point_shares)
    if points:
        slots = engine.point_slots() if engine is not None and hasattr(engine, "point_slots") else None
        if slots is None:
            raise Rejected(bad, "this server's engine takes no point shares: send the wire shares only")
        from omniplus.prover.mpc.point_shares import check_encoding

        why = check_encoding(points, slots)
        if why is not None:
            raise Rejected(bad, why)
    phash = signing.payload_hash(wires, sh, points)
    header = signing.SubmissionHeader(
        chain_id=req.chain_id,
        market=bytes(req.market),
        do_address=bytes(req.do_address),
        server_index=req.server_index,
        n_servers=req.n_servers,
        threshold=req.threshold,
        nonce=bytes(req.nonce),
        expiry=req.expiry,
        model_version=req.model_version,
    )
    try:
        signer = signing.recover_signer(signing.submission_digest(header, phash), bytes(req.signature))
    except InputError as exc:
        raise Rejected("UNAUTHENTICATED", f"bad signature: {exc}") from None
    if signer != bytes(req.do_address):
        raise Rejected(
            "UNAUTHENTICATED",
            f"bad signature: signed by {signing.checksum(signer)}, not by do_address "
            f"{signing.checksum(bytes(req.do_address))}",
        )
    return wires, phash


def admit(
    request: Any, cfg: ServerConfig, engine: RoundEngine | None, registry: Registry, storage: Storage
) -> StoredSubmission:
    """Check one SubmitRequest completely and store it; Rejected when it must not be stored."""
    wires, phash = check_submission(request, cfg, engine)
    known = storage.submission(bytes(request.do_address))
    if known is None or known.payload_hash != phash:  # an identical resend is answered "already stored"
        batch_policy.check_fresh(storage, request.model_version)  # a stale update can never be batched
    try:
        payee = registry.payee(bytes(request.do_address))
    except ChainError as exc:
        raise Rejected("UNAVAILABLE", f"cannot check registration right now: {exc}") from None
    if payee is None:
        raise Rejected("PERMISSION_DENIED", f"DO {signing.checksum(bytes(request.do_address))} is not registered")
    return storage.accept_submission(
        do_address=bytes(request.do_address),
        payee=payee,
        server_index=request.server_index,
        n_servers=request.n_servers,
        threshold=request.threshold,
        wires=wires,
        shares=bytes(request.shares),
        payload_hash=phash,
        nonce=bytes(request.nonce),
        expiry=request.expiry,
        signature=bytes(request.signature),
        model_version=request.model_version,
        point_shares=bytes(request.point_shares),
    )


class StatusNonces:
    """Nonces of signed status requests seen within the replay window. A request is valid for
    STATUS_WINDOW seconds either side of its timestamp; with `storage` every nonce is also kept
    on disk (Storage.use_status_nonce) for two windows, so a restarted server still refuses a
    replay. Bounded: past `cap` live nonces new requests are refused as busy, never stored."""

    def __init__(self, window: int = signing.STATUS_WINDOW, cap: int = 100_000, storage: Any = None) -> None:
        import threading

        self.window, self.cap, self.storage = window, cap, storage
        self._seen: dict[tuple[bytes, bytes], float] = {}
        self._lock = threading.Lock()

    def use(self, do: bytes, nonce: bytes, now: float) -> None:
        replayed = Rejected("ALREADY_EXISTS", "replayed status request: this nonce was already used")
        with self._lock:
            if len(self._seen) >= self.cap // 2:
                for k in [k for k, t in self._seen.items() if t < now - 2 * self.window]:
                    del self._seen[k]
            if (do, nonce) in self._seen:
                raise replayed
            if len(self._seen) >= self.cap:
                raise Rejected("RESOURCE_EXHAUSTED", "too many status requests in the replay window; retry later")
            if self.storage is not None and not self.storage.use_status_nonce(do, nonce, 2 * self.window):
                raise replayed
            self._seen[(do, nonce)] = now


def check_status_request(req: Any, cfg: ServerConfig, nonces: StatusNonces, now: float | None = None) -> bytes:
    """The DO a signed StatusRequest may be answered about (the signer itself); Rejected otherwise:
    unsigned, signed by another key than do_address's, for another server or task, outside the
    window, high-s, or a replayed nonce."""
    now = time.time() if now is None else now
    bad = "INVALID_ARGUMENT"
    if (req.chain_id, bytes(req.market)) != (cfg.task.chain_id, cfg.task.market_bytes):
        raise Rejected(bad, "wrong task")
    if len(req.do_address) != 20:
        raise Rejected(bad, f"do_address must be 20 bytes, got {len(req.do_address)} bytes")
    if not req.signature:
        raise Rejected("UNAUTHENTICATED", "status requests must be signed by the DO (servers/signing.py status_digest)")
    if req.server_index != cfg.id:
        raise Rejected(bad, f"status request is for server {req.server_index}, this is server {cfg.id}")
    if abs(now - req.timestamp) > signing.STATUS_WINDOW:
        raise Rejected(bad, f"status request timestamp {req.timestamp} is more than {signing.STATUS_WINDOW}s "
                            "from this server's clock")
    try:
        header = signing.StatusHeader(req.chain_id, bytes(req.market), bytes(req.do_address), req.server_index,
                                      req.timestamp, bytes(req.nonce))
        signer = signing.recover_signer(signing.status_digest(header), bytes(req.signature))
    except InputError as exc:
        raise Rejected("UNAUTHENTICATED", f"bad status signature: {exc}") from None
    if signer != bytes(req.do_address):
        raise Rejected("PERMISSION_DENIED", "a DO may ask only about itself: the request is signed by "
                       f"{signing.checksum(signer)}, not {signing.checksum(bytes(req.do_address))}")
    nonces.use(signer, bytes(req.nonce), now)
    return signer
