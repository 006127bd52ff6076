"""Chain access: a local anvil for development and tests, and signed transactions on any EVM RPC.

Transactions are signed locally with a private key (no node-held accounts), so the same code runs
against anvil and any other JSON-RPC endpoint. Reverts surface as ChainError carrying the decoded
reason (custom error name and arguments, require string or panic code).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from omniplus.contracts.solc import Artifact
from omniplus.core.errors import ChainError, ToolError
from omniplus.core.resources import anvil_binary

# The well-known development mnemonic (anvil's and hardhat's default): keys are public by design.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 31337
DEFAULT_GAS_LIMIT = 30_000_000

Account.enable_unaudited_hdwallet_features()


@dataclass(frozen=True)
class DevAccount:
    """A funded development account: checksummed address and 0x-prefixed private key."""

    address: str
    key: str


def dev_accounts(n: int, mnemonic: str = DEV_MNEMONIC) -> list[DevAccount]:
    """The first n accounts of the mnemonic on the standard Ethereum path."""
    out = []
    for i in range(n):
        acct = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}")
        out.append(DevAccount(acct.address, "0x" + acct.key.hex().removeprefix("0x")))
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rpc(url: str, method: str, params: list | None = None, timeout: float = 5.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data = json.loads(resp.read())
    if "error" in data:
        raise ChainError(f"{method}: {data['error'].get('message', data['error'])}")
    return data["result"]


_LIVE: weakref.WeakSet[Anvil] = weakref.WeakSet()

# anvil 1.7.1 keeps 64+ states in memory and then writes every older state to
# ~/.foundry/anvil/tmp/anvil-state-* (never removed: one benchmark filled 66 GB). Readers here
# use events and the latest state only, so each anvil keeps HISTORY_STATES states in memory and
# none on disk, and runs with HOME and --cache-path in a private folder that is removed on stop
# (and, if a parent was SIGKILLed, at the next start).
HISTORY_STATES = 64
STATE_PREFIX = "anvil-"
OWNER_FILE = "owner.json"


def anvil_state_root() -> Path:
    """Where private anvil folders live: one per running anvil, named anvil-<random>."""
    root = Path(os.environ.get("OMNIPLUS_ANVIL_TMP") or Path(tempfile.gettempdir()) / f"omniplus-{os.getuid()}")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) holds no files: treat it as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_state_dirs(root: Path | None = None) -> list[Path]:
    """Remove private anvil folders whose anvil is no longer running (left by a killed parent)."""
    root = root or anvil_state_root()
    removed = []
    for d in root.glob(STATE_PREFIX + "*"):
        try:
            pid = int(json.loads((d / OWNER_FILE).read_text())["anvil_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            # no owner yet: a start in progress, unless the folder is old
            try:
                if time.time() - d.stat().st_mtime < 120:
                    continue
            except OSError:
                continue
            pid = -1
        if pid < 0 or not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _death_signal_hook() -> Any:
    """A preexec_fn that makes the kernel SIGTERM the child when its parent dies, even by SIGKILL.

    Linux prctl(PR_SET_PDEATHSIG); libc is loaded here, in the parent, so the child only makes one
    system call between fork and exec. None where prctl is missing."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1

    return hook


@atexit.register
def _stop_all() -> None:
    for node in list(_LIVE):
        node.stop()


