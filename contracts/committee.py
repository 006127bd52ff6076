"""The server committee's batch signatures (PROTOCOL.md v2, step 5), as RollupMarket checks them.

Each committee member signs, with EIP-191 `personal_sign` (eth_account's `encode_defunct` of the
32-byte digest, i.e. keccak256("\\x19Ethereum Signed Message:\\n32" || digest)), the batch digest

    digest = keccak256(abi.encode(uint256 chainid, address market, uint256 batchIndex,
                                  keccak256(abi.encodePacked(address[] payees)),
                                  keccak256(abi.encodePacked(uint256[] words)),
                                  keccak256(abi.encode(a, b, c)),
                                  keccak256(abi.encodePacked(int256[] scores))))

where (a, b, c) is the proof exactly as submitBatch receives it (b with c1 before c0, see
contracts.verifier.proof_calldata). Signatures are 65 bytes r || s || v with v in {27, 28} and
low s (s <= n/2): the contract refuses the malleable twin, so do we.

A server signs only after it validated every DO of the batch itself, opened exactly that set's
aggregate and verified the proof locally (servers/settlement.py); this module is the arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from omniplus.contracts.verifier import proof_calldata
from omniplus.core.errors import InputError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2


def _address(a: str | bytes) -> bytes:
    raw = bytes(a) if isinstance(a, bytes | bytearray) else bytes.fromhex(str(a).removeprefix("0x"))
    if len(raw) != 20:
        raise InputError(f"address {a!r} is not 20 bytes")
    return raw


def _u256(x: int) -> bytes:
    x = int(x)
    if not 0 <= x < 1 << 256:
        raise InputError(f"{x} does not fit in uint256")
    return x.to_bytes(32, "big")


def proof_hash(proof: Any) -> bytes:
    """keccak256(abi.encode(a, b, c)) of the proof as submitBatch takes it."""
    a, b, c = proof_calldata(proof)
    return keccak(b"".join(_u256(x) for x in (*a, *b[0], *b[1], *c)))


def scores_hash(scores: Sequence[int]) -> bytes:
    """keccak256(abi.encodePacked(int256[] scores)): two's complement, 32 bytes each."""
    out = b""
    for s in scores:
        s = int(s)
        if not -(1 << 255) <= s < 1 << 255:
            raise InputError(f"score {s} does not fit in int256")
        out += (s % (1 << 256)).to_bytes(32, "big")
    return keccak(out)


def batch_digest(chain_id: int, market: str | bytes, batch_index: int, payees: Sequence[str | bytes],
                 words: Sequence[int], proof: Any, scores: Sequence[int]) -> bytes:
    """The 32-byte digest each committee member signs (layout in the module docstring)."""
    payees_h = keccak(b"".join(b"\0" * 12 + _address(p) for p in payees))
    words_h = keccak(b"".join(_u256(w) for w in words))
    return keccak(_u256(chain_id) + b"\0" * 12 + _address(market) + _u256(batch_index) + payees_h + words_h
                  + proof_hash(proof) + scores_hash(scores))


CHUNK_TAG = keccak(b"omniplus.RollupMarket.chunked.v1")


def chunked_batch_digest(chain_id: int, market: str | bytes, batch_index: int, payees: Sequence[str | bytes],
                         chunk_words: Sequence[Sequence[int]], proofs: Sequence[Any],
                         chunk_scores: Sequence[Sequence[int]]) -> bytes:
    """The digest of a chunked batch (RollupMarket.submitChunkedBatch): every chunk's words and proof
    folded in chunk order, acc_(i+1) = keccak(acc_i, keccak(words_i), keccak(proof_i), keccak(scores_i)), then
    keccak256(abi.encode(CHUNK_TAG, chainid, market, batchIndex, keccak(payees), K, acc_K))."""
    if len(chunk_words) != len(proofs) or len(chunk_scores) != len(proofs) or not proofs:
        raise InputError(f"{len(proofs)} proofs for {len(chunk_words)} chunks of words, {len(chunk_scores)} of scores")
    acc = b"\0" * 32
    for words, proof, part in zip(chunk_words, proofs, chunk_scores, strict=True):
        acc = keccak(acc + keccak(b"".join(_u256(w) for w in words)) + proof_hash(proof) + scores_hash(part))
    payees_h = keccak(b"".join(b"\0" * 12 + _address(p) for p in payees))
    return keccak(CHUNK_TAG + _u256(chain_id) + b"\0" * 12 + _address(market) + _u256(batch_index) + payees_h
                  + _u256(len(proofs)) + acc)


def sign_batch(digest: bytes, key: str | bytes) -> bytes:
    """65-byte low-s EIP-191 signature (eth_account normalises s; checked anyway)."""
    try:
        sig = bytes(Account.sign_message(encode_defunct(primitive=digest), private_key=key).signature)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot sign the batch digest with the given key: {exc}") from None
    check_signature_form(sig)
    return sig


def check_signature_form(sig: bytes) -> None:
    """InputError unless 65 bytes, v in {27, 28} and s <= n/2 (what the contract accepts)."""
    if len(sig) != 65:
        raise InputError(f"signature must be 65 bytes, got {len(sig)}")
    if sig[64] not in (27, 28):
        raise InputError(f"signature v must be 27 or 28, got {sig[64]}")
    if int.from_bytes(sig[32:64], "big") > HALF_N:
        raise InputError("signature has a high s (malleable form); only low-s signatures are accepted")


def recover_batch_signer(digest: bytes, sig: bytes) -> str:
    """Lower-case 0x address that signed `digest`; InputError on a malformed or high-s signature."""
    check_signature_form(sig)
    try:
        return Account.recover_message(encode_defunct(primitive=digest), signature=sig).lower()
    except Exception as exc:  # eth_keys raises several unrelated types on bad input
        raise InputError(f"signature does not recover: {exc}") from None


def select_signatures(digest: bytes, signatures: Sequence[bytes], committee: Sequence[str], need: int
                      ) -> list[bytes]:
    """The first `need` valid signatures by distinct committee members, in committee order; InputError
    if fewer exist (the relayer never sends a batch the contract would refuse)."""
    members = [c.lower() for c in committee]
    by_member: dict[int, bytes] = {}
    for sig in signatures:
        try:
            who = recover_batch_signer(digest, bytes(sig))
        except InputError:
            continue
        if who in members:
            by_member.setdefault(members.index(who), bytes(sig))
    if len(by_member) < need:
        raise InputError(f"only {len(by_member)} valid committee signature(s) over the batch digest, "
                         f"{need} needed")
    return [by_member[j] for j in sorted(by_member)[:need]]


def cert_fingerprint(pem: bytes | str) -> bytes:
    """sha256 of a certificate's DER bytes (the first PEM block): what the task lists per server."""
    import base64
    import hashlib

    text = pem.decode() if isinstance(pem, bytes | bytearray) else pem
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin not in text or end not in text:
        raise InputError("not a PEM certificate")
    body = text.split(begin, 1)[1].split(end, 1)[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except ValueError as exc:
        raise InputError(f"PEM certificate body is not base64: {exc}") from None
    return hashlib.sha256(der).digest()
