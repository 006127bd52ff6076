"""Contribution pay on a real devnet (issue 12): anvil, 3 `omniplus server` processes over TLS, the
coordinator process, real Groth16 proofs. N = 4, N_min = 2; two honest DOs, a free-rider (zero
update) and a sign-flipper (an honest update negated). The servers screen the four on shares
before opening anything: the flipper, then the free-rider, score ≤ minScore = 0 and are dropped
with that verdict; the aggregate on-chain is the honest two's sum and only they are paid."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from omniplus.devnet import Devnet, DevnetOptions
from omniplus.prover import contribution
from omniplus.prover.binding import unpack_words
from omniplus.prover.mpc.screening import is_low_score


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Devnet, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("devnet-contribution")
    opts = DevnetOptions(servers=3, dos=4, invalid=0, free_riders=1, flippers=1, batch=4, min_batch=2, seed=12)
    net = Devnet(root, opts, progress=lambda m: print(m, file=sys.stderr))
    try:
        net.start()
        net.submit_dos()
        net.run_coordinator(timeout=300)
        yield net, net.summary()
    finally:
        net.stop()


def kinds(net: Devnet) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for d in net.dos:
        out.setdefault(d.kind, []).append(d)
    return out


def test_only_the_honest_dos_are_in_the_aggregate_and_paid(devnet) -> None:
    net, s = devnet
    k = kinds(net)
    honest, attackers = k["honest"], k["free-rider"] + k["sign-flip"]
    assert len(honest) == 2 and len(attackers) == 2
    assert sorted(s["accepted"]) == sorted(d.address for d in honest)
    (event,) = net.market.batch_events()
    assert sorted(event.payees) == sorted(d.address for d in honest)
    assert unpack_words(net.params, event.words) == [sum(d.row[j] for d in honest) for j in range(net.params.dims)]
    for d in attackers:
        assert is_low_score(s["rejected"][d.address]) and s["credited"][d.address] == 0
    # paid by proven score: the budget reward·n split floor(budget·s_i/Σs), as contribution.split_budget
    assert [a.lower() for a in event.payees] == sorted(d.address.lower() for d in honest)  # slot order
    assert event.scores == contribution.scores([by.row for by in sorted(honest, key=lambda d: d.address.lower())])
    amounts, dust = contribution.split_budget(net.opts.reward_wei * len(honest), event.scores)
    assert event.amounts == amounts and 0 <= dust < len(honest)
    assert {p.lower(): a for p, a in zip(event.payees, event.amounts, strict=True)} == {
        d.address.lower(): s["credited"][d.address] for d in honest}
    assert all(s["credited"][d.address] > 0 for d in honest)


def test_the_servers_scores_are_the_reference_scores(devnet) -> None:
    net, s = devnet
    by_addr = {d.address: d for d in net.dos}
    ordered = sorted(net.dos, key=lambda d: d.address.lower())  # the slot order: sorted DO ids
    want = contribution.select([d.row for d in ordered], min_score=0, n_min=2)
    assert want.ok(2)
    assert sorted(ordered[i].address for i in want.kept) == sorted(s["accepted"])
    kept_ref = dict(zip((ordered[i].address for i in want.kept), want.final, strict=True))
    dropped_ref = {ordered[i].address: sc for i, sc in want.dropped}
    assert {a: v for a, v in s["scores"].items() if a in kept_ref} == kept_ref
    assert {a: v for a, v in s["scores"].items() if a in dropped_ref} == dropped_ref
    assert dropped_ref[kinds(net)["free-rider"][0].address] == 0
    assert dropped_ref[kinds(net)["sign-flip"][0].address] < 0
    assert all(v > 0 for v in kept_ref.values())
    # the in-circuit scores (public inputs of the proof the contract verified) are the servers' scores
    (event,) = net.market.batch_events()
    assert {by_addr[next(a for a in by_addr if a.lower() == p.lower())].address: sc
            for p, sc in zip(event.payees, event.scores, strict=True)} == kept_ref


def test_status_tells_each_do_its_score_and_verdict(devnet, capsys) -> None:
    from omniplus.cli import main

    net, s = devnet
    servers = ",".join(f"127.0.0.1:{public}" for public, _ in net.ports)
    for do in net.dos:
        code = main(["do", "submit", "--status", "--json", "--servers", servers, "--market", net.market.address,
                     "--key", do.key, "--rpc", net.anvil.rpc_url])
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        assert out["score"] == s["scores"][do.address]
        if do.kind == "honest":
            assert {r["state"] for r in out["servers"]} == {"batched"}
            assert out["chain"]["credit_wei"] > 0 and out["payment_wei"] == out["chain"]["paid_wei"] > 0
            assert out["chain"]["score"] == out["score"]
        else:
            assert {r["state"] for r in out["servers"]} == {"invalid"}
            assert all(is_low_score(r["reason"]) and f"score {out['score']} " in r["reason"] for r in out["servers"])
            assert out["chain"]["included_in_batch"] is None and out["chain"]["credit_wei"] == 0
            assert out["payment_wei"] == 0
        code = main(["do", "submit", "--status", "--servers", servers, "--market", net.market.address,
                     "--key", do.key, "--fingerprints", ",".join("0x" + net.pins[j].hex() for j in sorted(net.pins))])
        text = capsys.readouterr().out
        assert code == 0 and f"score {out['score']}" in text