class Anvil:
    """A local anvil on 127.0.0.1 and a free port, with known funded keys.

    Use as a context manager; it is also stopped at interpreter exit. Output is discarded
    (anvil logs every request), unless log_path is given. Disk stays bounded: history_states
    states in memory, none persisted (`--prune-history`), and HOME/--cache-path point at a
    private folder (`.state_dir`) removed by stop(); if the parent is killed, anvil gets SIGTERM
    (when started from the main thread) and the next start removes the orphaned folder.
    """

    def __init__(self, *, port: int | None = None, accounts: int = 10, balance_eth: int = 1_000_000,
                 chain_id: int = DEFAULT_CHAIN_ID, gas_limit: int = DEFAULT_GAS_LIMIT,
                 mnemonic: str = DEV_MNEMONIC, log_path: str | None = None, start_timeout: float = 30.0,
                 history_states: int = HISTORY_STATES, state: str | Path | None = None,
                 state_interval: int = 1):
        self.port = port
        self.n_accounts = accounts
        self.balance_eth = balance_eth
        self.chain_id = chain_id
        self.gas_limit = gas_limit
        self.mnemonic = mnemonic
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.history_states = history_states
        # `state`: a file anvil loads at start and dumps every `state_interval` s and at exit, so a
        # killed or stopped chain restarts where it was (restart() keeps the port). One file, rewritten
        # in place: the disk it takes stays bounded like the rest.
        self.state = Path(state) if state is not None else None
        self.state_interval = state_interval
        self.state_dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._accounts: list[DevAccount] | None = None
        self._w3: Web3 | None = None

    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise ChainError("anvil is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def accounts(self) -> list[DevAccount]:
        if self._accounts is None:
            self._accounts = dev_accounts(self.n_accounts, self.mnemonic)
        return self._accounts

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.accounts]

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            self._w3 = connect(self.rpc_url)
        return self._w3

    def start(self) -> Anvil:
        if self.proc is not None:
            return self
        root = anvil_state_root()
        remove_stale_state_dirs(root)
        for attempt in range(3):
            port = self.port if (self.port and attempt == 0) else _free_port()
            self.state_dir = Path(tempfile.mkdtemp(prefix=STATE_PREFIX, dir=root))
            cmd = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port),
                   "--accounts", str(self.n_accounts), "--balance", str(self.balance_eth),
                   "--mnemonic", self.mnemonic, "--chain-id", str(self.chain_id),
                   "--gas-limit", str(self.gas_limit),
                   "--prune-history", str(self.history_states),
                   "--cache-path", str(self.state_dir / "cache")]
            if self.state is not None:
                cmd += ["--state", str(self.state), "--state-interval", str(self.state_interval)]
            env = {**os.environ, "HOME": str(self.state_dir)}
            main_thread = threading.current_thread() is threading.main_thread()
            out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                             stdin=subprocess.DEVNULL, start_new_session=True,
                                             preexec_fn=_death_signal_hook() if main_thread else None)
            finally:
                if self.log_path:
                    out.close()
            (self.state_dir / OWNER_FILE).write_text(json.dumps({"anvil_pid": self.proc.pid,
                                                                 "parent_pid": os.getpid()}))
            self.port = port
            if self._wait_ready():
                _LIVE.add(self)
                return self
            self.stop()
        raise ToolError("anvil did not start (port clash or missing binary); run it by hand to see why")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                if int(_rpc(self.rpc_url, "eth_chainId", timeout=1.0), 16) == self.chain_id:
                    return True
            except (OSError, urllib.error.URLError, ChainError, ValueError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        self._w3 = None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        state_dir, self.state_dir = self.state_dir, None
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)
        _LIVE.discard(self)

    def restart(self) -> Anvil:
        """Stop (SIGTERM: anvil dumps its state) and start again on the same port."""
        port = self.port
        self.stop()
        self.port = port
        return self.start()

    def kill(self) -> None:
        """SIGKILL the chain (no final dump: what survives is the last periodic state dump)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- anvil-only conveniences
    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block so the new time is in effect."""
        increase_time(self.w3, seconds)

    def snapshot(self) -> str:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snap: str) -> None:
        res = self.w3.provider.make_request("evm_revert", [snap])
        if not res.get("result"):
            raise ChainError(f"evm_revert {snap} failed")


