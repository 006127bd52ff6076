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


def paid_by_score(net: Devnet, payees: list[Any]) -> dict[str, int]:
    """What RollupMarket pays each payee: the budget reward·n split by contribution score."""
    from omniplus.prover import contribution

    ordered = sorted(payees, key=lambda d: d.address.lower())  # slot order
    amounts, _ = contribution.split_budget(net.opts.reward_wei * len(ordered),
                                           contribution.scores([d.row for d in ordered]))
    return {d.address: a for d, a in zip(ordered, amounts, strict=True)}


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
    assert s["credited"] == {**paid_by_score(net, honest), bad[0].address: 0}
    # the aggregate on-chain is the sum of the honest updates
    (event,) = net.market.batch_events()
    assert event.tx_hash == s["batch_tx"] and sorted(event.payees) == sorted(s["accepted"])
    # paid by contribution score: the servers' opened scores (the proof's public inputs) are the
    # Python reference's on the same rows, and the budget reward·n is split pro rata
    from omniplus.prover.contribution import scores, split_budget

    row_of = {d.address: d.row for d in honest}
    want_scores = scores([row_of[p] for p in event.payees])
    assert event.scores == want_scores and min(want_scores) > 0
    amounts, dust = split_budget(reward * len(honest), want_scores)
    assert event.amounts == amounts and sum(amounts) + dust == reward * len(honest)
    assert s["credited"] == {**dict(zip(event.payees, amounts, strict=True)), bad[0].address: 0}
    want = [sum(d.row[j] for d in honest) for j in range(net.params.dims)]
    assert unpack_words(net.params, event.words) == want


def test_honest_dos_withdraw_and_the_invalid_one_cannot(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    net, _ = devnet
    w3, market, reward = net.anvil.w3, net.market, net.opts.reward_wei
    honest = [d for d in net.dos if d.valid]
    for do in net.dos:
        if not do.valid:
            with pytest.raises(ChainError, match="NothingToWithdraw"):
                market.withdraw(do.key)
            continue
        before, owed = w3.eth.get_balance(do.address), market.credit(do.address)
        assert 0 < owed < 3 * reward  # a pro-rata share of the batch budget (issue 12)
        receipt = market.withdraw(do.key)
        fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert w3.eth.get_balance(do.address) == before + paid_by_score(net, honest)[do.address] - fee
        assert market.credit(do.address) == 0
    acc = market.accounts()
    assert acc["totalWithdrawn"] == acc["totalCredited"] == sum(paid_by_score(net, honest).values())
    assert 3 * reward - 3 < acc["totalCredited"] <= 3 * reward
    assert acc["balance"] == acc["deposit"] - acc["totalWithdrawn"]


def test_servers_told_the_dos_their_outcome(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    from omniplus.servers.client import TaskRef, status

    net, s = devnet
    task = TaskRef.parse(net.market.address, net.anvil.chain_id)
    for j, (public, _) in enumerate(net.ports, start=1):
        for do in net.dos:
            st = status(f"127.0.0.1:{public}", j, task, do.key, net.pins)
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
                     "--key", do.key, "--rpc", net.anvil.rpc_url])
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        chain = out["chain"]
        if do.valid:
            assert {r["state"] for r in out["servers"]} == {"batched"}
            assert chain["included_in_batch"] == s["batch_index"] and chain["batch_tx"] == s["batch_tx"]
            assert chain["withdrawn_wei"] == chain["paid_wei"] > 0 and chain["credit_wei"] == 0
        else:
            assert {r["reason"] for r in out["servers"]} == {REASON_INVALID}
            assert chain == {"included_in_batch": None, "batch_tx": None, "score": None, "paid_wei": 0,
                             "credit_wei": 0, "withdrawn_wei": 0}


# --------------------------------------------------------------- issue 9 / issue 10: the attacks
def _coordinator(net: Devnet) -> Any:
    """An in-process coordinator on the devnet's config (it runs the canonical check at init)."""
    from omniplus.servers.coordinator import Coordinator, load_coordinator_config

    return Coordinator(load_coordinator_config(net.coordinator_config), log=lambda *a, **k: None)


