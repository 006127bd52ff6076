"""The DO side of submission: share a witness block, sign each share, send share j to server j only.

Privacy rests on "share j reaches server j and nobody else", so each connection pins the
certificate of the server it is meant for: its sha256 is entry j of the task's on-chain
committee (servers/pinning.py). A misconfigured list of addresses, or an impostor with server
2's name but another key, is refused before the share leaves the DO. Each share gets its own
signature, nonce and expiry (the signature covers the
server index, so a server cannot pass its share off as another's).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from omniplus.core.errors import InputError
from omniplus.servers import signing
from omniplus.servers.config import server_name
from omniplus.servers.transport import encode_field

DEFAULT_EXPIRY_SECONDS = 3600
Pins = Mapping[int, bytes]  # server index j -> sha256 of its certificate (DER), the task's committee entry


def pins_of(fingerprints: Sequence[bytes]) -> dict[int, bytes]:
    """{j: fingerprint} from the committee's list (server 1 first)."""
    return {j: bytes(fp) for j, fp in enumerate(fingerprints, start=1)}
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _pb() -> tuple[Any, Any]:
    from omniplus.proto.gen import omniplus_pb2, omniplus_pb2_grpc

    return omniplus_pb2, omniplus_pb2_grpc


@dataclass(frozen=True)
class TaskRef:
    chain_id: int
    market: bytes  # 20

    @classmethod
    def parse(cls, market: str, chain_id: int = 31337) -> TaskRef:
        if not (market.startswith("0x") and len(market) == 42):
            raise InputError(f"--task must be a 0x-prefixed contract address, got {market!r}")
        return cls(chain_id, bytes.fromhex(market[2:]))


@dataclass(frozen=True)
class Outcome:
    server: int
    address: str
    accepted: bool
    code: str  # gRPC status name ("OK" when accepted)
    message: str
    payload_hash: str = ""


def share_block(values: Sequence[int], t: int, n: int, rng: Any = None) -> dict[int, list[int]]:
    """Shamir-share every wire of a DO block (prover/shamir.py share()); {server j: shares}."""
    from omniplus.prover.shamir import share

    if n < 2 * t + 1:
        raise InputError(f"need n >= 2t+1 servers, got n={n}, t={t}")
    per: dict[int, list[int]] = {j: [] for j in range(1, n + 1)}
    for v in values:
        for j, s in enumerate(share(v, t, n, rng), start=1):
            per[j].append(s)
    return per


def check_task_before_sharing(w3: Any, market: str, setup: Any, n: int, t: int,
                              model_hash: bytes | None = None) -> Any:
    """A DO refuses (NonCanonicalTask, one line, nothing shared) a market that is not the canonical
    RollupMarket, whose verifier is not its own setup's, whose N, d, k, B, M, w, c differ from its
    setup, or whose committee is not n servers with threshold t+1 (contracts/canonical.py)."""
    from omniplus.contracts.canonical import check_task

    return check_task(w3, market, setup, n_servers=n, threshold=t + 1, model_hash=model_hash)


def build_request(
    key: str,
    task: TaskRef,
    server_index: int,
    n: int,
    t: int,
    wires: Sequence[int],
    shares: Sequence[int],
    *,
    nonce: bytes | None = None,
    expiry: int | None = None,
    model_version: int = 0,
    point_shares: bytes = b"",
) -> Any:
    """One signed SubmitRequest for server `server_index` (point_shares: this server's shares of the
    block's MSM contributions, prover/mpc/point_shares.py; covered by the signed payload hash)."""
    pb, _ = _pb()
    if len(wires) != len(shares):
        raise InputError(f"{len(wires)} wires but {len(shares)} shares")
    do = signing.address_of(key)
    payload = encode_field(shares)
    nonce = os.urandom(32) if nonce is None else nonce
    expiry = int(time.time()) + DEFAULT_EXPIRY_SECONDS if expiry is None else expiry
    header = signing.SubmissionHeader(
        chain_id=task.chain_id,
        market=task.market,
        do_address=do,
        server_index=server_index,
        n_servers=n,
        threshold=t,
        nonce=nonce,
        expiry=expiry,
        model_version=model_version,
    )
    digest = signing.submission_digest(header, signing.payload_hash(wires, payload, point_shares))
    return pb.SubmitRequest(
        version=1,
        chain_id=task.chain_id,
        market=task.market,
        do_address=do,
        server_index=server_index,
        n_servers=n,
        threshold=t,
        wires=list(wires),
        shares=payload,
        nonce=nonce,
        expiry=expiry,
        signature=signing.sign_digest(digest, key),
        model_version=model_version,
        point_shares=point_shares,
    )


