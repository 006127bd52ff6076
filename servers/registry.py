"""Is this DO registered on the task's contract? One small interface, two implementations.

The daemon accepts shares only from registered DOs and ties each submission to the payee the
contract will credit. `ChainRegistry` asks RollupMarket over JSON-RPC (a view call; the contract's
function name is a parameter because the contract is still moving); `DevAllowList` is a fixed
list for development networks and transport-level tests, selected explicitly with
`registry = "dev-allowlist"` so it can never be mistaken for the real check.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Protocol

from omniplus.core.errors import ChainError, InputError

# RollupMarket: `mapping(address => bool) public registered;` (one task per contract).
DEFAULT_CALL = "registered(address)->bool"


class Registry(Protocol):
    def payee(self, do_address: bytes) -> bytes | None:
        """The 20-byte address the contract credits for this DO, or None if it is not registered.

        Raises ChainError when the answer cannot be obtained (the daemon then returns UNAVAILABLE,
        it never treats "could not ask" as "not registered" or as "registered").
        """
        ...


class DevAllowList:
    """Development/test only: a fixed set of DO addresses, each its own payee."""

    def __init__(self, addresses: Iterable[str | bytes]) -> None:
        self._allowed = {
            a if isinstance(a, bytes) else bytes.fromhex(a.removeprefix("0x")) for a in addresses
        }

    def payee(self, do_address: bytes) -> bytes | None:
        return do_address if do_address in self._allowed else None


_CALL_RE = re.compile(r"^(\w+)\(address\)->(bool|address)$")


class ChainRegistry:
    """RollupMarket over web3. `call` is `name(address)->bool|address`, called with the DO's
    address (the task is the contract). `->bool`: the DO is its own payee;
    `->address`: the returned address is the payee (zero address = not registered).
    Positive answers are cached (registration is permanent); negative ones are not."""

    def __init__(self, rpc_url: str, market: str, call: str = DEFAULT_CALL) -> None:
        m = _CALL_RE.match(call.replace(" ", ""))
        if not m:
            raise InputError(f"registry call {call!r} is not of the form name(address)->bool|address")
        self.fn, self.returns = m.group(1), m.group(2)
        self.rpc_url, self.market = rpc_url, market
        self._contract = None
        self._cache: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def _get(self):  # type: ignore[no-untyped-def]
        if self._contract is None:
            from web3 import Web3

            w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10}))
            abi = [
                {
                    "type": "function",
                    "name": self.fn,
                    "stateMutability": "view",
                    "inputs": [{"name": "who", "type": "address"}],
                    "outputs": [{"name": "", "type": self.returns}],
                }
            ]
            self._contract = w3.eth.contract(address=Web3.to_checksum_address(self.market), abi=abi)
        return self._contract

    def payee(self, do_address: bytes) -> bytes | None:
        with self._lock:
            if do_address in self._cache:
                return self._cache[do_address]
        from web3 import Web3

        who = Web3.to_checksum_address(do_address)
        try:
            out = getattr(self._get().functions, self.fn)(who).call()
        except Exception as exc:  # web3 raises many transport/ABI error types
            raise ChainError(f"registry: {self.fn}({who}) on {self.market} failed: {exc}") from None
        if self.returns == "bool":
            payee = do_address if out else None
        else:
            payee = bytes.fromhex(out[2:]) if int(out, 16) != 0 else None
        if payee is not None:
            with self._lock:
                self._cache[do_address] = payee
        return payee


def make_registry(
    kind: str,
    *,
    rpc_url: str = "",
    market: str = "",
    allowlist: Iterable[str] = (),
    call: str = DEFAULT_CALL,
) -> Registry:
    """The registry a config asks for."""
    if kind == "chain":
        return ChainRegistry(rpc_url, market, call)
    if kind == "dev-allowlist":
        return DevAllowList(allowlist)
    raise InputError(f"unknown registry kind {kind!r}")
