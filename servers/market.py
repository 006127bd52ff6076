"""Typed Python wrappers for the two market contracts.

RollupMarket: deploy with the reward deposit, register DOs, submit one proof per batch, withdraw,
finish, and read the batch events the MO needs. PlainMarket: the OmniLytics SecModelUpdate baseline,
with the DOs' Bonawitz-style pairwise masks made here (X25519 key agreement, SHAKE-256 expansion,
masks in Z_2^256 that cancel in each round's sum).

Every state-changing call returns the transaction receipt (gas is read from it by the benchmark).
Calls that verify a proof always carry an explicit gas limit (TOOLCHAIN.md: eth_estimateGas
under-estimates the pairing precompile).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from web3 import Web3
from web3.contract import Contract

from contracts.solc import Artifact, compile_contracts
from omniplus.errors import ChainError, InputError
from omniplus.paths import CONTRACTS_DIR
from servers.chain import address_of, call, deploy, send_tx, transact

if TYPE_CHECKING:
    from circuits.params import CircuitParams

R_FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
PLAIN_CHUNK = 250
PLAIN_SCALE = 10**8
_U256 = 1 << 256


def market_artifacts() -> dict[str, Artifact]:
    """RollupMarket, PlainMarket and the test-only ReentrancyAttacker (cached after the first build)."""
    return compile_contracts(
        CONTRACTS_DIR / "RollupMarket.sol",
        CONTRACTS_DIR / "PlainMarket.sol",
        CONTRACTS_DIR / "ReentrancyAttacker.sol",
    )


def submit_gas(n_payees: int, n_words: int) -> int:
    """A generous explicit gas limit for submitBatch (unused gas is not charged).

    ~230k for the Groth16 verification, ~50k per payee (two fresh storage slots, plus event data),
    ~3k per packed word (calldata, hashing, Horner, event data), plus a fixed margin.
    """
    return 450_000 + 50_000 * n_payees + 3_000 * n_words


# ---------------------------------------------------------------------- proofs and verifier
def proof_calldata(proof: Any) -> tuple[list[int], list[list[int]], list[int]]:
    """(a, b, c) as the snarkjs Solidity verifier takes them.

    Accepts prover.proof.Proof or a snarkjs proof.json dict. The G2 point B is passed with each
    coordinate's c1 before c0 (the EVM pairing precompile's order), while proof.json and the
    Python Proof keep (c0, c1).
    """
    if isinstance(proof, dict):
        try:
            a = [int(proof["pi_a"][0]), int(proof["pi_a"][1])]
            (x0, x1), (y0, y1) = proof["pi_b"][0], proof["pi_b"][1]
            c = [int(proof["pi_c"][0]), int(proof["pi_c"][1])]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputError(f"malformed proof.json: {exc}") from exc
        b = [[int(x1), int(x0)], [int(y1), int(y0)]]
        return a, b, c
    pa, pb, pc = proof.a, proof.b, proof.c
    if pa is None or pb is None or pc is None:
        raise InputError("a proof point is the point at infinity")
    (x0, x1), (y0, y1) = pb
    return [int(pa[0]), int(pa[1])], [[int(x1), int(x0)], [int(y1), int(y0)]], [int(pc[0]), int(pc[1])]


def verifier_artifact(source: str | Path) -> Artifact:
    """Compile a snarkjs-exported Groth16Verifier.sol (a file, or a setup directory holding one)."""
    path = Path(source)
    if path.is_dir():
        path = path / "Groth16Verifier.sol"
    if not path.exists():
        raise InputError(f"{path} not found (a setup directory has Groth16Verifier.sol)")
    arts = compile_contracts(path.resolve())
    if "Groth16Verifier" not in arts:
        raise InputError(f"{path} defines no contract Groth16Verifier")
    return arts["Groth16Verifier"]


def deploy_verifier(w3: Web3, key: str, source: str | Path) -> Contract:
    return deploy(w3, key, verifier_artifact(source))


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
        """prover.binding.BindingContext for the next (or the given) batch of this market."""
        from prover.binding import BindingContext

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
        logs = self.contract.events.BatchSubmitted().get_logs(from_block=from_block)
        return [
            BatchEvent(
                index=e["args"]["batchIndex"],
                commitment=bytes(e["args"]["aggregateCommitment"]),
                words=list(e["args"]["words"]),
                payees=list(e["args"]["payees"]),
                submitter=e["args"]["submitter"],
                tx_hash="0x" + bytes(e["transactionHash"]).hex(),
                block=e["blockNumber"],
            )
            for e in logs
        ]


# ---------------------------------------------------------------------- PlainMarket masks
def to_int256(x: int) -> int:
    """x mod 2^256 as a signed int256 (the ABI type of the uploads)."""
    x %= _U256
    return x - _U256 if x >= 1 << 255 else x


def fixed_point(values: Sequence[float], scale: int = PLAIN_SCALE) -> list[int]:
    """The paper's encoding: scale float32 values by 1e8 and keep the integer part."""
    return [int(v * scale) for v in values]


