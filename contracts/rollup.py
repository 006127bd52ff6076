"""RollupMarket from Python: deploy with the reward deposit and the server committee, register DOs,
submit one proof plus t+1 committee signatures per batch, withdraw, finish, and read the batch
events the MO needs (from logs only, by block ranges from the deployment block).

Every state-changing call returns the transaction receipt (gas is read from it by the benchmark).
Calls that verify a proof always carry an explicit gas limit (TOOLCHAIN.md: eth_estimateGas
under-estimates the pairing precompile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.contract import Contract

from omniplus.contracts.chain import call, deploy, simulate, transact
from omniplus.contracts.solc import market_artifacts
from omniplus.contracts.verifier import proof_calldata
from omniplus.core.errors import InputError

if TYPE_CHECKING:
    from omniplus.circuits.params import CircuitParams

PLAIN_CHUNK = 250
PLAIN_SCALE = 10**8
_U256 = 1 << 256
LOG_RANGE = 10_000  # blocks per eth_getLogs query (public RPCs limit ranges)



def submit_gas(n_payees: int, n_words: int, n_signatures: int = 3) -> int:
    """A generous explicit gas limit for submitBatch (unused gas is not charged).

    ~230k for the Groth16 verification, ~50k per payee (two fresh storage slots, plus event data),
    ~12k per packed word (7.2k ECMUL+ECADD in the verifier, calldata, hashing, event data), ~10k per
    signature (ecrecover 3k, calldata, a storage read), plus a fixed margin.
    """
    return 450_000 + 50_000 * n_payees + 12_000 * n_words + 10_000 * n_signatures


def submit_chunked_gas(n_payees: int, n_words: int, chunks: int, n_signatures: int = 3) -> int:
    """Explicit gas limit for submitChunkedBatch: one verification per chunk (≈ 230k + 12k per word,
    with the event and the concatenated words ≈ 16k per word in all), payees and signatures once."""
    return 450_000 + 50_000 * n_payees + 10_000 * n_signatures + chunks * (260_000 + 16_000 * n_words)


def _alert(alerts: list[str] | None, msg: str) -> None:
    """Report a batch a reader had to skip: into the caller's list, and always to the log."""
    import logging

    logging.getLogger("omniplus.chain").warning("alert: %s", msg)
    if alerts is not None:
        alerts.append(msg)


# ---------------------------------------------------------------------- RollupMarket
@dataclass(frozen=True)
class TaskParams:
    """The RollupMarket constructor's task tuple (field order = the Solidity struct)."""

    batch: int  # N
    min_batch: int  # N_min
    dims: int  # d
    bits: int  # k
    norm_bound: int  # B
    reward: int  # wei per accepted DO
    batches: int  # R
    deadline: int  # unix time
    n_words: int  # M
    word_bits: int  # w
    per_word: int  # c
    chunks: int = 1  # K: circuits per batch (the model is K chunks of d = dims coordinates)
    min_score: int = 0  # a payee's contribution score must exceed it

    @classmethod
    def from_circuit(cls, params: CircuitParams, *, reward: int, batches: int, deadline: int,
                     min_batch: int = 2, chunks: int = 1, min_score: int = 0) -> TaskParams:
        return cls(
            params.batch,
            min_batch,
            params.dims,
            params.bits,
            params.norm_bound,
            reward,
            batches,
            deadline,
            params.n_words,
            params.word_bits,
            params.per_word,
            chunks,
            min_score,
        )

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.batch,
            self.min_batch,
            self.dims,
            self.bits,
            self.norm_bound,
            self.reward,
            self.batches,
            self.deadline,
            self.n_words,
            self.word_bits,
            self.per_word,
            self.chunks,
            self.min_score,
        )

    @property
    def required_deposit(self) -> int:
        return self.batch * self.batches * self.reward


