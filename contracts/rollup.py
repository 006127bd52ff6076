"""RollupMarket from Python: deploy with the reward deposit, register DOs, submit one proof per
batch, withdraw, finish, and read the batch events the MO needs.

Every state-changing call returns the transaction receipt (gas is read from it by the benchmark).
Calls that verify a proof always carry an explicit gas limit (TOOLCHAIN.md: eth_estimateGas
under-estimates the pairing precompile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.contract import Contract

from omniplus.contracts.chain import call, deploy, transact
from omniplus.contracts.solc import market_artifacts
from omniplus.contracts.verifier import proof_calldata
from omniplus.core.errors import ChainError

if TYPE_CHECKING:
    from omniplus.circuits.params import CircuitParams

PLAIN_CHUNK = 250
PLAIN_SCALE = 10**8
_U256 = 1 << 256



def submit_gas(n_payees: int, n_words: int) -> int:
    """A generous explicit gas limit for submitBatch (unused gas is not charged).

    ~230k for the Groth16 verification, ~50k per payee (two fresh storage slots, plus event data),
    ~3k per packed word (calldata, hashing, Horner, event data), plus a fixed margin.
    """
    return 450_000 + 50_000 * n_payees + 3_000 * n_words


# ---------------------------------------------------------------------- RollupMarket
@dataclass(frozen=True)
class TaskParams:
    """The RollupMarket constructor's task tuple (field order = the Solidity struct)."""

    batch: int  # N
    dims: int  # d
    bits: int  # k
    norm_bound: int  # B
    reward: int  # wei per accepted DO
    batches: int  # R
    deadline: int  # unix time
    n_words: int  # M
    word_bits: int  # w
    per_word: int  # c

    @classmethod
    def from_circuit(cls, params: CircuitParams, *, reward: int, batches: int, deadline: int) -> TaskParams:
        return cls(
            params.batch,
            params.dims,
            params.bits,
            params.norm_bound,
            reward,
            batches,
            deadline,
            params.n_words,
            params.word_bits,
            params.per_word,
        )

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.batch,
            self.dims,
            self.bits,
            self.norm_bound,
            self.reward,
            self.batches,
            self.deadline,
            self.n_words,
            self.word_bits,
            self.per_word,
        )

    @property
    def required_deposit(self) -> int:
        return self.batch * self.batches * self.reward


@dataclass(frozen=True)
class BatchEvent:
    """One BatchSubmitted event: what the MO needs to read the aggregate (words unpack with
    prover.binding.unpack_words)."""

    index: int
    commitment: bytes
    words: list[int]
    payees: list[str]
    submitter: str
    tx_hash: str
    block: int


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

    def public_inputs(self, words: Sequence[int], payees: Sequence[str]) -> tuple[int, int]:
        """(rho, F) the contract will demand for the next batch with these words and payees."""
        return tuple(
            self._get("publicInputs", [int(w) for w in words], [Web3.to_checksum_address(p) for p in payees])
        )  # type: ignore[return-value]

    def binding_context(self, payees: Sequence[str], batch_index: int | None = None) -> Any:
        """omniplus.prover.binding.BindingContext for the next (or the given) batch of this market."""
        from omniplus.prover.binding import BindingContext

        idx = self.batches_submitted() if batch_index is None else batch_index
        return BindingContext(
            chain_id=self.chain_id,
            market=self.address,
            task_id=self.task_id,
            batch_index=idx,
            payees=tuple(Web3.to_checksum_address(p) for p in payees),
        )

    # ---- writes
    def register(self, key: str) -> dict:
        return transact(self.w3, key, self.contract.functions.register())

    def submit_batch(
        self, key: str, proof: Any, words: Sequence[int], payees: Sequence[str], *, gas: int | None = None
    ) -> dict:
        a, b, c = proof_calldata(proof)
        fn = self.contract.functions.submitBatch(
            a, b, c, [int(w) for w in words], [Web3.to_checksum_address(p) for p in payees]
        )
        return transact(self.w3, key, fn, gas=gas or submit_gas(len(payees), len(words)))

    def withdraw(self, key: str) -> dict:
        return transact(self.w3, key, self.contract.functions.withdraw())

    def finish(self, key: str) -> dict:
        return transact(self.w3, key, self.contract.functions.finish())

    def batch_events(self, from_block: int = 0) -> list[BatchEvent]:
        """Every BatchSubmitted event, with the packed words read from the submitBatch calldata.

        The log does not repeat the words (that would cost 8 gas per byte); the calldata is checked
        against the event's commitment, so a mismatch raises ChainError. This needs submitBatch to be
        called directly by an account (the usual case), not through another contract.
        """
        from eth_utils import keccak

        out = []
        for e in self.contract.events.BatchSubmitted().get_logs(from_block=from_block):
            tx_hash = "0x" + bytes(e["transactionHash"]).hex()
            commitment = bytes(e["args"]["aggregateCommitment"])
            tx = self.w3.eth.get_transaction(tx_hash)
            try:
                _, args = self.contract.decode_function_input(tx["input"])
                words = [int(w) for w in args["words"]]
            except Exception as exc:
                raise ChainError(f"batch {e['args']['batchIndex']}: cannot read the words from tx {tx_hash} "
                                 f"(submitted through a contract?): {exc}") from exc
            if keccak(b"".join(w.to_bytes(32, "big") for w in words)) != commitment:
                raise ChainError(f"batch {e['args']['batchIndex']}: calldata words do not match the commitment")
            out.append(BatchEvent(index=e["args"]["batchIndex"], commitment=commitment, words=words,
                                  payees=list(e["args"]["payees"]), submitter=e["args"]["submitter"],
                                  tx_hash=tx_hash, block=e["blockNumber"]))
        return out