def increase_time(w3: Web3, seconds: int) -> None:
    """Development chains only (anvil/hardhat): advance block time and mine."""
    w3.provider.make_request("evm_increaseTime", [int(seconds)])
    w3.provider.make_request("evm_mine", [])


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    """A Web3 for rpc_url; ChainError if nothing answers there."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            w3.eth.chain_id  # noqa: B018  (probe)
            return w3
        except Exception as exc:  # requests/urllib errors differ by provider version
            last = exc
        if time.monotonic() >= deadline:
            raise ChainError(f"cannot reach an Ethereum JSON-RPC endpoint at {rpc_url}: {last}")
        time.sleep(0.2)


def load_key(key: str | None = None, keyfile: str | os.PathLike | None = None) -> str:
    """A private key from a hex string or a file holding one (first line); 0x-prefixed."""
    if keyfile is not None:
        try:
            key = open(keyfile).read().strip().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ChainError(f"cannot read a key from {keyfile}: {exc}") from exc
    if not key:
        raise ChainError("no private key given")
    key = key if key.startswith("0x") else "0x" + key
    try:
        if len(bytes.fromhex(key[2:])) != 32:
            raise ValueError
    except ValueError as exc:
        raise ChainError("a private key is 32 bytes of hex") from exc
    return key


def address_of(key: str) -> str:
    return Account.from_key(key).address


# ------------------------------------------------------------------ revert reasons
_PANICS = {0x01: "assert failed", 0x11: "arithmetic overflow", 0x12: "division by zero",
           0x21: "bad enum value", 0x22: "bad storage byte array", 0x31: "pop on empty array",
           0x32: "array index out of bounds", 0x41: "out of memory", 0x51: "zero internal function"}


def _error_table(abis: Iterable[list]) -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for abi in abis:
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item.get("inputs", [])]
            sig = f"{item['name']}({','.join(types)})"
            table[keccak(text=sig)[:4]] = (item["name"], types)
    return table


def _abi_type(inp: dict) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


def decode_revert(data: bytes | str | None, abis: Iterable[list] = ()) -> str:
    """Human-readable revert reason from return data, using the custom errors in abis."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    if not data:
        return "reverted without a reason (out of gas, or a bare revert)"
    sel, body = data[:4], data[4:]
    try:
        if sel == bytes.fromhex("08c379a0"):
            return abi_decode(["string"], body)[0]
        if sel == bytes.fromhex("4e487b71"):
            code = abi_decode(["uint256"], body)[0]
            return f"panic 0x{code:02x} ({_PANICS.get(code, 'unknown')})"
        table = _error_table(abis)
        if sel in table:
            name, types = table[sel]
            args = abi_decode(types, body) if types else ()
            shown = ", ".join(_show(a) for a in args)
            return f"{name}({shown})"
    except Exception:  # malformed return data: fall through to the raw bytes
        pass
    return f"reverted with data 0x{data.hex()}"


def _show(v: Any) -> str:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return to_checksum_address(v)
    return repr(v) if isinstance(v, str) else str(v)


def _revert_data(err: Any) -> str | None:
    """Revert data from a JSON-RPC error object (anvil puts it in error.data)."""
    if isinstance(err, dict):
        data = err.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            return data
        if isinstance(data, dict):
            return _revert_data(data)
    return None


# ------------------------------------------------------------------ transactions
def _call_raw(w3: Web3, tx: dict, block: int | str = "latest") -> tuple[bool, str]:
    """eth_call; (ok, return-or-revert data)."""
    params = {k: (hex(v) if isinstance(v, int) else v) for k, v in tx.items()
              if k in ("from", "to", "data", "value", "gas")}
    blk = hex(block) if isinstance(block, int) else block
    res = w3.provider.make_request("eth_call", [params, blk])
    if "error" in res:
        data = _revert_data(res["error"])
        if data is None:
            raise ChainError(f"eth_call failed: {res['error'].get('message', res['error'])}")
        return False, data
    return True, res["result"]


