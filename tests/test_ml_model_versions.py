"""Per-round model versions: a DO refuses a file whose hash, signature, signer, market or version does not
match the task; the true weights appear nowhere in what a DO receives (the model file) or what it sends
(its upload, which the servers receive as shares); and the market's rule beats the MO alone (issue 8),
encrypted within a point of plain."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omniplus.ml.config import MarketConfig
from omniplus.ml.data import load_digits
from omniplus.ml.model import make_model, model_hash, public_params, train
from omniplus.ml.model_versions import ModelRefused, publish_version, read_version
from omniplus.ml.perturb import draw_secrets, layout_for, perturb, segment_weights, stats_layout, stats_upload
from omniplus.ml.simulate import simulate_market
from omniplus.ml.updates import flatten

MO_KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32
MARKET = "0x" + "ab" * 20
ARCH = {"in_features": 64, "hidden": [12], "classes": 10}


def _owner() -> str:
    from omniplus.servers.signing import address_of

    return "0x" + address_of(MO_KEY).hex()


@pytest.fixture(scope="module")
def setting():
    torch.set_num_threads(1)
    ds = load_digits()
    m = make_model(ARCH, 0)
    train(m, list(m.parameters()), ds.x[:200], ds.y[:200], epochs=20, lr=0.05)
    s = draw_secrets(m, layout_for(m, m.names, encrypted=True), ds.x[:200], version=0, seed=3, noise=10.0)
    mh = perturb(m, s)
    lay = stats_layout(m)
    own = stats_upload(mh, lay, ds.x[:200], ds.y[:200], seed=0)
    return ds, m, mh, lay, segment_weights(lay, own)


def _publish(path, mh, w, *, key=MO_KEY, version=0):
    return publish_version(path, key=key, market=MARKET, version=version, arch=ARCH, layers=mh.names,
                           weights=flatten(public_params(mh, mh.names)), upload_weights=w, clip=3.0,
                           head_epochs=5, encrypted=True)


def test_a_do_accepts_the_signed_version_and_refuses_any_other(tmp_path, setting) -> None:
    _, _, mh, _, w = setting
    f = tmp_path / "v0.json"
    doc = _publish(f, mh, w)
    h0 = model_hash(flatten(public_params(mh, mh.names)))
    got = read_version(f, market=MARKET, owner=_owner(), version=0, onchain_hash=h0)
    assert torch.equal(got["weights"], flatten(public_params(mh, mh.names)).to(torch.float32))
    # one weight changed: the file no longer hashes to what the MO signed
    bad = json.loads(f.read_text())
    bad["weights"][0] += 0.5
    (tmp_path / "t1.json").write_text(json.dumps(bad))
    with pytest.raises(ModelRefused, match="signed hash"):
        read_version(tmp_path / "t1.json", market=MARKET, owner=_owner(), version=0)
    # the attacker recomputes the hash too: the signature no longer recovers to the modelOwner
    from omniplus.ml.model_versions import _body_hash

    bad["model_hash"] = "0x" + _body_hash(bad).hex()
    (tmp_path / "t2.json").write_text(json.dumps(bad))
    with pytest.raises(ModelRefused, match="not by the task's modelOwner"):
        read_version(tmp_path / "t2.json", market=MARKET, owner=_owner(), version=0)
    # ... and signs it with its own key: still not the modelOwner
    _publish(tmp_path / "t3.json", mh, w * 2, key=OTHER_KEY)
    with pytest.raises(ModelRefused, match="not by the task's modelOwner"):
        read_version(tmp_path / "t3.json", market=MARKET, owner=_owner(), version=0)
    # a genuine file replayed for another round or another market
    with pytest.raises(ModelRefused, match="version 0, the current round needs 1"):
        read_version(f, market=MARKET, owner=_owner(), version=1)
    with pytest.raises(ModelRefused, match="is for market"):
        read_version(f, market="0x" + "cd" * 20, owner=_owner(), version=0)
    # version 0 must also be what the task's on-chain modelHash commits to
    with pytest.raises(ModelRefused, match="on-chain modelHash"):
        read_version(f, market=MARKET, owner=_owner(), version=0, onchain_hash=b"\1" * 32)
    assert doc["signature"].startswith("0x") and len(doc["signature"]) == 132


def test_true_weights_appear_nowhere_a_do_or_server_looks(tmp_path, setting) -> None:
    ds, m, mh, lay, w = setting
    f = tmp_path / "v0.json"
    _publish(f, mh, w)
    true = flatten(public_params(m, m.names)).to(torch.float32).numpy()
    nonzero = true[np.abs(true) > 1e-6]
    doc = json.loads(f.read_text())
    shown = np.array(doc["weights"] + doc["upload"]["weights"], dtype=np.float32)
    assert not np.isin(nonzero, shown).any()  # the file a DO receives
    up = (stats_upload(mh, lay, ds.x[300:400], ds.y[300:400], seed=1) * w).to(torch.float32).numpy()
    assert not np.isin(nonzero, up).any()  # what the DO shares to the servers (and the sum they open)


def test_market_beats_the_mo_alone_encrypted_within_a_point_of_plain() -> None:
    """Issue 8 item 7, in one process with the devnet run's MO/DO code: small and fast."""
    torch.set_num_threads(1)
    kw = dict(dos=6, rounds=2, malicious=(4,), head_epochs=5, secret_seed=0)
    enc = simulate_market(MarketConfig(encrypted=True, **kw))
    plain = simulate_market(MarketConfig(encrypted=False, **kw))
    assert enc["mo_only_accuracy"] == plain["mo_only_accuracy"]
    assert enc["final_accuracy"] > enc["mo_only_accuracy"] + 0.03
    assert abs(enc["final_accuracy"] - plain["final_accuracy"]) <= 0.01
    assert [r["rejected"] for r in enc["per_round"]] == [0, 1]  # the ×100 DO breaks B
    assert all(r["perturbed_accuracy"] < 0.35 for r in enc["per_round"])


def test_paper_preset_statement() -> None:
    """`omniplus demo --preset paper`: the CNN's upload (5,724 values: 5,571 traded parameters' gradient and
    statistics), N = 4, R = 8, one ×100 DO, a 2^18 circuit that still fits once the contribution scores
    are added; the round plan keeps N_min."""
    from omniplus.circuits.params import CircuitParams
    from omniplus.ml.config import paper_preset
    from omniplus.ml.perturb import stats_layout

    cfg = paper_preset().check()
    m = make_model(cfg.arch, 0)
    assert sum(p.numel() for p in m.parameters()) == 5571 and stats_layout(m).dims == 5724
    assert (cfg.batch, cfg.rounds, cfg.dos, len(cfg.malicious)) == (4, 8, 32, 1)
    n = CircuitParams(cfg.batch, 5724, cfg.bits, cfg.norm_bound).check().expected_constraints()
    # n includes the contribution scores' products t (N·d = 22,896) and the score word: the preset
    # must fit one 2^18 setup with them, with a margin
    margin = 4096
    assert n == 252_234 and 2**17 < n and n + margin <= 2**18, n