@dataclass(frozen=True)
class Committee:
    """The task's server committee: server j signs with members[j-1], presents the TLS certificate
    whose sha256 (DER) is fingerprints[j-1]; `threshold` = t+1 signatures per batch."""

    members: tuple[str, ...]
    fingerprints: tuple[bytes, ...]
    threshold: int

    def __post_init__(self) -> None:
        if len(self.members) != len(self.fingerprints) or not self.members:
            raise InputError("committee: one TLS fingerprint per signing address, at least one member")
        if any(len(f) != 32 for f in self.fingerprints):
            raise InputError("committee: fingerprints are 32-byte sha256 digests")

    def same_as(self, other: Committee) -> bool:
        return (self.threshold == other.threshold
                and [m.lower() for m in self.members] == [m.lower() for m in other.members]
                and list(self.fingerprints) == list(other.fingerprints))

    def to_json(self) -> dict:
        return {"members": list(self.members), "fingerprints": ["0x" + f.hex() for f in self.fingerprints],
                "threshold": self.threshold}

    @classmethod
    def from_json(cls, d: dict) -> Committee:
        try:
            return cls(tuple(str(m) for m in d["members"]),
                       tuple(bytes.fromhex(str(f).removeprefix("0x")) for f in d["fingerprints"]),
                       int(d["threshold"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed committee: {exc}") from None


@dataclass(frozen=True)
class BatchEvent:
    """One BatchSubmitted event: the words come from the log itself (unpack with
    prover.binding.unpack_words); `commitment` = keccak256(words) as the contract stored it."""

    index: int
    commitment: bytes
    words: list[int]
    payees: list[str]
    submitter: str
    tx_hash: str
    block: int
    scores: list[int] = field(default_factory=list)  # each payee's proven contribution score
    amounts: list[int] = field(default_factory=list)  # wei credited to each payee


class RollupMarket:
    """A deployed RollupMarket."""

    def __init__(self, w3: Web3, contract: Contract):
        self.w3 = w3
        self.contract = contract
        self.address: str = contract.address

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        key: str,
        verifier: str,
        task: TaskParams,
        *,
        committee: Committee,
        model_hash: bytes = b"\0" * 32,
        model_uri: str = "",
        whitelist: Sequence[str] = (),
        deposit: int | None = None,
    ) -> RollupMarket:
        art = market_artifacts()["RollupMarket"]
        value = task.required_deposit if deposit is None else deposit
        c = deploy(
            w3,
            key,
            art,
            Web3.to_checksum_address(verifier),
            task.as_tuple(),
            model_hash,
            model_uri,
            [Web3.to_checksum_address(a) for a in whitelist],
            [Web3.to_checksum_address(a) for a in committee.members],
            list(committee.fingerprints),
            committee.threshold,
            value=value,
        )
        market = cls(w3, c)
        market.deploy_receipt = c.deploy_receipt  # type: ignore[attr-defined]
        return market

    @classmethod
    def at(cls, w3: Web3, address: str) -> RollupMarket:
        art = market_artifacts()["RollupMarket"]
        return cls(w3, w3.eth.contract(address=Web3.to_checksum_address(address), abi=art.abi))

    # ---- reads
    def _get(self, name: str, *args: Any) -> Any:
        return call(getattr(self.contract.functions, name)(*args))

    @property
    def task_id(self) -> int:
        return int.from_bytes(self._get("taskId"), "big")

    @property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    def batches_submitted(self) -> int:
        return self._get("batchesSubmitted")

    def credit(self, who: str) -> int:
        return self._get("credit", Web3.to_checksum_address(who))

    def finished(self) -> bool:
        return self._get("finished")

    def accounts(self) -> dict[str, int]:
        """deposit, totalCredited, totalWithdrawn, refunded and the contract's balance (wei)."""
        return {
            "deposit": self._get("deposit"),
            "totalCredited": self._get("totalCredited"),
            "totalWithdrawn": self._get("totalWithdrawn"),
            "refunded": self._get("refunded"),
            "balance": self.w3.eth.get_balance(self.address),
        }

    def onchain_ctx(self, payees: Sequence[str]) -> int:
        """The ctx public input the contract will use for the next batch with these payees."""
        return int(self._get("bindingContext", [Web3.to_checksum_address(p) for p in payees]))

    def public_inputs(self, words: Sequence[int], payees: Sequence[str], scores: Sequence[int]) -> list[int]:
        """[ctx, W_0..W_{M-1}, S_0..S_{K-1}] the contract will pass its verifier for the next batch
        (S packed by the contract itself from the scores)."""
        packed = [int(x) for x in self._get("packScores", [int(x) for x in scores])]
        return [self.onchain_ctx(payees), *(int(w) for w in words), *packed]

    def min_score(self) -> int:
        return int(self._get("minScore"))

    def committee(self) -> Committee:
        members, fps = self._get("committeeMembers")
        return Committee(tuple(str(m) for m in members), tuple(bytes(f) for f in fps), int(self._get("threshold")))

    def deploy_block(self) -> int:
        return int(self._get("deployBlock"))

    def binding_context(self, payees: Sequence[str], batch_index: int | None = None) -> Any:
        """omniplus.prover.binding.BindingContext for the next (or the given) batch of this market."""
        from omniplus.prover.binding import BindingContext

        idx = self.batches_submitted() if batch_index is None else batch_index
        return BindingContext.for_batch(chain_id=self.chain_id, market=self.address, task_id=self.task_id,
                                        batch_index=idx, payees=payees)

    def digest(self, proof: Any, words: Sequence[int], payees: Sequence[str], scores: Sequence[int],
               batch_index: int | None = None) -> bytes:
        """The batch digest committee members sign (contracts.committee.batch_digest)."""
        from omniplus.contracts.committee import batch_digest

        idx = self.batches_submitted() if batch_index is None else batch_index
        return batch_digest(self.chain_id, self.address, idx, payees, words, proof, scores)

    def chunks(self) -> int:
        return int(self._get("chunks"))

    def chunk_signals(self, words: Sequence[int], payees: Sequence[str], index: int, scores: Sequence[int],
                      batch_index: int | None = None) -> list[int]:
        """[ctx_i, W…, S…] of chunk `index` (prover.binding.chunk_public_signals with this market's K;
        S packed by the contract from the chunk's partial scores)."""
        from omniplus.prover.binding import chunk_public_signals

        packed = [int(x) for x in self._get("packScores", [int(x) for x in scores])]
        return chunk_public_signals(self.binding_context(payees, batch_index), index, self.chunks(), words, packed)

    def chunked_digest(self, proofs: Sequence[Any], chunk_words: Sequence[Sequence[int]], payees: Sequence[str],
                       chunk_scores: Sequence[Sequence[int]], batch_index: int | None = None) -> bytes:
        """The digest committee members sign for a chunked batch (contracts.committee.chunked_batch_digest)."""
        from omniplus.contracts.committee import chunked_batch_digest

        idx = self.batches_submitted() if batch_index is None else batch_index
        return chunked_batch_digest(self.chain_id, self.address, idx, payees, chunk_words, proofs, chunk_scores)

    # ---- writes
    def register(self, key: str) -> dict:
        return transact(self.w3, key, self.contract.functions.register())

    def submit_call(self, proof: Any, words: Sequence[int], payees: Sequence[str], scores: Sequence[int],
                    signatures: Sequence[bytes]) -> Any:
        a, b, c = proof_calldata(proof)
        return self.contract.functions.submitBatch(
            a, b, c, [int(w) for w in words], [Web3.to_checksum_address(p) for p in payees],
            [int(x) for x in scores], [bytes(s) for s in signatures],
        )

    def submit_batch(
        self, key: str, proof: Any, words: Sequence[int], payees: Sequence[str], scores: Sequence[int],
        signatures: Sequence[bytes] = (), *, gas: int | None = None, simulate_first: bool = True,
    ) -> dict:
        """Relay a batch. With simulate_first (the default, and what every relayer must do) the call
        is eth_call'ed first and nothing is broadcast if it would revert: a reverted submitBatch
        would publish the words in calldata without paying anyone."""
        from omniplus.contracts.chain import address_of

        fn = self.submit_call(proof, words, payees, scores, signatures)
        limit = gas or submit_gas(len(payees), len(words), len(signatures))
        if simulate_first:
            simulate(self.w3, fn, sender=address_of(key), gas=limit)
        return transact(self.w3, key, fn, gas=limit)

    def submit_chunked_call(self, proofs: Sequence[Any], chunk_words: Sequence[Sequence[int]],
                            payees: Sequence[str], chunk_scores: Sequence[Sequence[int]],
                            signatures: Sequence[bytes]) -> Any:
        flat = []
        for p in proofs:
            a, b, c = proof_calldata(p)
            flat.append([*a, *b[0], *b[1], *c])
        return self.contract.functions.submitChunkedBatch(
            flat, [[int(w) for w in ws] for ws in chunk_words], [Web3.to_checksum_address(p) for p in payees],
            [[int(x) for x in part] for part in chunk_scores], [bytes(s) for s in signatures],
        )

    def submit_chunked_batch(self, key: str, proofs: Sequence[Any], chunk_words: Sequence[Sequence[int]],
                             payees: Sequence[str], chunk_scores: Sequence[Sequence[int]],
                             signatures: Sequence[bytes] = (), *, gas: int | None = None,
                             simulate_first: bool = True) -> dict:
        """Relay a chunked batch (K proofs, K word lists, one payee list, t+1 signatures); simulated
        first like submit_batch, so a call that would revert publishes nothing."""
        from omniplus.contracts.chain import address_of

        fn = self.submit_chunked_call(proofs, chunk_words, payees, chunk_scores, signatures)
        words = max((len(w) for w in chunk_words), default=0)
        limit = gas or submit_chunked_gas(len(payees), words, len(proofs), len(signatures))
        if simulate_first:
            simulate(self.w3, fn, sender=address_of(key), gas=limit)
        return transact(self.w3, key, fn, gas=limit)

    def withdraw(self, key: str) -> dict:
        return transact(self.w3, key, self.contract.functions.withdraw())

    def finish(self, key: str) -> dict:
        return transact(self.w3, key, self.contract.functions.finish())

    def _logs(self, event: Any, from_block: int) -> list[Any]:
        """Raw logs of one event of this market, queried in LOG_RANGE-block ranges."""
        head = self.w3.eth.block_number
        out: list[Any] = []
        lo = from_block
        while lo <= head:
            hi = min(head, lo + LOG_RANGE - 1)
            out += self.w3.eth.get_logs({"address": self.address, "fromBlock": lo, "toBlock": hi,
                                         "topics": [event.topic]})
            lo = hi + 1
        return out

    def registered_dos(self, from_block: int | None = None) -> list[str]:
        """Every Registered DO (from the deployment block, by ranges); undecodable logs skipped."""
        ev = self.contract.events.Registered()
        out = []
        for raw in self._logs(ev, self.deploy_block() if from_block is None else from_block):
            try:
                out.append(str(ev.process_log(raw)["args"]["dataOwner"]))
            except Exception:  # noqa: BLE001 - a reader must not be bricked by one log
                _alert(None, f"Registered log in block {raw.get('blockNumber')} does not decode; skipped")
        return out

    def batch_events(self, from_block: int | None = None, alerts: list[str] | None = None) -> list[BatchEvent]:
        """Every BatchSubmitted event, words read from the log (never from calldata, so a batch
        relayed through a contract reads the same). Logs are queried in ranges of LOG_RANGE blocks
        from the deployment block. A log that does not decode, or whose words do not hash to its
        commitment, is reported in `alerts` (with its batch index) and skipped, never raised."""
        from eth_utils import keccak

        ev = self.contract.events.BatchSubmitted()
        start = self.deploy_block() if from_block is None else from_block
        out = []
        for raw in self._logs(ev, start):
            try:
                e = ev.process_log(raw)
                idx = int(e["args"]["batchIndex"])
                words = [int(w) for w in e["args"]["words"]]
                commitment = bytes(e["args"]["aggregateCommitment"])
            except Exception as exc:  # noqa: BLE001 - a bad log must never stop a reader
                topics = raw.get("topics") or []
                idx_s = str(int.from_bytes(bytes(topics[1]), "big")) if len(topics) > 1 else "?"
                _alert(alerts, f"batch {idx_s}: BatchSubmitted log in block {raw.get('blockNumber')} "
                               f"does not decode ({exc}); skipped")
                continue
            if keccak(b"".join(w.to_bytes(32, "big") for w in words)) != commitment:
                _alert(alerts, f"batch {idx}: logged words do not match the logged commitment; skipped")
                continue
            out.append(BatchEvent(index=idx, commitment=commitment, words=words,
                                  payees=list(e["args"]["payees"]), submitter=e["args"]["submitter"],
                                  tx_hash="0x" + bytes(e["transactionHash"]).hex(), block=e["blockNumber"],
                                  scores=[int(x) for x in e["args"]["scores"]],
                                  amounts=[int(x) for x in e["args"]["amounts"]]))
        return out
