"""PlainMarket from Python: the OmniLytics SecModelUpdate baseline, with the DOs' Bonawitz-style
pairwise masks made here (X25519 key agreement, SHAKE-256 expansion, masks in Z_2^256 that cancel
in each round's sum)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from web3 import Web3
from web3.contract import Contract

from omniplus.contracts.chain import call, deploy, transact
from omniplus.contracts.solc import market_artifacts
from omniplus.core.errors import ChainError, InputError

if TYPE_CHECKING:
    pass

PLAIN_CHUNK = 250
PLAIN_SCALE = 10**8
_U256 = 1 << 256



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
        """Run outlier suppression to the end (several transactions for a large d).

        If a step would not fit in the block gas limit, fewer chunks are taken per transaction.
        """
        receipts = []
        step = max(1, chunks_per_tx)
        while self.state == "OutlierSuppression":
            try:
                receipts.append(self._tx(key, self.contract.functions.suppressOutliers(step), gas=gas))
            except ChainError as exc:
                if step == 1 or "gas" not in str(exc).lower():
                    raise
                step //= 2
                continue
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