def send_tx(w3: Web3, key: str, *, to: str | None, data: bytes | str = b"", value: int = 0,
            gas: int | None = None, abis: Sequence[list] = (), what: str = "transaction") -> dict:
    """Sign with key, send, wait for the receipt; ChainError with the decoded reason on revert.

    Pass gas explicitly for anything that verifies a proof: eth_estimateGas under-estimates the
    pairing precompile (see TOOLCHAIN.md). Without gas, the estimate (which also reveals a revert
    before anything is sent) plus a 20% margin is used.
    """
    sender = address_of(key)
    if isinstance(data, bytes):
        data = "0x" + data.hex()
    tx: dict[str, Any] = {"from": sender, "data": data, "value": int(value), "chainId": w3.eth.chain_id}
    if to is not None:
        tx["to"] = to_checksum_address(to)
    if gas is None:
        est = w3.provider.make_request("eth_estimateGas", [{k: (hex(v) if isinstance(v, int) else v)
                                                            for k, v in tx.items() if k != "chainId"}])
        if "error" in est:
            rd = _revert_data(est["error"])
            reason = decode_revert(rd, abis) if rd is not None else est["error"].get("message", "?")
            raise ChainError(f"{what} would revert: {reason}")
        gas = int(int(est["result"], 16) * 1.2) + 10_000
    tx["gas"] = int(gas)
    tx["nonce"] = w3.eth.get_transaction_count(sender, "pending")
    tx["gasPrice"] = w3.eth.gas_price
    signed = Account.sign_transaction(tx, key)
    try:
        h = w3.eth.send_raw_transaction(signed.raw_transaction)
    except Exception as exc:
        raise ChainError(f"{what}: node refused the transaction: {exc}") from exc
    # anvil mines within milliseconds; web3's default 0.1 s poll made up a third of a gas bench run
    receipt = dict(w3.eth.wait_for_transaction_receipt(h, timeout=120, poll_latency=0.01))
    if receipt["status"] != 1:
        reason = "out of gas or reverted"
        try:  # replay on the state just before the block to learn why
            ok, rd = _call_raw(w3, tx, receipt["blockNumber"] - 1)
            if not ok:
                reason = decode_revert(rd, abis)
            elif receipt["gasUsed"] >= tx["gas"]:
                reason = f"out of gas (limit {tx['gas']})"
        except ChainError:
            pass
        raise ChainError(f"{what} reverted: {reason} (tx 0x{bytes(h).hex()}, gas used {receipt['gasUsed']})")
    return receipt


# ABIs of every contract deployed from this process: errors bubbling up through another
# contract (a proxy, an attacker) still decode by name.
_KNOWN_ABIS: dict[str, list] = {}


def transact(w3: Web3, key: str, fn: Any, *, value: int = 0, gas: int | None = None,
             extra_abis: Sequence[list] = ()) -> dict:
    """Send a bound contract function call (contract.functions.f(args)) signed by key."""
    data = fn._encode_transaction_data()
    return send_tx(w3, key, to=fn.address, data=data, value=value, gas=gas,
                   abis=[fn.contract_abi, *extra_abis, *_KNOWN_ABIS.values()], what=fn.fn_name)


def call(fn: Any, *, sender: str | None = None) -> Any:
    """A view call with decoded reverts."""
    try:
        return fn.call({"from": sender} if sender else {})
    except Exception as exc:
        data = getattr(exc, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            raise ChainError(f"{fn.fn_name} reverted: {decode_revert(data, [fn.contract_abi])}") from exc
        raise ChainError(f"{fn.fn_name} failed: {exc}") from exc


def deploy(w3: Web3, key: str, artifact: Artifact, *args: Any, value: int = 0,
           gas: int | None = None) -> Contract:
    """Deploy artifact with constructor args; returns the bound contract (receipt on .deploy_receipt)."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    data = factory.constructor(*args).data_in_transaction
    receipt = send_tx(w3, key, to=None, data=data, value=value, gas=gas, abis=[artifact.abi],
                      what=f"deploy {artifact.name}")
    addr = receipt.get("contractAddress")
    if not addr:
        raise ChainError(f"deploy {artifact.name}: no contract address in the receipt")
    contract = w3.eth.contract(address=addr, abi=artifact.abi)
    _KNOWN_ABIS.setdefault(artifact.name, artifact.abi)
    contract.deploy_receipt = receipt  # type: ignore[attr-defined]
    return contract


def send_value(w3: Web3, key: str, to: str, value: int) -> dict:
    """Plain ETH transfer (used by tests to fund accounts)."""
    return send_tx(w3, key, to=to, value=value, gas=21_000, what=f"transfer from {address_of(key)}")


def simulate(w3: Web3, fn: Any, *, sender: str, gas: int) -> None:
    """eth_call a bound contract function as `sender` with an explicit gas limit; ChainError with the
    decoded reason if it would revert. Relayers call this before broadcasting, so a transaction that
    would revert (and leak its calldata) is never sent."""
    tx = {"from": to_checksum_address(sender), "to": fn.address, "data": fn._encode_transaction_data(),
          "gas": int(gas)}
    ok, data = _call_raw(w3, tx)
    if not ok:
        reason = decode_revert(data, [fn.contract_abi, *_KNOWN_ABIS.values()])
        raise ChainError(f"{fn.fn_name} would revert: {reason}")
