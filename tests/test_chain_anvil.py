"""servers/chain.py and the chain/deploy verbs: anvil lifecycle, keys, revert decoding, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from eth_abi import encode

from omniplus.cli import main
from omniplus.contracts.chain import Anvil, _free_port, connect, decode_revert, dev_accounts, load_key, send_value
from omniplus.contracts.plain import PlainMarket
from omniplus.contracts.solc import compile_contracts, market_artifacts
from omniplus.core.errors import ChainError

ANVIL_KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def test_anvil_lifecycle_and_keys():
    with Anvil(accounts=3) as node:
        assert node.rpc_url.startswith("http://127.0.0.1:")
        assert node.keys[0] == ANVIL_KEY0
        w3 = node.w3
        assert w3.eth.chain_id == 31337
        assert w3.eth.get_balance(node.accounts[2].address) == 10**24  # 1e6 ETH each
        rc = send_value(w3, node.keys[0], node.accounts[1].address, 12345)
        assert rc["status"] == 1
        proc = node.proc
    assert proc.poll() is not None  # stopped on exit
    with pytest.raises(ChainError, match="cannot reach"):
        connect(f"http://127.0.0.1:{_free_port()}", timeout=0.5)


def test_dev_accounts_match_anvil_default_mnemonic():
    assert dev_accounts(1)[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_load_key(tmp_path):
    f = tmp_path / "k"
    f.write_text(ANVIL_KEY0[2:] + "\n")
    assert load_key(keyfile=f) == ANVIL_KEY0
    assert load_key(ANVIL_KEY0[2:]) == ANVIL_KEY0
    with pytest.raises(ChainError):
        load_key("0x1234")
    with pytest.raises(ChainError):
        load_key(keyfile=tmp_path / "missing")


def test_decode_revert_forms():
    abi = market_artifacts()["RollupMarket"].abi
    sel = bytes.fromhex("08c379a0")
    assert decode_revert(sel + encode(["string"], ["nope"])) == "nope"
    assert "overflow" in decode_revert(bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]))
    from eth_utils import keccak
    data = keccak(text="WrongWordCount(uint256,uint256)")[:4] + encode(["uint256", "uint256"], [1, 2])
    assert decode_revert(data, [abi]) == "WrongWordCount(1, 2)"
    assert "without a reason" in decode_revert(b"")


def test_compile_is_cached():
    t = time.perf_counter()
    arts = compile_contracts("RollupMarket.sol", "PlainMarket.sol", "ReentrancyAttacker.sol")
    assert {"RollupMarket", "PlainMarket", "ReentrancyAttacker"} <= set(arts)
    assert arts["RollupMarket"].bytecode.startswith("0x6")
    assert arts["PlainMarket"].deployed_size < 24576  # under the EIP-170 limit
    arts2 = compile_contracts("RollupMarket.sol", "PlainMarket.sol", "ReentrancyAttacker.sol")
    assert arts2 == arts and time.perf_counter() - t < 30


def test_cli_deploy_plain_and_errors(capsys):
    assert main(["deploy", "plain", "--exit", "--json", "--dims", "260"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["plain_market"].startswith("0x") and out["dims"] == 260
    # against an existing RPC with an explicit key; the contract is really there
    with Anvil(accounts=2) as node:
        assert main(["deploy", "plain", "--rpc", node.rpc_url, "--key", node.keys[1], "--json"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["deployer"] == node.accounts[1].address
        assert PlainMarket.at(node.w3, out["plain_market"]).dims == 5701
        assert main(["deploy", "plain", "--rpc", node.rpc_url]) == 1  # no key
        assert main(["deploy", "market", "--rpc", node.rpc_url, "--key", node.keys[0],
                     "--verifier", node.accounts[1].address, "--batch", "2", "--dims", "8",
                     "--bits", "8", "--norm-bound", "100"]) == 1  # no committee
        committee = ",".join(a.address for a in node.accounts[:2])
        assert main(["deploy", "market", "--rpc", node.rpc_url, "--key", node.keys[0],
                     "--verifier", node.accounts[1].address, "--batch", "2", "--dims", "8",
                     "--bits", "8", "--norm-bound", "100", "--committee", committee,
                     "--fingerprints", ",".join(["11" * 32, "22" * 32])]) == 1  # verifier without code
    err = capsys.readouterr().err
    assert "--key" in err and "needs --committee" in err and "verifier has no code" in err


def test_cli_chain_runs_until_interrupted():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "omniplus", "chain", "--port", str(port), "--json"],
                            stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert info["rpc_url"] == f"http://127.0.0.1:{port}" and len(info["accounts"]) == 10
        assert connect(info["rpc_url"]).eth.chain_id == 31337
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(ChainError):
        connect(f"http://127.0.0.1:{port}", timeout=0.5)
