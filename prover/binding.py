"""Binding the proof to the posted batch: ρ from a hash of the calldata, F by Horner.

The circuit's only public inputs are ρ and F. The contract (RollupMarket) recomputes both from
what was posted, so a proof is valid only for this chain, contract, task, batch, payee list and
packed aggregate. This module and the Solidity code must agree byte for byte:

    rho = uint256(keccak256(abi.encodePacked(
              uint256 chainid,          // 32 bytes, big-endian
              address market,           // 20 bytes (a lone address is NOT padded by encodePacked)
              uint256 taskId,           // 32 bytes
              uint256 batchIndex,       // 32 bytes
              uint256 payees.length,    // 32 bytes
              address[] payees,         // 32 bytes each: array elements ARE left-padded to 32
              uint256[] words           // 32 bytes each, no length prefix
          ))) mod r
    F   = Σ_{m=0}^{M−1} words[m] · rho^(m+1) mod r        (Horner from the last word)

Total preimage length: 32 + 20 + 32·3 + 32·len(payees) + 32·M bytes.

Packing (linear, so the servers can pack shares of the aggregate): word m holds the aggregate
coordinates a_{m·c}, …, a_{m·c+c−1}, each shifted by offset = N·2^(k−1) into [0, 2^w), slot l
at bit w·l (slot 0 in the low bits). Slots past d in the last word are zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from omniplus.circuits.params import CircuitParams, R
from omniplus.core.errors import InputError

ZERO_ADDRESS = "0x" + "00" * 20


def _address_bytes(addr: str | bytes) -> bytes:
    """20 raw bytes of an address given as 0x-hex (any case) or bytes."""
    if isinstance(addr, bytes | bytearray):
        raw = bytes(addr)
    else:
        text = addr[2:] if addr[:2].lower() == "0x" else addr
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise InputError(f"address {addr!r} is not hex") from exc
    if len(raw) != 20:
        raise InputError(f"address {addr!r} is not 20 bytes")
    return raw


def _u256(x: int, what: str) -> bytes:
    if not 0 <= x < 1 << 256:
        raise InputError(f"{what}={x} does not fit in uint256")
    return x.to_bytes(32, "big")


@dataclass(frozen=True)
class BindingContext:
    """Everything besides the aggregate that the proof is bound to."""

    chain_id: int = 31337
    market: str = ZERO_ADDRESS
    task_id: int = 0
    batch_index: int = 0
    payees: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "chain_id": self.chain_id,
            "market": self.market,
            "task_id": self.task_id,
            "batch_index": self.batch_index,
            "payees": list(self.payees),
        }

    @classmethod
    def from_json(cls, d: dict) -> BindingContext:
        return cls(
            chain_id=int(d.get("chain_id", 31337)),
            market=str(d.get("market", ZERO_ADDRESS)),
            task_id=int(d.get("task_id", 0)),
            batch_index=int(d.get("batch_index", 0)),
            payees=tuple(str(p) for p in d.get("payees", ())),
        )


def binding_preimage(ctx: BindingContext, words: Sequence[int]) -> bytes:
    """The abi.encodePacked bytes hashed into ρ (layout in the module docstring)."""
    parts = [
        _u256(ctx.chain_id, "chain_id"),
        _address_bytes(ctx.market),
        _u256(ctx.task_id, "task_id"),
        _u256(ctx.batch_index, "batch_index"),
        _u256(len(ctx.payees), "payees.length"),
    ]
    parts += [b"\x00" * 12 + _address_bytes(p) for p in ctx.payees]
    parts += [_u256(int(w), "word") for w in words]
    return b"".join(parts)


def binding_rho(ctx: BindingContext, words: Sequence[int]) -> int:
    """ρ = keccak256(preimage) mod r, exactly as the contract derives it."""
    return int.from_bytes(keccak(binding_preimage(ctx, words)), "big") % R


def binding_F(words: Sequence[int], rho: int) -> int:
    """F = Σ_m words[m]·ρ^(m+1) mod r, by Horner (the same order the circuit uses)."""
    acc = 0
    for w in reversed(words):
        acc = (acc + int(w)) * rho % R
    return acc


def pack_aggregate(params: CircuitParams, aggregate: Sequence[int]) -> list[int]:
    """Pack d signed aggregate coordinates into M words; InputError if one cannot come from N rows."""
    d, w, c, off = params.dims, params.word_bits, params.per_word, params.offset
    if len(aggregate) != d:
        raise InputError(f"aggregate has {len(aggregate)} coordinates, expected {d}")
    words = [0] * params.n_words
    for j, a in enumerate(aggregate):
        a = int(a)
        if a > R // 2:  # accept the field representation of a negative value
            a -= R
        v = a + off
        if not 0 <= v < 1 << w:
            raise InputError(f"aggregate coordinate {j} = {a} is outside [-{off}, {(1 << w) - off})")
        words[j // c] += v << (w * (j % c))
    return words


def unpack_words(params: CircuitParams, words: Sequence[int]) -> list[int]:
    """Inverse of pack_aggregate: d signed coordinates; InputError on a malformed word list."""
    d, w, c, off = params.dims, params.word_bits, params.per_word, params.offset
    if len(words) != params.n_words:
        raise InputError(f"expected {params.n_words} packed words, got {len(words)}")
    mask = (1 << w) - 1
    out: list[int] = []
    for m, word in enumerate(words):
        word = int(word)
        if not 0 <= word < 1 << (w * c):
            raise InputError(f"packed word {m} is outside [0, 2^{w * c})")
        for slot in range(c):
            j = m * c + slot
            v = (word >> (w * slot)) & mask
            if j < d:
                out.append(v - off)
            elif v:
                raise InputError(f"packed word {m} has a non-zero slot {slot} past coordinate {d - 1}")
    return out


def aggregate(q_rows: Sequence[Sequence[int]]) -> list[int]:
    """Column sums of the quantised rows (the true aggregate the circuit packs)."""
    if not q_rows:
        return []
    return [sum(int(r[j]) for r in q_rows) for j in range(len(q_rows[0]))]


def public_inputs(params: CircuitParams, ctx: BindingContext, q_rows: Sequence[Sequence[int]]
                  ) -> tuple[list[int], int, int]:
    """(words, rho, F) for a batch of quantised rows: what the prover and the contract both compute."""
    words = pack_aggregate(params, aggregate(q_rows) if q_rows else [0] * params.dims)
    rho = binding_rho(ctx, words)
    return words, rho, binding_F(words, rho)
