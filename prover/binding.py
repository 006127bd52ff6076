"""Binding the proof to the posted batch: public inputs [ctx, W_0, …, W_{M−1}, S_0, …, S_{K−1}]
(PROTOCOL.md v2; S are the packed contribution scores, prover/contribution.py).

The packed aggregate words are public inputs themselves, so the proof fixes every word (the v1
binding — one random combination F = Σ W_m ρ^(m+1) with ρ hashed from the words — let a prover
pick the witness after ρ and solve the single equation as a small-unknown knapsack). `ctx` binds
everything else; no constraint uses it, snarkjs' extra A row per public input binds it. The
contract (RollupMarket) builds the same array from calldata and its own state:

    ctx = uint256(keccak256(abi.encode(
              uint256 chainid,
              address market,                              // left-padded to 32 bytes
              bytes32 taskId,
              uint256 batchIndex,
              uint256 modelVersion,                        // the public model the DOs trained from
              keccak256(abi.encodePacked(address[] payees)) // 32 bytes per payee, left-padded
          ))) mod r

Six 32-byte words: 192 bytes of preimage, whatever the number of payees.

Packing (linear, so the servers can pack shares of the aggregate): word m holds the aggregate
coordinates a_{m·c}, …, a_{m·c+c−1}, each shifted by offset = N·2^(k−1) into [0, 2^w), slot l
at bit w·l (slot 0 in the low bits). Slots past d in the last word are zero.

Score packing: slot i's score s_i (|s_i| ≤ S_OFF = (N−1)·B') is stored as s_i + S_OFF in sw bits;
score word m holds slots m·cs … m·cs+cs−1, slot l at bit sw·l. Empty slots (past the payees) hold
score 0, i.e. the value S_OFF. RollupMarket packs the same words from the posted int256 scores.

`BindingContext.for_batch` is the one place a context is built (servers, coordinator, contract
binding, CLI): payees are normalised to 20-byte addresses there, so the same batch always gives
the same ctx whoever builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from omniplus.circuits.params import CircuitParams, R
from omniplus.core.errors import InputError
from omniplus.prover.contribution import scores

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


def _norm_address(addr: str | bytes) -> str:
    return "0x" + _address_bytes(addr).hex()


@dataclass(frozen=True)
class BindingContext:
    """Everything besides the aggregate that the proof is bound to."""

    chain_id: int = 31337
    market: str = ZERO_ADDRESS
    task_id: int = 0
    batch_index: int = 0
    payees: tuple[str, ...] = ()
    model_version: int = 0

    @classmethod
    def for_batch(cls, *, chain_id: int, market: str | bytes, task_id: int | bytes, batch_index: int,
                  payees: Sequence[str | bytes], model_version: int | None = None) -> BindingContext:
        """The one builder: addresses normalised, task id as an integer, model version = the batch
        index unless given (RollupMarket's model version is the number of batches before it)."""
        tid = int.from_bytes(task_id, "big") if isinstance(task_id, bytes | bytearray) else int(task_id)
        return cls(chain_id=int(chain_id), market=_norm_address(market), task_id=tid,
                   batch_index=int(batch_index), payees=tuple(_norm_address(p) for p in payees),
                   model_version=int(batch_index if model_version is None else model_version))

    def to_json(self) -> dict:
        return {
            "chain_id": self.chain_id,
            "market": self.market,
            "task_id": self.task_id,
            "batch_index": self.batch_index,
            "payees": list(self.payees),
            "model_version": self.model_version,
        }

    @classmethod
    def from_json(cls, d: dict) -> BindingContext:
        return cls.for_batch(
            chain_id=int(d.get("chain_id", 31337)),
            market=str(d.get("market", ZERO_ADDRESS)),
            task_id=int(d.get("task_id", 0)),
            batch_index=int(d.get("batch_index", 0)),
            payees=[str(p) for p in d.get("payees", ())],
            model_version=int(d.get("model_version", d.get("batch_index", 0))),
        )


def payees_hash(payees: Sequence[str | bytes]) -> bytes:
    """keccak256(abi.encodePacked(address[] payees)): 32 bytes per payee, left-padded."""
    return keccak(b"".join(b"\x00" * 12 + _address_bytes(p) for p in payees))


def ctx_preimage(ctx: BindingContext) -> bytes:
    """The abi.encode bytes hashed into ctx (layout in the module docstring)."""
    return b"".join([
        _u256(ctx.chain_id, "chain_id"),
        b"\x00" * 12 + _address_bytes(ctx.market),
        _u256(ctx.task_id, "task_id"),
        _u256(ctx.batch_index, "batch_index"),
        _u256(ctx.model_version, "model_version"),
        payees_hash(ctx.payees),
    ])


def binding_ctx(ctx: BindingContext) -> int:
    """ctx = keccak256(preimage) mod r, exactly as the contract derives it."""
    return int.from_bytes(keccak(ctx_preimage(ctx)), "big") % R


# Chunked batches (a model split into K chunks of the same circuit; RollupMarket.submitChunkedBatch):
# ctx_i = keccak256(abi.encode(CHUNK_TAG, chainid, market, taskId, batchIndex, modelVersion,
#                              keccak256(abi.encodePacked(payees)), i, K)) mod r
CHUNK_TAG = keccak(b"omniplus.RollupMarket.chunked.v1")


def chunk_ctx(ctx: BindingContext, index: int, chunks: int) -> int:
    """ctx of chunk `index` of `chunks` (the tag keeps it apart from the unchunked ctx)."""
    if not 0 <= index < chunks:
        raise InputError(f"chunk index {index} is outside [0, {chunks})")
    pre = CHUNK_TAG + ctx_preimage(ctx) + _u256(index, "chunk index") + _u256(chunks, "chunks")
    return int.from_bytes(keccak(pre), "big") % R


def chunk_public_signals(ctx: BindingContext, index: int, chunks: int, words: Sequence[int],
                         score_words: Sequence[int]) -> list[int]:
    """[ctx_i, W_0, …, W_{M−1}, S_0, …, S_{K−1}] of chunk `index`."""
    return [chunk_ctx(ctx, index, chunks), *(int(w) for w in words), *(int(s) for s in score_words)]


def public_signals(ctx: BindingContext, words: Sequence[int], score_words: Sequence[int]) -> list[int]:
    """The circuit's public inputs in wire order: [ctx, W_0, …, W_{M−1}, S_0, …, S_{K−1}]."""
    return [binding_ctx(ctx), *(int(w) for w in words), *(int(s) for s in score_words)]


def pack_scores(params: CircuitParams, slot_scores: Sequence[int]) -> list[int]:
    """Pack the scores of the filled slots (slot order; empty slots score 0) into K words."""
    n, off, sw, cs = params.batch, params.score_offset, params.score_bits, params.scores_per_word
    if len(slot_scores) > n:
        raise InputError(f"{len(slot_scores)} scores for {n} DO slots")
    vals = [int(s) for s in slot_scores] + [0] * (n - len(slot_scores))
    words = [0] * params.n_score_words
    for i, s in enumerate(vals):
        if s > R // 2:  # accept the field representation of a negative score
            s -= R
        if not -off <= s <= off:
            raise InputError(f"score of slot {i} = {s} is outside [-{off}, {off}] ((N-1)·B)")
        words[i // cs] += (s + off) << (sw * (i % cs))
    return words


def _split_words(words: Sequence[int], count: int, width: int, per_word: int, what: str, past: str
                 ) -> list[int]:
    """The `count` unsigned `width`-bit fields packed `per_word` to a word (shared by both unpackers);
    InputError on a word out of range or a non-zero field past the last one."""
    mask = (1 << width) - 1
    out: list[int] = []
    for m, word in enumerate(words):
        word = int(word)
        if not 0 <= word < 1 << (width * per_word):
            raise InputError(f"{what} {m} is outside [0, 2^{width * per_word})")
        for slot in range(per_word):
            v = (word >> (width * slot)) & mask
            if m * per_word + slot < count:
                out.append(v)
            elif v:
                raise InputError(f"{what} {m} has a non-zero slot {slot} past {past} {count - 1}")
    return out


def unpack_scores(params: CircuitParams, score_words: Sequence[int]) -> list[int]:
    """Inverse of pack_scores: N signed scores (empty slots give 0); InputError if malformed."""
    n, off, sw, cs = params.batch, params.score_offset, params.score_bits, params.scores_per_word
    if len(score_words) != params.n_score_words:
        raise InputError(f"expected {params.n_score_words} score words, got {len(score_words)}")
    values = _split_words(score_words, n, sw, cs, "score word", "slot")
    for i, v in enumerate(values):
        if v > 2 * off:
            raise InputError(f"score word {i // cs}, slot {i % cs}: {v} exceeds 2·S_OFF")
    return [v - off for v in values]


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
    return [v - off for v in _split_words(words, d, w, c, "packed word", "coordinate")]


def aggregate(q_rows: Sequence[Sequence[int]]) -> list[int]:
    """Column sums of the quantised rows (the true aggregate the circuit packs)."""
    if not q_rows:
        return []
    return [sum(int(r[j]) for r in q_rows) for j in range(len(q_rows[0]))]


def public_inputs(params: CircuitParams, ctx: BindingContext, q_rows: Sequence[Sequence[int]]
                  ) -> tuple[list[int], list[int]]:
    """(words, public signals [ctx, *words, *score words]) for a batch of quantised rows: what the
    prover and the contract both compute (scores from prover/contribution.py)."""
    words = pack_aggregate(params, aggregate(q_rows) if q_rows else [0] * params.dims)
    return words, public_signals(ctx, words, pack_scores(params, scores(q_rows)))
