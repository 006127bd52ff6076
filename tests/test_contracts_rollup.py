"""RollupMarket on a real anvil with real Groth16 proofs of the real circuit, checked by the
deployed snarkjs verifier: happy path, rejections, replays (payees, batch, contract/task, chain),
the committee's signatures (issue 9's attacks 1, 2, 4 and 5 as regression tests that now fail for
the attacker), reentrancy on withdraw, MO refund after the deadline, conservation after each."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from omniplus.circuits.params import CircuitParams
from omniplus.contracts.chain import Anvil, deploy, transact
from omniplus.contracts.committee import HALF_N, SECP256K1_N, sign_batch
from omniplus.contracts.rollup import Committee, RollupMarket, TaskParams
from omniplus.contracts.solc import market_artifacts
from omniplus.contracts.verifier import deploy_verifier
from omniplus.core import resources as paths
from omniplus.core.errors import ChainError
from omniplus.core.tools import run_tool
from omniplus.prover.binding import aggregate as column_sums
from omniplus.prover.binding import pack_aggregate, pack_scores, public_signals, unpack_words
from omniplus.prover.contribution import scores
from omniplus.prover.witness import circuit_inputs

PARAMS = CircuitParams(batch=2, dims=30, bits=8, norm_bound=200_000)  # w = 10, c = 25, M = 2
REWARD = 10**15
BATCHES = 2
FAR_DEADLINE = 4_000_000_000
DEPLOYER = 9  # a dedicated key: nonce 0 = verifier, nonce 1 = market on every fresh anvil
SERVER_KEYS = ["0x" + keccak(f"test server {j}".encode()).hex() for j in (1, 2, 3)]
COMMITTEE = Committee(tuple(Account.from_key(k).address for k in SERVER_KEYS),
                      tuple(keccak(f"cert {j}".encode()) for j in (1, 2, 3)), 2)  # n = 3, t = 1: 2 signatures


@dataclass
class Setup:
    dir: Path
    wasm: Path
    zkey: Path
    verifier_sol: Path


def _snarkjs(*args: str | Path, cwd: Path) -> None:
    run_tool([paths.node_tool("snarkjs"), *args], cwd=cwd, what=f"snarkjs {args[0]}", timeout=1200)


def _cli_setup(params: CircuitParams, out: Path) -> Setup:
    """Fallback when prover.trusted_setup is not there: circom2 + the snarkjs CLI (ptau cached)."""
    from omniplus.circuits.build import compile_circuit

    c = compile_circuit(params, out)
    power = max(8, (c.n_constraints + 3 - 1).bit_length())
    ptau = paths.cache_dir() / "ptau" / f"snarkjs_cli_{power}.ptau"
    if not ptau.exists():
        ptau.parent.mkdir(parents=True, exist_ok=True)
        _snarkjs("powersoftau", "new", "bn128", str(power), "p0.ptau", cwd=out)
        _snarkjs("powersoftau", "contribute", "p0.ptau", "p1.ptau", "--name=test", "-e=omniplus test",
                 cwd=out)
        _snarkjs("powersoftau", "prepare", "phase2", "p1.ptau", "p.ptau", cwd=out)
        os.replace(out / "p.ptau", ptau)
    _snarkjs("groth16", "setup", c.r1cs, ptau, "c0.zkey", cwd=out)
    _snarkjs("zkey", "contribute", "c0.zkey", "circuit_final.zkey", "--name=test", "-e=zkey entropy", cwd=out)
    _snarkjs("zkey", "export", "verificationkey", "circuit_final.zkey", "verification_key.json", cwd=out)
    _snarkjs("zkey", "export", "solidityverifier", "circuit_final.zkey", "Groth16Verifier.sol", cwd=out)
    return Setup(out, c.wasm, out / "circuit_final.zkey", out / "Groth16Verifier.sol")


@pytest.fixture(scope="session")
def setup(tmp_path_factory) -> Setup:
    out = tmp_path_factory.mktemp("rollup_setup")
    try:
        from omniplus.prover.trusted_setup import run_setup
    except ImportError:
        return _cli_setup(PARAMS, out)
    s = run_setup(PARAMS, out)
    return Setup(Path(out), Path(s.wasm), Path(s.zkey), Path(out) / "Groth16Verifier.sol")


def prove(setup: Setup, market: RollupMarket, payees: list[str], rows: list[list[int]],
          batch_index: int, tag: str) -> tuple[dict, list[int]]:
    """A real proof for `rows` bound to (chain, market, task, batch_index, payees) -> (proof.json, words)."""
    ctx = market.binding_context(payees, batch_index=batch_index)
    words = pack_aggregate(PARAMS, column_sums(rows))
    signals = public_signals(ctx, words, pack_scores(PARAMS, scores(rows)))
    work = setup.dir / f"proof_{tag}"
    work.mkdir(exist_ok=True)
    (work / "input.json").write_text(json.dumps(circuit_inputs(PARAMS, rows, signals)))
    _snarkjs("wtns", "calculate", setup.wasm, "input.json", "w.wtns", cwd=work)
    _snarkjs("groth16", "prove", setup.zkey, "w.wtns", "proof.json", "public.json", cwd=work)
    public = [int(x) for x in json.loads((work / "public.json").read_text())]
    assert public == signals
    proof = json.loads((work / "proof.json").read_text())
    PROVEN[proof_key(proof)] = scores(rows)
    return proof, words


PROVEN: dict[str, list[int]] = {}  # proof → the scores it was made for (the servers' opened scores)


def proof_key(proof: dict) -> str:
    return json.dumps(proof["pi_a"])


def scores_of(proof: dict, payees: list[str]) -> list[int]:
    """The scores a proof was made for; a made-up proof gets positive placeholder scores."""
    return PROVEN.get(proof_key(proof), [1] * len(payees))


def sigs(m: RollupMarket, proof: dict, words: list[int], payees: list[str], keys=SERVER_KEYS[:2],
         batch_index: int | None = None, scores: list[int] | None = None) -> list[bytes]:
    """Committee signatures over the batch digest (what honest servers send after checking)."""
    digest = m.digest(proof, words, payees, scores_of(proof, payees) if scores is None else scores, batch_index)
    return [sign_batch(digest, k) for k in keys]


def submit(m: RollupMarket, key: str, proof: dict, words: list[int], payees: list[str],
           scores: list[int] | None = None, **kw) -> dict:
    """A relay with two valid committee signatures (so only the proof, payees and scores are tested)."""
    sc = scores_of(proof, payees) if scores is None else scores
    return m.submit_batch(key, proof, words, payees, sc, sigs(m, proof, words, payees, scores=sc), **kw)


def conserved(m: RollupMarket) -> None:
    """Deposit = credits + refund once finished; nobody took more than credited; balance = what is owed."""
    acc = m.accounts()
    assert acc["totalWithdrawn"] <= acc["totalCredited"] <= acc["deposit"]
    assert acc["balance"] == acc["deposit"] - acc["totalWithdrawn"] - acc["refunded"]
    if m.finished():
        assert acc["deposit"] == acc["totalCredited"] + acc["refunded"]


def task(deadline: int = FAR_DEADLINE, batches: int = BATCHES) -> TaskParams:
    return TaskParams.from_circuit(PARAMS, reward=REWARD, batches=batches, deadline=deadline, min_batch=2)


def fresh_chain_market(node: Anvil, setup: Setup, whitelist: tuple[str, ...] = ()) -> RollupMarket:
    """Verifier then market from the dedicated deployer: the same addresses on every fresh anvil."""
    key = node.keys[DEPLOYER]
    verifier = deploy_verifier(node.w3, key, setup.verifier_sol)
    return RollupMarket.deploy(node.w3, key, verifier.address, task(), committee=COMMITTEE,
                               model_hash=b"\x11" * 32, model_uri="ipfs://model", whitelist=whitelist)


ROWS0 = [[(7 * i + 3 * j) % 200 - 100 for j in range(PARAMS.dims)] for i in range(2)]
ROWS1 = [[(5 * j) % 31 - 15 for j in range(PARAMS.dims)], [(3 * j) % 17 - 8 for j in range(PARAMS.dims)]]
DUMMY = {"pi_a": ["1", "2", "1"], "pi_b": [["1", "2"], ["3", "4"], ["1", "0"]], "pi_c": ["1", "2", "1"]}


@pytest.fixture(scope="module")
def node():
    with Anvil(accounts=12) as a:
        yield a


@pytest.fixture(scope="module")
def batch_fixture(node, setup):
    """Market M1 on `node` (first deployments of the deployer), its DOs and two real proofs."""
    mo = node.keys[DEPLOYER]
    attacker_art = market_artifacts()["ReentrancyAttacker"]
    m = fresh_chain_market(node, setup)
    attacker = deploy(node.w3, node.keys[0], attacker_art, m.address, 3)
    a, c, e = node.accounts[1], node.accounts[3], node.accounts[4]
    m.register(a.key)
    m.register(c.key)
    m.register(e.key)
    attacker_reg = attacker.functions.act(m.contract.encode_abi("register", args=[]))
    transact(node.w3, node.keys[0], attacker_reg)
    p0 = prove(setup, m, [a.address, attacker.address], ROWS0, 0, "b0")
    p1 = prove(setup, m, [c.address, e.address], ROWS1, 1, "b1")
    return {"m": m, "mo": mo, "a": a, "c": c, "e": e, "attacker": attacker, "p0": p0, "p1": p1}


def test_binding_matches_prover(batch_fixture):
    m, a = batch_fixture["m"], batch_fixture["a"]
    words = pack_aggregate(PARAMS, column_sums(ROWS0))
    payees = [a.address, batch_fixture["attacker"].address]
    ctx = m.binding_context(payees)
    sc = scores(ROWS0)
    assert m.public_inputs(words, payees, sc) == public_signals(ctx, words, pack_scores(PARAMS, sc))
    assert m.contract.functions.packScores([-5, 7]).call() == pack_scores(PARAMS, [-5, 7])
    assert m.contract.functions.packScores([-5]).call() == pack_scores(PARAMS, [-5])  # empty slot: score 0
    assert (m.contract.functions.scoreOffset().call(), m.contract.functions.scoreBits().call(),
            m.contract.functions.nScoreWords().call(), m.min_score()) == \
        (PARAMS.score_offset, PARAMS.score_bits, PARAMS.n_score_words, 0)
    assert m.committee().same_as(COMMITTEE)
    proof = batch_fixture["p0"][0]
    assert m.contract.functions.batchDigest(*m.submit_call(proof, words, payees, sc, []).args[:6]).call() == \
        m.digest(proof, words, payees, sc)


def test_happy_path_rejections_and_replays(node, setup, batch_fixture):
    f = batch_fixture
    m, mo, a, c, e, attacker = f["m"], f["mo"], f["a"], f["c"], f["e"], f["attacker"]
    (proof0, words0), (proof1, words1) = f["p0"], f["p1"]
    payees0 = [a.address, attacker.address]
    payees1 = [c.address, e.address]
    relayer = node.keys[5]  # anyone may relay: signatures and proof bind payees and aggregate

    # Even with valid committee signatures over exactly what is posted, the proof must match.
    with pytest.raises(ChainError, match="InvalidProof"):  # proof made for batch 1, now is batch 0
        submit(m, relayer, proof1, words1, payees1)
    with pytest.raises(ChainError, match="InvalidProof"):  # other payees
        submit(m, relayer, proof0, words0, [a.address, c.address])
    with pytest.raises(ChainError, match="InvalidProof"):  # payees reordered
        submit(m, relayer, proof0, words0, payees0[::-1])
    for j in range(PARAMS.n_words):  # another aggregate: every word is a public input (no knapsack)
        other = list(words0)
        other[j] += 1
        with pytest.raises(ChainError, match="InvalidProof"):
            submit(m, relayer, proof0, other, payees0)
    bad = dict(proof0, pi_c=proof0["pi_a"])
    with pytest.raises(ChainError, match="InvalidProof"):  # a tampered proof
        submit(m, relayer, bad, words0, payees0)
    # another contract (and task: its deadline differs) with the same DOs registered
    m2 = RollupMarket.deploy(node.w3, mo, m.contract.functions.verifier().call(), task(FAR_DEADLINE - 1),
                             committee=COMMITTEE)
    m2.register(a.key)
    m2.register(c.key)
    proof_a_c, words_ac = prove(setup, m, [a.address, c.address], ROWS0, 0, "b0ac")
    with pytest.raises(ChainError, match="InvalidProof"):
        submit(m2, relayer, proof_a_c, words_ac, [a.address, c.address])
    conserved(m)
    conserved(m2)

    rc = submit(m, relayer, proof0, words0, payees0)
    print(f"\nsubmitBatch gas, N=2 payees, M={PARAMS.n_words}: {rc['gasUsed']}")
    assert m.batches_submitted() == 1
    assert m.credit(a.address) == REWARD and m.credit(attacker.address) == REWARD
    ev = m.batch_events()[-1]
    assert ev.index == 0 and ev.words == words0 and ev.payees == payees0
    assert unpack_words(PARAMS, ev.words) == column_sums(ROWS0)
    assert ev.commitment == keccak(b"".join(w.to_bytes(32, "big") for w in words0))
    assert m.contract.functions.aggregateCommitments(0).call() == ev.commitment
    conserved(m)

    with pytest.raises(ChainError, match="AlreadyPaid"):  # replay of the same batch
        submit(m, relayer, proof0, words0, payees0)
    with pytest.raises(ChainError, match="NotFinishable"):
        m.finish(mo)
    rc1 = submit(m, relayer, proof1, words1, payees1)
    print(f"submitBatch gas, 2 payees: {rc1['gasUsed']}")
    assert m.batches_submitted() == 2
    with pytest.raises(ChainError, match="AllBatchesDone"):
        m.submit_batch(relayer, DUMMY, words1, [node.accounts[6].address, node.accounts[7].address], [1, 1])
    conserved(m)

    # reentrancy: the attacker's receive() calls withdraw() again; it gets its credit once
    before = node.w3.eth.get_balance(attacker.address)
    transact(node.w3, node.keys[0], attacker.functions.act(m.contract.encode_abi("withdraw", args=[])))
    assert attacker.functions.reentryAttempts().call() == 1
    assert attacker.functions.reentrySuccesses().call() == 0
    assert node.w3.eth.get_balance(attacker.address) == before + REWARD
    assert m.credit(attacker.address) == 0
    with pytest.raises(ChainError, match="NothingToWithdraw"):
        transact(node.w3, node.keys[0], attacker.functions.act(m.contract.encode_abi("withdraw", args=[])))
    for acct in (a, c, e):
        before = node.w3.eth.get_balance(acct.address)
        rc = m.withdraw(acct.key)
        fee = rc["gasUsed"] * rc["effectiveGasPrice"]
        assert node.w3.eth.get_balance(acct.address) == before + REWARD - fee
        with pytest.raises(ChainError, match="NothingToWithdraw"):
            m.withdraw(acct.key)
    conserved(m)

    with pytest.raises(ChainError, match="NotModelOwner"):
        m.finish(a.key)
    m.finish(mo)
    acc = m.accounts()
    assert acc["refunded"] == acc["deposit"] - 4 * REWARD and acc["balance"] == 0
    with pytest.raises(ChainError, match="TaskFinished"):
        m.finish(mo)
    conserved(m)


def test_replay_on_another_chain(setup, batch_fixture):
    """Same deployer, same nonces, same task: only the chain id differs, and the proof fails."""
    m1 = batch_fixture["m"]
    with Anvil(accounts=12, chain_id=31338) as other:
        m = fresh_chain_market(other, setup)
        assert m.address == m1.address and m.task_id == m1.task_id
        a = other.accounts[1]
        m.register(a.key)
        m.register(other.keys[3])
        payees = [a.address, other.accounts[3].address]
        # a proof for m1's context (chain 31337) with payees registered on both chains
        proof, words = prove(setup, m1, payees, ROWS0, 0, "chain")
        with pytest.raises(ChainError, match="InvalidProof"):
            submit(m, other.keys[5], proof, words, payees)
        # the committee's signatures for chain 31337 are not signatures for chain 31338 either
        with pytest.raises(ChainError, match="NotCommittee"):
            m.submit_batch(other.keys[5], proof, words, payees, scores_of(proof, payees),
                           sigs(m1, proof, words, payees, batch_index=0))
        conserved(m)


def test_rejections_before_the_proof(node, setup):
    """Checks on calldata and state that come before verification (a dummy proof is enough)."""
    w3 = node.w3
    mo = node.keys[0]
    v = deploy_verifier(w3, mo, setup.verifier_sol)
    wl = [node.accounts[1].address, node.accounts[2].address]
    m = RollupMarket.deploy(w3, mo, v.address, task(), committee=COMMITTEE, whitelist=wl)
    with pytest.raises(ChainError, match="NotWhitelisted"):
        m.register(node.keys[3])
    m.register(node.keys[1])
    with pytest.raises(ChainError, match="AlreadyRegistered"):
        m.register(node.keys[1])
    m.register(node.keys[2])
    one, two, three = (node.accounts[i].address for i in (1, 2, 3))
    words = [0] * PARAMS.n_words
    cases = [
        ([one, one], words, "DuplicatePayee"),
        ([one, three], words, "UnregisteredPayee"),
        ([], words, "BadPayeeCount"),
        ([one], words, "BadPayeeCount"),  # below N_min = 2: one DO's update alone is never published
        ([one, two, one], words, "BadPayeeCount"),
        ([one, two], words[:-1], "WrongWordCount"),
        ([one, two], words + [0], "WrongWordCount"),
        ([one, two], [0, 1 << 250], "WordTooLarge"),
        ([one, two], [0, R_FIELD_MINUS_1], "WordTooLarge"),
        ([one, two], words, "InvalidProof"),
    ]
    off = PARAMS.score_offset
    scored = [  # contribution scores: one per payee, each above minScore = 0, within ±(N-1)·B
        ([one, two], [5], "WrongScoreCount"),
        ([one, two], [5, 5, 5], "WrongScoreCount"),
        ([one, two], [5, 0], r"LowScore\(1, 0\)"),  # a free-rider (zero update) cannot be paid
        ([one, two], [-3, 5], r"LowScore\(0, -3\)"),  # nor a sign-flipper
        ([one, two], [5, off + 1], "ScoreOutOfRange"),
        ([one, two], [5, off], "InvalidProof"),  # in range: only the proof refuses it
    ]
    for payees, ws, err in cases:
        with pytest.raises(ChainError, match=err):
            submit(m, node.keys[4], DUMMY, ws, payees, simulate_first=False)
        with pytest.raises(ChainError, match="would revert: " + err):  # the relayer never broadcasts it
            submit(m, node.keys[4], DUMMY, ws, payees)
    for payees, sc, err in scored:
        with pytest.raises(ChainError, match=err):
            submit(m, node.keys[4], DUMMY, words, payees, scores=sc, simulate_first=False)
    conserved(m)
    # deployment checks
    with pytest.raises(ChainError, match="DepositTooSmall"):
        RollupMarket.deploy(w3, mo, v.address, task(), committee=COMMITTEE, deposit=task().required_deposit - 1)
    bad = TaskParams(**{**task().__dict__, "n_words": PARAMS.n_words + 1})
    with pytest.raises(ChainError, match="BadParams"):
        RollupMarket.deploy(w3, mo, v.address, bad, committee=COMMITTEE)
    for n_min in (0, 1, PARAMS.batch + 1):
        with pytest.raises(ChainError, match="N_min"):
            RollupMarket.deploy(w3, mo, v.address, TaskParams(**{**task().__dict__, "min_batch": n_min}),
                                committee=COMMITTEE)
    for thr in (0, 1, 4):  # t+1 must be a majority of n = 3 and at most n
        with pytest.raises(ChainError, match="threshold"):
            RollupMarket.deploy(w3, mo, v.address, task(), committee=Committee(COMMITTEE.members,
                                                                              COMMITTEE.fingerprints, thr))
    # t+1 = 2 signatures serve n = 4 = 3t+1 (a named server can be left out), not n = 5
    extra = [Account.create().address for _ in range(2)]
    four = Committee((*COMMITTEE.members, extra[0]), (*COMMITTEE.fingerprints, keccak(b"cert 4")), 2)
    assert RollupMarket.deploy(w3, mo, v.address, task(), committee=four).committee().threshold == 2
    five = Committee((*four.members, extra[1]), (*four.fingerprints, keccak(b"cert 5")), 2)
    with pytest.raises(ChainError, match="3t\\+1"):
        RollupMarket.deploy(w3, mo, v.address, task(), committee=five)
    with pytest.raises(ChainError, match="BadParams"):
        RollupMarket.deploy(w3, mo, node.accounts[7].address, task(), committee=COMMITTEE)  # verifier w/o code


R_FIELD_MINUS_1 = 21888242871839275222246405745257275088548364400416034343698204186575808495616


def test_refund_after_deadline(node, setup):
    w3, mo = node.w3, node.keys[0]
    v = deploy_verifier(w3, mo, setup.verifier_sol)
    now = w3.eth.get_block("latest")["timestamp"]
    m = RollupMarket.deploy(w3, mo, v.address, task(deadline=now + 1000), committee=COMMITTEE)
    m.register(node.keys[1])
    with pytest.raises(ChainError, match="NotFinishable"):
        m.finish(mo)
    node.increase_time(1001)
    with pytest.raises(ChainError, match="DeadlinePassed"):
        m.submit_batch(node.keys[4], DUMMY, [0] * PARAMS.n_words, [node.accounts[1].address], [1],
                       simulate_first=False)
    with pytest.raises(ChainError, match="DeadlinePassed"):
        m.register(node.keys[2])
    before = w3.eth.get_balance(node.accounts[0].address)
    rc = m.finish(mo)
    fee = rc["gasUsed"] * rc["effectiveGasPrice"]
    assert w3.eth.get_balance(node.accounts[0].address) == before + task().required_deposit - fee
    acc = m.accounts()
    assert acc["refunded"] == acc["deposit"] and acc["balance"] == 0
    with pytest.raises(ChainError, match="TaskFinished"):
        m.register(node.keys[2])
    conserved(m)


def test_cli_deploy_market_from_setup(setup, capsys):
    from omniplus.cli import main

    if not (setup.dir / "params.json").exists():  # the CLI-made fallback setup has none
        (setup.dir / "params.json").write_text(json.dumps(PARAMS.to_json()))
    assert main(["deploy", "market", "--setup", str(setup.dir), "--exit", "--json", "--batches", "3",
                 "--reward-wei", "7", "--committee", ",".join(COMMITTEE.members),
                 "--fingerprints", ",".join(f.hex() for f in COMMITTEE.fingerprints)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["params"] == {"N": 2, "N_min": 2, "min_score": 0, "d": 30, "k": 8, "B": 200_000, "M": 2, "w": 10,
                             "c": 25, "R": 3}
    assert Committee.from_json(out["committee"]).same_as(COMMITTEE)
    assert out["deposit_wei"] == 2 * 3 * 7
    assert out["market"].startswith("0x") and out["verifier"].startswith("0x")


def _high_s(sig: bytes) -> bytes:
    """The malleable twin of a valid signature: s -> n - s, v flipped (ecrecover accepts it)."""
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def test_zkey_holder_cannot_get_paid(node, setup):
    """Issue 9, attack 1: anyone with the zkey can prove an all-zero batch for payees of its choice.
    Without t+1 committee signatures over exactly that batch it is refused and no wei moves."""
    w3 = node.w3
    m = fresh_market_on(node, setup)
    x, y = node.accounts[1], node.accounts[2]
    m.register(x.key)
    m.register(y.key)
    payees = [x.address, y.address]
    # a valid proof of rows of its choice (agreeing ones: an all-zero batch now scores 0, LowScore)
    proof, words = prove(setup, m, payees, ROWS0, 0, "zero")
    sc = scores(ROWS0)
    before = m.accounts()
    relayer = node.keys[5]
    good = sigs(m, proof, words, payees)
    other_payees = sigs(m, proof, words, [y.address, x.address])
    other_batch = sigs(m, proof, words, payees, batch_index=1)
    outsiders = sigs(m, proof, words, payees, keys=[node.keys[7], node.keys[8]])
    assert all(int.from_bytes(s[32:64], "big") <= HALF_N for s in good)
    cases = [
        ([], "NotEnoughSignatures"),
        (good[:1], "NotEnoughSignatures"),  # t = 1 signatures
        ([good[0], good[0]], "DuplicateSigner"),
        (other_payees, "NotCommittee"),
        (other_batch, "NotCommittee"),
        (outsiders, "NotCommittee"),
        ([good[0], outsiders[0]], "NotCommittee"),
        ([good[0], _high_s(good[1])], "BadSignature"),
        ([good[0], good[1][:64] + bytes([good[1][64] - 27])], "BadSignature"),  # v in {0, 1}
        ([good[0], good[1][:64]], "BadSignature"),
    ]
    for signatures, err in cases:
        with pytest.raises(ChainError, match=err):
            m.submit_batch(relayer, proof, words, payees, sc, signatures, simulate_first=False)
        with pytest.raises(ChainError, match="would revert: " + err):
            m.submit_batch(relayer, proof, words, payees, sc, signatures)
    assert m.accounts() == before and m.credit(x.address) == 0 and m.batches_submitted() == 0
    assert m.batch_events() == []
    conserved(m)
    # the very same proof with two committee signatures lands: only the signatures stopped it
    m.submit_batch(relayer, proof, words, payees, sc, good)
    assert m.credit(x.address) == REWARD and m.batches_submitted() == 1
    conserved(m)
    assert w3.eth.get_balance(m.address) == m.accounts()["deposit"]


def fresh_market_on(node: Anvil, setup: Setup) -> RollupMarket:
    v = deploy_verifier(node.w3, node.keys[0], setup.verifier_sol)
    return RollupMarket.deploy(node.w3, node.keys[0], v.address, task(), committee=COMMITTEE)


def test_relayed_batch_keeps_readers_working(node, setup):
    """Issue 9, attack 4: a submitBatch relayed through a contract has no top-level calldata; the
    words are read from the event, so every reader keeps working."""
    from omniplus.ml.public_model import read_aggregates

    m = fresh_market_on(node, setup)
    a, b = node.accounts[1], node.accounts[2]
    m.register(a.key)
    m.register(b.key)
    payees = [a.address, b.address]
    proof, words = prove(setup, m, payees, ROWS0, 0, "relayed")
    relayer = deploy(node.w3, node.keys[6], market_artifacts()["Relayer"])
    call_data = m.submit_call(proof, words, payees, scores(ROWS0),
                              sigs(m, proof, words, payees))._encode_transaction_data()
    transact(node.w3, node.keys[6], relayer.functions.relay(m.address, call_data), gas=2_000_000)
    assert m.batches_submitted() == 1 and m.credit(a.address) == REWARD
    alerts: list[str] = []
    (ev,) = m.batch_events(alerts=alerts)
    assert alerts == [] and ev.words == words and ev.submitter == relayer.address
    (agg,) = read_aggregates(m, PARAMS)
    assert agg["aggregate"] == column_sums(ROWS0) and agg["payees"] == payees
    conserved(m)


# ---- pay by contribution score (issue 12): N = 3, so scores and payments differ per payee
PARAMS3 = CircuitParams(batch=3, dims=8, bits=6, norm_bound=2000)


def prove3(setup3, m: RollupMarket, payees: list[str], rows: list[list[int]], work: Path) -> tuple[dict, list[int]]:
    """A real proof (snarkjs) of rows for the next batch of m; returns (proof.json, words)."""
    from omniplus.prover.backends.base import ProveJob, get_backend
    from omniplus.prover.binding import public_inputs
    from omniplus.prover.witness import full_witness

    words, signals = public_inputs(PARAMS3, m.binding_context(payees), rows)
    work.mkdir(parents=True, exist_ok=True)
    job = ProveJob(zkey=setup3.zkey, wasm=setup3.wasm, witness=full_witness(setup3, rows, signals),
                   input_json=circuit_inputs(PARAMS3, rows, signals), workdir=work)
    proof, public = get_backend("snarkjs").prove(job)
    assert [int(x) for x in public] == signals
    return proof, words


def test_pay_by_score_pro_rata_dust_and_refusals(node, tmp_path):
    """Payees are paid floor(budget·s_i/Σs) of budget = reward·n; a proof posted with other scores is
    InvalidProof, a zero update (score 0) is LowScore; the dust goes back to the MO at finish()."""
    from omniplus.prover.contribution import split_budget
    from omniplus.prover.setup_cache import cached_setup
    from omniplus.prover.trusted_setup import SetupDir

    setup3 = cached_setup(PARAMS3)[0]
    assert isinstance(setup3, SetupDir)
    w3, mo = node.w3, node.keys[0]
    v = deploy_verifier(w3, mo, setup3.path)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86400
    m = RollupMarket.deploy(w3, mo, v.address, TaskParams.from_circuit(PARAMS3, reward=REWARD, batches=1,
                                                                        deadline=deadline, min_batch=2),
                            committee=COMMITTEE)
    dos = node.accounts[1:4]
    for a in dos:
        m.register(a.key)
    payees = [a.address for a in dos]
    relayer = node.keys[5]

    # a free-rider in the batch: its score is 0, so the batch cannot pay it (a valid proof)
    zero_rows = [[10] * 8, [8] * 8, [0] * 8]
    proof_z, words_z = prove3(setup3, m, payees, zero_rows, tmp_path / "z")
    assert scores(zero_rows)[2] == 0
    with pytest.raises(ChainError, match=r"LowScore\(2, 0\)"):
        m.submit_batch(relayer, proof_z, words_z, payees, scores(zero_rows),
                       [sign_batch(m.digest(proof_z, words_z, payees, scores(zero_rows)), k) for k in SERVER_KEYS[:2]])

    rows = [[10] * 8, [8] * 8, [5] * 8]  # all agree; scores 8·10·13, 8·8·15, 8·5·18
    sc = scores(rows)
    assert sc == [1040, 960, 720]
    proof, words = prove3(setup3, m, payees, rows, tmp_path / "b")

    def relay(posted: list[int]) -> dict:
        digest = m.digest(proof, words, payees, posted)  # the committee signs what is posted
        return m.submit_batch(relayer, proof, words, payees, posted, [sign_batch(digest, k) for k in SERVER_KEYS[:2]])

    for posted in ([960, 1040, 720], [1041, 959, 720], [1040, 960, 721], [2080, 1920, 1440]):
        with pytest.raises(ChainError, match="InvalidProof"):  # the proof fixes every score
            relay(posted)
    before = m.accounts()
    assert before["totalCredited"] == 0
    rc = relay(sc)
    budget = REWARD * 3
    amounts, dust = split_budget(budget, sc)
    assert dust > 0  # 3e15·1040/2720 is not an integer
    assert [m.credit(p) for p in payees] == amounts
    assert amounts[0] > amounts[1] > amounts[2] and sum(amounts) + dust == budget
    (ev,) = m.batch_events()
    assert ev.scores == sc and ev.amounts == amounts and ev.payees == payees
    print(f"\nsubmitBatch gas, N=3 payees, pay by score: {rc['gasUsed']}")
    acc = m.accounts()
    assert acc["totalCredited"] == sum(amounts)
    # finish: the MO gets back everything not credited, the dust included; exact conservation
    m.finish(mo)
    acc = m.accounts()
    assert acc["refunded"] == acc["deposit"] - sum(amounts) == acc["deposit"] - budget + dust
    for a in dos:
        m.withdraw(a.key)
    acc = m.accounts()
    assert acc["deposit"] == acc["totalCredited"] + acc["refunded"] == acc["totalWithdrawn"] + acc["refunded"]
    assert acc["balance"] == 0
