"""Is this DO registered on the task's contract? One small interface, three implementations.

The daemon accepts shares only from registered DOs and ties each submission to the payee the
contract will credit.
* `EventRegistry` (what a daemon with `registry = "chain"` uses): a cache of RollupMarket's
  `Registered` events, filled by a background thread in block ranges from the task's deployment
  block. A Submit never waits on the RPC: a known DO is answered from memory, a miss nudges the
  refresher and is answered UNAVAILABLE ("not seen yet, retry") until a sync that started after
  the miss has finished; then the negative answer is cached for `negative_ttl` seconds. A stalled
  or dead RPC therefore costs a request nothing but a dictionary lookup.
* `ChainRegistry`: one view call per lookup (a tool and test helper; too slow for a request path).
* `DevAllowList`: a fixed list for development networks and transport-level tests, selected
  explicitly with `registry = "dev-allowlist"` so it can never be mistaken for the real check.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, Protocol

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


class RegistryNotYet(ChainError):
    """The registry has not yet synced past the moment this DO was first asked about."""


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


def _topic(signature: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=signature).hex()


def _json_rpc(url: str, method: str, params: list[Any], timeout: float) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data = json.loads(resp.read())
    if "error" in data:
        raise ChainError(f"{method}: {data['error'].get('message', data['error'])}")
    return data["result"]


NEGATIVE_TTL = 2.0  # seconds a "not registered" answer is reused without waiting for a new sync


class EventRegistry:
    """Registered DOs from `Registered` logs, kept current by a background thread (see module doc).

    `from_block` is the task's deployment block (None: read `deployBlock()` from the contract if it
    has it, else 0). Logs are fetched in `block_range`-block windows; a chain whose head went
    backwards (a restarted chain without its state) is rescanned from `from_block`. Every RPC call
    has `rpc_timeout`; none runs on a caller's thread."""

    MAX_PENDING = 100_000  # misses remembered at once (each costs a signed request to create)

    def __init__(
        self,
        rpc_url: str,
        market: str,
        *,
        from_block: int | None = None,
        poll: float = 1.0,
        negative_ttl: float = NEGATIVE_TTL,
        block_range: int = 2_000,
        rpc_timeout: float = 5.0,
        log: Callable[..., None] | None = None,
    ) -> None:
        if not (market.startswith("0x") and len(market) == 42):
            raise InputError(f"registry: market {market!r} is not a 0x-prefixed address")
        self.rpc_url, self.market = rpc_url, market.lower()
        self.from_block = from_block
        self.poll, self.negative_ttl = poll, negative_ttl
        self.block_range, self.rpc_timeout = block_range, rpc_timeout
        self.log = log or (lambda *_a, **_k: None)
        self.topic = _topic("Registered(address)")
        self._known: set[bytes] = set()
        self._first_miss: dict[bytes, float] = {}
        self._negative: dict[bytes, float] = {}
        self._next_block: int | None = None  # first block not yet scanned
        self._fresh_as_of = -1.0  # monotonic time at which the last complete sync read the head
        self._synced_at = 0.0
        self._error = ""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.syncs = 0

    # lifecycle
    def start(self) -> EventRegistry:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="registry", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.rpc_timeout + 1)
            self._thread = None

    # the request path: memory only
    def payee(self, do_address: bytes) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            if do_address in self._known:
                return do_address
            until = self._negative.get(do_address)
            if until is not None and now < until:
                return None
            first = self._first_miss.get(do_address)
            if first is not None and self._fresh_as_of >= first:
                self._first_miss.pop(do_address, None)
                if len(self._negative) >= self.MAX_PENDING:
                    self._negative.clear()
                self._negative[do_address] = now + self.negative_ttl
                return None
            if first is None:
                if len(self._first_miss) >= self.MAX_PENDING:
                    self._first_miss.clear()
                self._first_miss[do_address] = now
            at, err, age = self._next_block, self._error, now - self._synced_at if self._synced_at else None
        self._wake.set()
        where = "not synced yet" if at is None else f"synced to block {at - 1}"
        if age is not None:
            where += f" {age:.1f}s ago"
        raise RegistryNotYet(
            f"registration of 0x{do_address.hex()} not seen yet (registry {where}"
            + (f"; chain RPC failing: {err}" if err else "")
            + "); retry in a moment"
        )

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"known": len(self._known), "next_block": self._next_block, "error": self._error,
                    "synced_ago_s": round(time.monotonic() - self._synced_at, 3) if self._synced_at else None}

    # the background thread
    def _rpc(self, method: str, params: list[Any]) -> Any:
        try:
            return _json_rpc(self.rpc_url, method, params, self.rpc_timeout)
        except (OSError, urllib.error.URLError, ValueError, TimeoutError) as exc:
            raise ChainError(f"{method} on {self.rpc_url}: {exc}") from None

    def _start_block(self) -> int:
        if self.from_block is not None:
            return self.from_block
        from eth_utils import keccak

        try:
            out = self._rpc("eth_call", [{"to": self.market, "data": "0x" + keccak(text="deployBlock()")[:4].hex()},
                                         "latest"])
            self.from_block = int(out, 16) if out not in ("0x", "", None) else 0
        except ChainError as exc:
            if "revert" not in str(exc).lower() and "execution" not in str(exc).lower():
                raise
            self.from_block = 0  # an older contract without deployBlock(): scan from genesis
        return self.from_block

    def sync_once(self) -> int:
        """Scan new blocks for Registered logs; returns how many new DOs were found."""
        started = time.monotonic()
        head = int(self._rpc("eth_blockNumber", []), 16)
        with self._lock:
            nxt = self._next_block
        if nxt is None or head < nxt - 1:
            if nxt is not None:
                self.log("registry_rescan", level="warning", head=head, had=nxt - 1,
                         note="chain head went backwards: rescanning from the deployment block")
            nxt = self._start_block()
        found: set[bytes] = set()
        lo = nxt
        while lo <= head:
            hi = min(head, lo + self.block_range - 1)
            logs = self._rpc("eth_getLogs", [{"address": self.market, "fromBlock": hex(lo), "toBlock": hex(hi),
                                               "topics": [self.topic]}])
            for entry in logs:
                topics = entry.get("topics") or []
                if len(topics) >= 2 and isinstance(topics[1], str) and len(topics[1]) == 66:
                    found.add(bytes.fromhex(topics[1][-40:]))
            with self._lock:
                self._known |= found
                self._next_block = hi + 1
            lo = hi + 1
        with self._lock:
            self._known |= found
            self._next_block = max(self._next_block or 0, head + 1)
            self._fresh_as_of = started
            self._synced_at = time.monotonic()
            if self._error:
                self.log("registry_recovered", head=head, after=self._error)
            self._error = ""
            self.syncs += 1
        return len(found)

    def _run(self) -> None:
        backoff = self.poll
        while not self._stop.is_set():
            try:
                self.sync_once()
                backoff = self.poll
            except (ChainError, KeyError, TypeError, ValueError) as exc:
                with self._lock:
                    first = not self._error
                    self._error = str(exc)[:300]
                if first:
                    self.log("registry_rpc_failing", level="warning", error=str(exc)[:300],
                             note="known DOs are still served from the cache")
                backoff = min(max(backoff * 2, self.poll), 10.0)
            self._wake.wait(backoff)
            self._wake.clear()


def make_registry(
    kind: str,
    *,
    rpc_url: str = "",
    market: str = "",
    allowlist: Iterable[str] = (),
    call: str = DEFAULT_CALL,
    from_block: int | None = None,
    log: Callable[..., None] | None = None,
) -> Registry:
    """The registry a config asks for (the chain one is started by the caller: `.start()`)."""
    if kind == "chain":
        if call != DEFAULT_CALL:  # a payee mapping other than "the DO itself" needs the view call
            return ChainRegistry(rpc_url, market, call)
        return EventRegistry(rpc_url, market, from_block=from_block, log=log)
    if kind == "dev-allowlist":
        return DevAllowList(allowlist)
    raise InputError(f"unknown registry kind {kind!r}")
