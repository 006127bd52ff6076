"""The market end to end on a real devnet (anvil, 3 server processes over TLS, coordinator): one
round, a tiny model, 2 honest DOs and one ×100 attacker that the servers reject and that is never
paid; the MO's aggregate read from the chain equals the sum of the accepted quantised updates.
And a DO not registered for the task gets a clear error before sending anything."""

from __future__ import annotations

import pytest
import torch

from omniplus.contracts.canonical import NonCanonicalTask
from omniplus.devnet import DevnetOptions
from omniplus.market_run import MarketNet, run_market
from omniplus.ml.config import MarketConfig
from omniplus.ml.public_model import current_public, read_aggregates
from omniplus.servers.data_owner import Destination, NotRegistered, require_registered, submit_update

# The same (N, d, k, B) as the CLI/demo's small statement, so the cached setup is shared.
TINY = dict(batch=4, dims=32, bits=8, norm_bound=32768, hidden=(2,), public=("fc2",))


# The market's rule on the MLP 64→2→10: an upload of 166 values (130 body + 36 head statistics).
MARKET_TINY = dict(batch=3, bits=12, norm_bound=10**7, hidden=(2,), mo_pre_epochs=5, head_epochs=3)


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_one_round_attacker_rejected_and_unpaid(tmp_path, encrypted) -> None:
    """One real batch: the MO's recovery from the on-chain aggregate equals the plaintext sum of the paid
    DOs' statistics on the true model within the stated quantisation bound (encrypted and plain)."""
    cfg = MarketConfig(dos=3, malicious=(2,), rounds=1, plain_gas=False, encrypted=encrypted, secret_seed=1,
                       **MARKET_TINY)
    s = run_market(cfg, tmp_path, progress=print)
    assert s["rounds"] == 1 and s["mode"] == ("encrypted" if encrypted else "plain")
    r0 = s["per_round"][0]
    rc = r0["recovery"]
    assert rc["within_bound"], rc
    assert 0 < rc["max_error"]  # quantisation did change something: the bound is not vacuous
    assert s["upload"]["values"] == 166 and s["upload"]["extra_values_encrypted_vs_plain"] == 0
    if encrypted:
        assert s["perturbed_accuracy"] is not None and s["perturbed_accuracy"] < 0.35
    honest = [d["address"] for d in s["dos"] if d["attack"] is None]
    attacker = next(d for d in s["dos"] if d["attack"])
    assert sorted(a.lower() for a in r0["payees"]) == sorted(a.lower() for a in honest)
    assert r0["aggregate_is_sum_of_paid_updates"]
    assert attacker["paid_wei"] == 0 and "bound" in (attacker["rejected"] or "")
    assert list(s["rejected"]) == [attacker["address"]]
    # paid by proven score: floor(2·reward·s_i/Σs) each, the dust (< 2 wei) stays for the MO
    assert all(s["paid"][a] > 0 and d["score"] > 0 for a in honest for d in s["dos"] if d["address"] == a)
    assert 2 * cfg.reward_wei - 2 < s["accounts"]["totalCredited"] <= 2 * cfg.reward_wei
    assert 200_000 < s["rollup_gas_per_batch"] < 400_000
    assert 0 <= s["final_accuracy"] <= 1