def public_channel(
    address: str, server_index: int, pins: Pins, max_message_bytes: int = 64 << 20
) -> grpc.Channel:
    """A TLS channel to server j's public port that accepts only server j's pinned certificate.
    Raises PinMismatch (another certificate) or PinUnreachable, both grpc.RpcError."""
    from omniplus.servers.pinning import connect_pinned

    if server_index not in pins:
        raise InputError(f"no certificate fingerprint for server {server_index}")
    opts = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    return connect_pinned(address, pins[server_index], options=opts)


def send(
    address: str, server_index: int, request: Any, pins: Pins, timeout: float = 30.0, retries: int = 6
) -> Outcome:
    """Send one request to one server; the outcome carries the server's status and message.

    UNAVAILABLE (server starting, registration not seen yet) and RESOURCE_EXHAUSTED (server busy)
    are retried a few times with jittered back-off, then reported with gRPC's reason. A server
    presenting another certificate than the pinned one is refused at once (UNAUTHENTICATED), the
    share unsent. A resend is safe: the server answers an identical resend "already stored"."""
    _, pbg = _pb()
    ch: grpc.Channel | None = None
    try:
        for attempt in range(retries + 1):
            try:
                if ch is None:
                    ch = public_channel(address, server_index, pins)
                reply = pbg.SubmissionStub(ch).Submit(request, timeout=timeout)
                break
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or attempt == retries:
                    return Outcome(server_index, address, False, exc.code().name, exc.details() or "")
                time.sleep(min(4.0, 0.25 * 2**attempt) * random.uniform(0.5, 1.5))  # jitter: a crowd spreads out
    finally:
        if ch is not None:
            ch.close()
    return Outcome(server_index, address, True, "OK", reply.state, reply.payload_hash.hex())


def submit_block(
    key: str,
    task: TaskRef,
    servers: Sequence[str],
    wires: Sequence[int],
    values: Sequence[int],
    pins: Pins,
    *,
    t: int = 1,
    rng: Any = None,
    timeout: float = 30.0,
    progress: Callable[[str], None] | None = None,
    model_version: int = 0,
    point_shares: Callable[[int, int], dict[int, bytes]] | None = None,
) -> list[Outcome]:
    """Share a block (wire indices and values, in block order) among len(servers) servers and
    send share j to servers[j-1] only. `point_shares(t, n)`, if given, makes {j: server j's point
    shares} (servers.data_owner.point_sharer), sent with the wire shares."""
    n = len(servers)
    if len(wires) != len(values):
        raise InputError(f"{len(wires)} wires but {len(values)} values")
    say = progress or (lambda _m: None)
    per = share_block(values, t, n, rng)
    points = point_shares(t, n) if point_shares is not None else {}
    say(f"shared {len(wires)} wires among {n} servers (t={t})"
        + (", and the block's MSM contributions as point shares" if points else ""))
    outcomes = []
    for j, addr in enumerate(servers, start=1):
        req = build_request(key, task, j, n, t, wires, per[j], model_version=model_version,
                            point_shares=points.get(j, b""))
        out = send(addr, j, req, pins, timeout)
        say(
            f"[{j}/{n}] {server_name(j)} at {addr}: "
            + ("accepted" if out.accepted else f"rejected ({out.code}): {out.message}")
        )
        outcomes.append(out)
    return outcomes


def status_request(key: str, task: TaskRef, server_index: int, *, timestamp: int | None = None,
                   nonce: bytes | None = None) -> Any:
    """A StatusRequest signed by the DO's key: the server answers only this DO, only about itself."""
    pb, _ = _pb()
    header = signing.StatusHeader(
        chain_id=task.chain_id, market=task.market, do_address=signing.address_of(key), server_index=server_index,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        nonce=os.urandom(32) if nonce is None else nonce,
    )
    return pb.StatusRequest(
        chain_id=header.chain_id, market=header.market, do_address=header.do_address,
        server_index=header.server_index, timestamp=header.timestamp, nonce=header.nonce,
        signature=signing.sign_digest(signing.status_digest(header), key),
    )


def status(
    address: str, server_index: int, task: TaskRef, key: str, pins: Pins, timeout: float = 10.0
) -> Any:
    """Submission.Status of this DO (the holder of `key`) from server j, over a pinned channel:
    state, reason, batch_index, batch_tx, model_version. Raises grpc.RpcError."""
    _, pbg = _pb()
    with public_channel(address, server_index, pins) as ch:
        return pbg.SubmissionStub(ch).Status(status_request(key, task, server_index), timeout=timeout)
