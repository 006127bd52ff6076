"""End to end on loopback with TLS (issue 4's "done when"): 3 server processes, 4 DOs of which one
is out of bound → the servers reject it on shares → one joint batch proof → verified by
RollupMarket on anvil → the 3 honest DOs are credited and withdraw. Everything is real: anvil,
`omniplus server` processes over mutual TLS, the coordinator process, Groth16 proofs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omniplus.core.errors import ChainError
from omniplus.devnet import Devnet, DevnetOptions
from omniplus.prover.binding import unpack_words
from omniplus.prover.mpc.validation import REASON_INVALID


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Devnet, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("devnet")
    net = Devnet(
        root, DevnetOptions(servers=3, dos=4, invalid=1, seed=4), progress=lambda m: print(m, file=sys.stderr)
    )
    try:
        net.start()
        net.submit_dos()
        net.run_coordinator(timeout=300)
        yield net, net.summary()
    finally:
        net.stop()


def test_one_batch_proof_pays_the_honest_dos(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    net, s = devnet
    honest = [d for d in net.dos if d.valid]
    bad = [d for d in net.dos if not d.valid]
    assert len(honest) == 3 and len(bad) == 1
    assert sorted(s["accepted"]) == sorted(d.address for d in honest)
    assert s["rejected"] == {bad[0].address: REASON_INVALID}
    assert s["proof_verified_by_snarkjs"] is True
    assert s["batch_tx"] and 200_000 < s["verify_gas"] < 450_000
    reward = net.opts.reward_wei
    assert s["credited"] == {**{d.address: reward for d in honest}, bad[0].address: 0}
    # the aggregate on-chain is the sum of the honest updates
    (event,) = net.market.batch_events()
    assert event.tx_hash == s["batch_tx"] and sorted(event.payees) == sorted(s["accepted"])
    want = [sum(d.row[j] for d in honest) for j in range(net.params.dims)]
    assert unpack_words(net.params, event.words) == want


def test_honest_dos_withdraw_and_the_invalid_one_cannot(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    net, _ = devnet
    w3, market, reward = net.anvil.w3, net.market, net.opts.reward_wei
    for do in net.dos:
        if not do.valid:
            with pytest.raises(ChainError, match="NothingToWithdraw"):
                market.withdraw(do.key)
            continue
        before = w3.eth.get_balance(do.address)
        receipt = market.withdraw(do.key)
        fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert w3.eth.get_balance(do.address) == before + reward - fee
        assert market.credit(do.address) == 0
    acc = market.accounts()
    assert acc["totalWithdrawn"] == acc["totalCredited"] == 3 * reward
    assert acc["balance"] == acc["deposit"] - acc["totalWithdrawn"]


def test_servers_told_the_dos_their_outcome(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    from omniplus.servers.client import TaskRef, status

    net, s = devnet
    task = TaskRef.parse(net.market.address, net.anvil.chain_id)
    ca = (net.certs / "ca.pem").read_bytes()
    for j, (public, _) in enumerate(net.ports, start=1):
        for do in net.dos:
            st = status(f"127.0.0.1:{public}", j, task, bytes.fromhex(do.address[2:]), ca)
            if do.valid:
                assert (st.state, st.batch_index) == ("batched", s["batch_index"])
            else:
                assert (st.state, st.reason) == ("invalid", REASON_INVALID)
    # no round failed on any server (a clean run: no retries were needed)
    for j in range(1, 4):
        assert "round_failed" not in net.server_log(j)
    assert Path(s["workdir"]).exists()


def test_submit_status_shows_the_outcome_from_servers_and_chain(devnet, capsys) -> None:
    """`omniplus do submit --status --rpc`: what each server says plus the batch and credit on-chain.
    Runs after the withdraw test, so honest DOs show their credit paid out."""
    import json

    from omniplus.cli import main

    net, s = devnet
    servers = ",".join(f"127.0.0.1:{public}" for public, _ in net.ports)
    for do in net.dos:
        code = main(["do", "submit", "--status", "--json", "--servers", servers, "--market", net.market.address,
                     "--ca", str(net.certs / "ca.pem"),
                     "--key", do.key, "--rpc", net.anvil.rpc_url])
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        chain = out["chain"]
        if do.valid:
            assert {r["state"] for r in out["servers"]} == {"batched"}
            assert chain["included_in_batch"] == s["batch_index"] and chain["batch_tx"] == s["batch_tx"]
            assert chain["withdrawn_wei"] == net.opts.reward_wei and chain["credit_wei"] == 0
        else:
            assert {r["reason"] for r in out["servers"]} == {REASON_INVALID}
            assert chain == {"included_in_batch": None, "batch_tx": None, "credit_wei": 0, "withdrawn_wei": 0}
