"""DO signatures on submissions: the servers tie every share to an Ethereum address.

The DO signs, with EIP-191 (`personal_sign`, eth_account's `encode_defunct`), a 32-byte digest
over a fixed-width encoding of everything that makes the submission mean what it means: the
chain and the market contract (together they name the task: RollupMarket holds one), the DO,
which server the share is for (so a share cannot be replayed to another server as its own), the
sharing parameters, the model version (the round whose public model the update was trained from:
the servers put it only into the batch of that index, so a stale update is refused), the share
payload hash, a nonce and an expiry. Fixed widths make the
encoding unambiguous without a length prefix per field; a domain tag keeps these signatures
from being valid for anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from omniplus.core.errors import InputError

DOMAIN = b"omniplus.v2.submission\x00"  # v2: the model version is signed
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _u256(x: int) -> bytes:
    return int(x).to_bytes(32, "big")


def payload_hash(wires: Sequence[int], shares: bytes, point_shares: bytes = b"") -> bytes:
    """keccak256(u32 count || u32 wire indices || 32-byte shares || point shares), the thing servers
    store and sign over. The share part has 32·count bytes, so appending the point shares (empty for
    a DO that sends none: the hash is then the same as before they existed) is unambiguous."""
    head = len(wires).to_bytes(4, "big") + b"".join(int(w).to_bytes(4, "big") for w in wires)
    return keccak(head + shares + point_shares)


@dataclass(frozen=True)
class SubmissionHeader:
    """Everything the signature covers except the payload itself (covered by its hash)."""

    chain_id: int
    market: bytes  # 20
    do_address: bytes  # 20
    server_index: int
    n_servers: int
    threshold: int
    nonce: bytes  # 32
    expiry: int
    model_version: int = 0

    def check(self) -> None:
        if len(self.market) != 20 or len(self.do_address) != 20:
            raise InputError("market and DO address must be 20 bytes")
        if len(self.nonce) != 32:
            raise InputError("nonce must be 32 bytes")
        for name in ("chain_id", "server_index", "n_servers", "threshold", "expiry", "model_version"):
            v = getattr(self, name)
            if not 0 <= v < 2**64:
                raise InputError(f"{name} out of range")


def submission_digest(header: SubmissionHeader, payload: bytes) -> bytes:
    """The 32-byte digest a DO signs; `payload` is payload_hash(wires, shares)."""
    header.check()
    if len(payload) != 32:
        raise InputError("payload hash must be 32 bytes")
    return keccak(
        DOMAIN
        + _u256(header.chain_id)
        + header.market
        + header.do_address
        + _u256(header.server_index)
        + _u256(header.n_servers)
        + _u256(header.threshold)
        + _u256(header.model_version)
        + payload
        + header.nonce
        + _u256(header.expiry)
    )


def sign_digest(digest: bytes, private_key: str | bytes) -> bytes:
    """EIP-191 signature (65 bytes r||s||v) over the digest."""
    try:
        signed = Account.sign_message(encode_defunct(primitive=digest), private_key=private_key)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot sign with the given key: {exc}") from None
    return bytes(signed.signature)


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed `digest`; InputError when the signature is malformed."""
    if len(signature) != 65:
        raise InputError(f"signature must be 65 bytes, got {len(signature)}")
    if signature[64] not in (27, 28):
        raise InputError(f"signature v must be 27 or 28, got {signature[64]}")
    if int.from_bytes(signature[32:64], "big") > SECP256K1_N // 2:
        raise InputError("signature s is in the upper half of the curve order (high-s, malleable)")
    try:
        addr = Account.recover_message(encode_defunct(primitive=digest), signature=signature)
    except Exception as exc:  # eth_keys raises several unrelated types on bad input
        raise InputError(f"signature does not recover: {exc}") from None
    return bytes.fromhex(addr[2:])


def address_of(private_key: str | bytes) -> bytes:
    """The 20-byte address of a private key (hex string or bytes)."""
    try:
        return bytes.fromhex(Account.from_key(private_key).address[2:])
    except (ValueError, TypeError) as exc:
        raise InputError(f"not a valid private key: {exc}") from None


def checksum(address: bytes) -> str:
    """EIP-55 text form, for logs and messages."""
    from eth_utils import to_checksum_address

    return to_checksum_address(address)


STATUS_DOMAIN = b"omniplus.v2.status\x00"
STATUS_WINDOW = 60  # seconds a signed status request stays valid on either side of its timestamp


@dataclass(frozen=True)
class StatusHeader:
    """A DO's request to learn its own submission's state from one server (PROTOCOL.md: Status
    answers a DO only about itself). The server index and the task are signed, so a request
    cannot be replayed to another server or task; the nonce and the timestamp bound replays."""

    chain_id: int
    market: bytes  # 20
    do_address: bytes  # 20
    server_index: int
    timestamp: int  # unix seconds
    nonce: bytes  # 32

    def check(self) -> None:
        if len(self.market) != 20 or len(self.do_address) != 20:
            raise InputError("market and DO address must be 20 bytes")
        if len(self.nonce) != 32:
            raise InputError("nonce must be 32 bytes")
        for name in ("chain_id", "server_index", "timestamp"):
            if not 0 <= getattr(self, name) < 2**64:
                raise InputError(f"{name} out of range")


def status_digest(header: StatusHeader) -> bytes:
    """The 32-byte digest a DO signs to ask for its status (domain-separated from submissions)."""
    header.check()
    return keccak(STATUS_DOMAIN + _u256(header.chain_id) + header.market + header.do_address
                  + _u256(header.server_index) + _u256(header.timestamp) + header.nonce)