def test_chosen_subset_attack_is_refused_by_every_server(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    """A curious coordinator tries to open aggregates that would reveal single updates: {A} alone,
    a subset of the opened batch at its index, an already-batched DO in a new batch, a rejected DO.
    Every real daemon refuses before a round starts, and nothing new is opened or signed."""
    import grpc

    net, s = devnet
    c = _coordinator(net)
    honest = sorted((d for d in net.dos if d.valid), key=lambda d: d.address.lower())
    bad = next(d for d in net.dos if not d.valid)
    addr = [bytes.fromhex(d.address[2:]) for d in honest]
    batched = [bytes.fromhex(p[2:]) for p in net.market.batch_events()[0].payees]
    attempts = {
        "{A} alone at the next index": (1, addr[:1], "below N_min"),
        "{A,B} at the next index: A and B are in the opened aggregate of batch 0": (1, addr[:2], "already in"),
        "{A,B} at index 0: a subset of the agreed set": (0, addr[:2], "identical set"),
        "{B} alone at index 0": (0, addr[1:2], "below N_min"),
        "{rejected DO, A}": (1, [bytes.fromhex(bad.address[2:]), addr[0]], "already in"),
    }
    assert sorted(batched) != sorted(addr[:2])
    for what, (index, dos, why) in attempts.items():
        for j in range(1, net.opts.servers + 1):
            with pytest.raises(grpc.RpcError) as err:
                c.control.start_batch(j, f"attack-{index}-{j}-{len(dos)}", index, dos, {})
            assert err.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
            assert why in (err.value.details() or ""), (what, j, err.value.details())
    c.close()
    for j in range(1, net.opts.servers + 1):
        assert "round_started" not in net.server_log(j).split("batch_proved")[-1]  # no round after the batch
    assert net.market.batches_submitted() == 1


def test_stale_update_is_refused(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    """After batch 0 is opened, an update signed for model version 0 can never be batched: every
    server refuses it at submission, nothing stored."""
    from omniplus.servers.client import TaskRef, submit_block
    from omniplus.servers.data_owner import update_block

    net, _ = devnet
    late = net.anvil.accounts[net.opts.dos + 1]  # an account no DO uses (the coordinator's tx key)
    net.market.register(late.key)
    outs = submit_block(late.key, TaskRef.parse(net.market.address, net.anvil.chain_id),
                        [f"127.0.0.1:{p[0]}" for p in net.ports], list(net.layout.slot_wires[0]),
                        update_block(net.setup, net.layout, net.dos[0].row)[1], net.pins,
                        t=1, model_version=0)
    assert [o.accepted for o in outs] == [False] * 3
    assert all(o.code == "FAILED_PRECONDITION" and "stale update" in o.message for o in outs)


def test_every_party_refuses_a_non_canonical_task(devnet: tuple[Devnet, dict[str, Any]], tmp_path) -> None:
    """Issue 9, attack 3: a market with a verifier of the MO's choice, a market that is not the
    canonical RollupMarket, or mismatched parameters / committee: the DO client, the coordinator
    and the servers (at start) each refuse with one line, before sharing anything."""
    import dataclasses
    import subprocess

    import tomli_w

    from omniplus.contracts.canonical import NonCanonicalTask
    from omniplus.contracts.chain import deploy
    from omniplus.contracts.rollup import Committee, RollupMarket, TaskParams
    from omniplus.contracts.solc import market_artifacts
    from omniplus.servers.client import check_task_before_sharing
    from omniplus.servers.coordinator import Coordinator, load_coordinator_config

    net, _ = devnet
    w3, mo = net.anvil.w3, net.anvil.keys[0]
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 10**6
    base = TaskParams.from_circuit(net.params, reward=1, batches=1, deadline=deadline)
    honest_v = net.market.contract.functions.verifier().call()
    fake_v = deploy(w3, mo, market_artifacts()["Relayer"]).address  # "verifier" of the MO's choice
    committee = net.committee()
    other_committee = Committee(committee.members[::-1], committee.fingerprints[::-1], committee.threshold)
    markets = {
        "verifier": RollupMarket.deploy(w3, mo, fake_v, base, committee=committee).address,
        "canonical RollupMarket": deploy(w3, mo, market_artifacts()["Relayer"]).address,
        "batchSize (N)": RollupMarket.deploy(w3, mo, honest_v, dataclasses.replace(base, batch=base.batch + 1),
                                             committee=committee).address,
        "minBatch (N_min)": RollupMarket.deploy(w3, mo, honest_v, dataclasses.replace(base, min_batch=3),
                                                committee=committee).address,
        "committee": RollupMarket.deploy(w3, mo, honest_v, base, committee=other_committee).address,
    }
    import tomllib

    for what, address in markets.items():
        # the DO client (the committee/N_min mismatch is caught by servers and coordinator, who know them)
        if what in ("verifier", "canonical RollupMarket", "batchSize (N)"):
            with pytest.raises(NonCanonicalTask, match=what.split(" ")[0]):
                check_task_before_sharing(w3, address, net.setup, net.opts.servers, net.opts.threshold)
        # the coordinator
        data = tomllib.loads(net.coordinator_config.read_text())
        data["task"]["market"] = address
        cpath = net.root / f"coordinator-bad-{len(what)}.toml"  # paths in it are relative to the devnet root
        cpath.write_text(tomli_w.dumps(data))
        with pytest.raises(NonCanonicalTask, match=what.split(" ")[0]):
            Coordinator(load_coordinator_config(cpath), log=lambda *a, **k: None)
    # a real server process, started on the bad-verifier market, exits with one line and binds nothing
    data = tomllib.loads(net.server_configs[0].read_text())
    data["task"]["market"] = markets["verifier"]
    data["storage"] = str(tmp_path / "bad-server-state")
    spath = net.root / "server-bad.toml"
    spath.write_text(tomli_w.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "omniplus", "server", "--config", str(spath)],
                          capture_output=True, text=True, timeout=120, cwd=net.root)
    assert proc.returncode != 0
    assert "is not the Groth16Verifier exported from this setup" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_batch_was_proven_with_the_dos_point_shares(devnet: tuple[Devnet, dict[str, Any]]) -> None:
    """The DOs sent point shares (the default): the servers' first proof used them and verified."""
    net, s = devnet
    assert net.opts.point_shares
    (attempt,) = s["proof_attempts"]
    assert attempt["point_shares"] == {"fast": True, "refused": {}}


@pytest.fixture(scope="module")
def devnet_bad_points(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Devnet, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("devnet-bad-points")
    net = Devnet(root, DevnetOptions(servers=3, dos=3, invalid=0, seed=5, bad_points=1),
                 progress=lambda m: print(m, file=sys.stderr))
    try:
        net.start()
        net.submit_dos()
        net.run_coordinator(timeout=300)
        yield net, net.summary()
    finally:
        net.stop()


def test_a_do_with_wrong_point_shares_is_named_and_its_batch_still_paid(devnet_bad_points) -> None:
    """DO 0 shares its update as wires but the zero update's points: the servers' fast proof fails
    their local verification, blame names DO 0, and the same batch is proven from the wire shares:
    verified by snarkjs and the contract, every DO credited (DO 0's update was valid)."""
    from omniplus.prover.mpc.point_shares import REASON_WRONG_POINTS

    net, s = devnet_bad_points
    liar = net.dos[0]
    (attempt,) = s["proof_attempts"]
    assert attempt["point_shares"]["fast"] is False
    assert {a.lower(): why for a, why in attempt["point_shares"]["refused"].items()} == {
        liar.address.lower(): REASON_WRONG_POINTS}
    assert s["proof_verified_by_snarkjs"] is True and s["batch_tx"]
    assert s["credited"] == paid_by_score(net, net.dos)
    (event,) = net.market.batch_events()
    from omniplus.prover.contribution import scores, split_budget

    row_of = {d.address: d.row for d in net.dos}
    amounts, _dust = split_budget(net.opts.reward_wei * len(net.dos), scores([row_of[p] for p in event.payees]))
    assert s["credited"] == dict(zip(event.payees, amounts, strict=True)) and min(amounts) > 0
    want = [sum(d.row[j] for d in net.dos) for j in range(net.params.dims)]
    assert unpack_words(net.params, event.words) == want