def test_a_free_rider_is_screened_out_and_paid_nothing(tmp_path) -> None:
    """DO 1 uploads the zero update (in bound, so validation accepts it): the servers' contribution
    screening drops it (score 0 ≤ minScore 0) before the aggregate; the two honest DOs are paid by
    their proven scores and the summary shows score and payment per DO."""
    from omniplus.market_run import format_summary
    from omniplus.ml.config import MarketConfig as Cfg
    from omniplus.prover.mpc.screening import is_low_score

    cfg = Cfg(dos=3, malicious=(), free_riders=(1,), rounds=1, plain_gas=False, encrypted=False, secret_seed=1,
              **MARKET_TINY)
    s = run_market(cfg, tmp_path, progress=print)
    rider = next(d for d in s["dos"] if d["attack"] == "zero")
    honest = [d for d in s["dos"] if d["attack"] is None]
    assert rider["paid_wei"] == 0 and rider["score"] == 0 and is_low_score(rider["rejected"] or "")
    assert sorted(a.lower() for a in s["per_round"][0]["payees"]) == sorted(d["address"].lower() for d in honest)
    assert all(d["score"] > 0 and d["paid_wei"] > 0 for d in honest)
    assert s["per_round"][0]["aggregate_is_sum_of_paid_updates"]
    text = format_summary(s)
    assert "FREE-RIDER" in text and "score 0, 0 wei" in text


def test_unregistered_do_refused(tmp_path) -> None:
    cfg = MarketConfig(dos=2, malicious=(), rounds=1, **TINY)
    net = MarketNet(tmp_path, DevnetOptions(dos=2, invalid=0, batch=4, dims=32, bits=8, norm_bound=32768))
    try:
        net._start_anvil()
        net._load_setup()
        net._deploy()
        do = net.anvil.accounts[1]
        with pytest.raises(NotRegistered, match="not registered for task"):
            require_registered(net.market, do.address)
        with pytest.raises(NotRegistered):  # nothing is shared or sent (no servers are even running)
            submit_update(key=do.key, market=net.market, setup=net.setup, layout=net.layout, row=[0] * 32,
                          to=Destination(servers=["127.0.0.1:1"] * 3))
        with pytest.raises(NonCanonicalTask, match="committee has 3 servers"):  # a DO sharing to 1 server
            submit_update(key=do.key, market=net.market, setup=net.setup, layout=net.layout, row=[0] * 32,
                          to=Destination(servers=["127.0.0.1:1"]))
        net.market.register(do.key)
        require_registered(net.market, do.address)
        spec = cfg.spec(30)
        w0 = torch.zeros(30)
        assert torch.equal(current_public(w0, net.market, net.params, spec), w0)  # no batch yet
        assert read_aggregates(net.market, net.params) == []
    finally:
        net.stop()


def test_cli_mo_pretrain_and_do_train(tmp_path, capsys) -> None:
    """`omniplus mo pretrain` publishes; `omniplus do train` checks the hash against the chain."""
    import json

    from omniplus.cli import main
    from omniplus.core.errors import InputError

    assert main(["mo", "pretrain", "--out", str(tmp_path / "mo"), "--hidden", "2", "--public", "fc2"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["public_size"] == 30 and 0 <= info["mo_only_accuracy"] <= 1
    net = MarketNet(tmp_path / "net", DevnetOptions(dos=1, invalid=0, batch=4, dims=32, bits=8, norm_bound=32768))
    net.model_hash_ = bytes.fromhex(info["model_hash"][2:])
    try:
        net._start_anvil()
        net._load_setup()
        net._deploy()
        argv = ["do", "train", "--public", info["public_model"], "--market", net.market.address, "--rpc",
                net.anvil.rpc_url, "--part", "0", "--of", "4", "--epochs", "1", "--out", str(tmp_path / "u.json")]
        assert main(argv) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["sq_norm"] <= out["bound"] == 32768
        assert len(json.loads((tmp_path / "u.json").read_text())["q"]) == 32  # the task's d (zero-padded)
        doc = json.loads(open(info["public_model"]).read())
        doc["weights"][0] += 0.5
        (tmp_path / "tampered.json").write_text(json.dumps(doc))
        argv[argv.index("--public") + 1] = str(tmp_path / "tampered.json")
        with pytest.raises(InputError, match="modelHash"):
            from omniplus.cli import build_parser
            from omniplus.cli.do import run_train

            run_train(build_parser().parse_args(argv))
        assert main(argv) == 1  # the CLI turns it into a one-line error
    finally:
        net.stop()