@dataclass
class MaskingKey:
    """A DO's X25519 key pair for one round's pairwise masks (Bonawitz et al. 2017)."""

    private: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)

    @property
    def public_bytes(self) -> bytes:
        return self.private.public_key().public_bytes_raw()


def _prg(seed: bytes, round_index: int, dims: int) -> list[int]:
    stream = hashlib.shake_256(seed + round_index.to_bytes(32, "big")).digest(32 * dims)
    return [int.from_bytes(stream[32 * i : 32 * i + 32], "big") for i in range(dims)]


def pairwise_mask(me: int, key: MaskingKey, peers: Sequence[bytes], round_index: int, dims: int) -> list[int]:
    """Mask of member `me` among the round's members whose public keys are `peers` (by index).

    For each pair i<j the shared secret seeds a PRG stream s_ij; member i adds it, member j
    subtracts it, all mod 2^256, so the masks cancel exactly in the round's sum.
    """
    total = [0] * dims
    for j, pk in enumerate(peers):
        if j == me:
            continue
        secret = key.private.exchange(X25519PublicKey.from_public_bytes(pk))
        s = _prg(hashlib.sha256(secret).digest(), round_index, dims)
        sign = 1 if me < j else -1
        total = [(t + sign * v) % _U256 for t, v in zip(total, s, strict=True)]
    return total


def masked_vector(values: Sequence[int], mask: Sequence[int]) -> list[int]:
    """values + mask mod 2^256, as int256 for the ABI."""
    return [to_int256(v + m) for v, m in zip(values, mask, strict=True)]


# ---------------------------------------------------------------------- PlainMarket
class PlainMarket:
    """A deployed PlainMarket (OmniLytics SecModelUpdate)."""

    STATES = ("Setup", "Register", "ModelAggregate", "OutlierSuppression", "Payment", "Finished")

    def __init__(self, w3: Web3, contract: Contract):
        self.w3 = w3
        self.contract = contract
        self.address: str = contract.address
        self.dims: int = call(contract.functions.dims())

    @classmethod
    def deploy(cls, w3: Web3, key: str, dims: int, deposit: int, *, round_timeout: int = 3600) -> PlainMarket:
        c = deploy(w3, key, market_artifacts()["PlainMarket"], dims, round_timeout, value=deposit)
        market = cls(w3, c)
        market.deploy_receipt = c.deploy_receipt  # type: ignore[attr-defined]
        return market

    @classmethod
    def at(cls, w3: Web3, address: str) -> PlainMarket:
        art = market_artifacts()["PlainMarket"]
        return cls(w3, w3.eth.contract(address=Web3.to_checksum_address(address), abi=art.abi))

    def _get(self, name: str, *args: Any) -> Any:
        return call(getattr(self.contract.functions, name)(*args))

    def _tx(self, key: str, fn: Any, gas: int | None = None) -> dict:
        return transact(self.w3, key, fn, gas=gas)

    @property
    def state(self) -> str:
        return self.STATES[self._get("state")]

    def chunks(self, values: Sequence[int]) -> list[tuple[int, list[int]]]:
        if len(values) != self.dims:
            raise InputError(f"vector has {len(values)} values, the market expects {self.dims}")
        return [
            (i // PLAIN_CHUNK, [int(v) for v in values[i : i + PLAIN_CHUNK]])
            for i in range(0, self.dims, PLAIN_CHUNK)
        ]

    # ---- MO
    def whitelist(self, key: str, addresses: Sequence[str]) -> dict:
        return self._tx(
            key, self.contract.functions.whitelist([Web3.to_checksum_address(a) for a in addresses])
        )

    def load_model(self, key: str, values: Sequence[int]) -> list[dict]:
        return [
            self._tx(key, self.contract.functions.loadModel(i, chunk)) for i, chunk in self.chunks(values)
        ]

    def start(
        self,
        key: str,
        *,
        m0: int = 100,
        epochs: int = 2,
        batch: int = 32,
        rounds: int = 8,
        per_round: int = 4,
        mu: tuple[int, int] = (1, 4),
        m: int = 0,
    ) -> dict:
        return self._tx(
            key, self.contract.functions.start(m0, epochs, batch, rounds, per_round, mu[0], mu[1], m)
        )

    def exit(self, key: str) -> dict:
        return self._tx(key, self.contract.functions.exit())

    def finish(self, key: str) -> dict:
        return self._tx(key, self.contract.functions.finish())

    # ---- DO
    def register(self, key: str) -> dict:
        return self._tx(key, self.contract.functions.register())

    def post_public_key(self, key: str, pk: bytes) -> dict:
        if len(pk) != 32:
            raise InputError("an X25519 public key is 32 bytes")
        return self._tx(key, self.contract.functions.postPublicKey(pk))

    def upload(self, key: str, masked: Sequence[int]) -> list[dict]:
        """The masked vector (int256 values) in chunks of 250, one transaction each."""
        return [
            self._tx(key, self.contract.functions.uploadChunk(i, chunk)) for i, chunk in self.chunks(masked)
        ]

    def withdraw(self, key: str) -> dict:
        return self._tx(key, self.contract.functions.withdraw())

    def fail_round(self, key: str) -> dict:
        return self._tx(key, self.contract.functions.failRound())

    # ---- anyone
    def suppress_outliers(self, key: str, chunks_per_tx: int = 4, gas: int | None = None) -> list[dict]:
        """Run outlier suppression to the end (several transactions for a large d)."""
        receipts = []
        while self.state == "OutlierSuppression":
            receipts.append(self._tx(key, self.contract.functions.suppressOutliers(chunks_per_tx), gas=gas))
            if len(receipts) > 1000:
                raise ChainError("outlier suppression does not finish")
        return receipts

    # ---- reads
    def members(self, round_index: int) -> list[str]:
        return list(self._get("roundMembers", round_index))

    def public_keys(self, round_index: int) -> list[bytes]:
        return [bytes(self._get("publicKeys", round_index, a)) for a in self.members(round_index)]

    def current_round(self) -> int:
        return self._get("currentRound")

    def successful_rounds(self) -> list[int]:
        return [self._get("successfulRounds", i) for i in range(self._get("successfulRoundCount"))]

    def selected_rounds(self) -> list[int]:
        return list(self._get("selectedRoundList"))

    def round_sum(self, round_index: int) -> list[int]:
        return list(self._get("roundSum", round_index))

    def credit(self, who: str) -> int:
        return self._get("credit", Web3.to_checksum_address(who))

    def accounts(self) -> dict[str, int]:
        return {
            "deposit": self._get("deposit"),
            "totalCredited": self._get("totalCredited"),
            "totalWithdrawn": self._get("totalWithdrawn"),
            "refunded": self._get("refunded"),
            "balance": self.w3.eth.get_balance(self.address),
        }


def send_value(w3: Web3, key: str, to: str, value: int) -> dict:
    """Plain ETH transfer (used by tests to fund accounts)."""
    return send_tx(w3, key, to=to, value=value, gas=21_000, what=f"transfer from {address_of(key)}")
