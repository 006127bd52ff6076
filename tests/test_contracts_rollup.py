"""RollupMarket on a real anvil with real Groth16 proofs of the real circuit, checked by the
deployed snarkjs verifier: happy path, every rejection of issue 3 §2, replays (payees, batch,
contract/task, chain), reentrancy on withdraw, MO refund after the deadline, conservation."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils import keccak

from omniplus.circuits.params import CircuitParams
from omniplus.contracts.chain import Anvil, deploy, transact
from omniplus.contracts.rollup import RollupMarket, TaskParams
from omniplus.contracts.solc import market_artifacts
from omniplus.contracts.verifier import deploy_verifier
from omniplus.core import resources as paths
from omniplus.core.errors import ChainError
from omniplus.core.tools import run_tool
from omniplus.prover.binding import aggregate as column_sums
from omniplus.prover.binding import binding_F, binding_rho, pack_aggregate, unpack_words
from omniplus.prover.witness import circuit_inputs

PARAMS = CircuitParams(batch=2, dims=30, bits=8, norm_bound=200_000)  # w = 10, c = 25, M = 2
REWARD = 10**15
BATCHES = 2
FAR_DEADLINE = 4_000_000_000
DEPLOYER = 9  # a dedicated key: nonce 0 = verifier, nonce 1 = market on every fresh anvil


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
    rho = binding_rho(ctx, words)
    F = binding_F(words, rho)
    work = setup.dir / f"proof_{tag}"
    work.mkdir(exist_ok=True)
    (work / "input.json").write_text(json.dumps(circuit_inputs(PARAMS, rows, rho, F)))
    _snarkjs("wtns", "calculate", setup.wasm, "input.json", "w.wtns", cwd=work)
    _snarkjs("groth16", "prove", setup.zkey, "w.wtns", "proof.json", "public.json", cwd=work)
    public = [int(x) for x in json.loads((work / "public.json").read_text())]
    assert public == [rho, F]
    return json.loads((work / "proof.json").read_text()), words


def conserved(m: RollupMarket) -> None:
    """Deposit = credits + refund once finished; nobody took more than credited; balance = what is owed."""
    acc = m.accounts()
    assert acc["totalWithdrawn"] <= acc["totalCredited"] <= acc["deposit"]
    assert acc["balance"] == acc["deposit"] - acc["totalWithdrawn"] - acc["refunded"]
    if m.finished():
        assert acc["deposit"] == acc["totalCredited"] + acc["refunded"]


def task(deadline: int = FAR_DEADLINE, batches: int = BATCHES) -> TaskParams:
    return TaskParams.from_circuit(PARAMS, reward=REWARD, batches=batches, deadline=deadline)


def fresh_chain_market(node: Anvil, setup: Setup, whitelist: tuple[str, ...] = ()) -> RollupMarket:
    """Verifier then market from the dedicated deployer: the same addresses on every fresh anvil."""
    key = node.keys[DEPLOYER]
    verifier = deploy_verifier(node.w3, key, setup.verifier_sol)
    return RollupMarket.deploy(node.w3, key, verifier.address, task(), model_hash=b"\x11" * 32,
                               model_uri="ipfs://model", whitelist=whitelist)


ROWS0 = [[(7 * i + 3 * j) % 200 - 100 for j in range(PARAMS.dims)] for i in range(2)]
ROWS1 = [[(5 * j) % 31 - 15 for j in range(PARAMS.dims)]]
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
    a, c = node.accounts[1], node.accounts[3]
    m.register(a.key)
    m.register(c.key)
    attacker_reg = attacker.functions.act(m.contract.encode_abi("register", args=[]))
    transact(node.w3, node.keys[0], attacker_reg)
    p0 = prove(setup, m, [a.address, attacker.address], ROWS0, 0, "b0")
    p1 = prove(setup, m, [c.address], ROWS1, 1, "b1")
    return {"m": m, "mo": mo, "a": a, "c": c, "attacker": attacker, "p0": p0, "p1": p1}


def test_binding_matches_prover(batch_fixture):
    m, a = batch_fixture["m"], batch_fixture["a"]
    words = pack_aggregate(PARAMS, column_sums(ROWS0))
    payees = [a.address, batch_fixture["attacker"].address]
    ctx = m.binding_context(payees)
    rho = binding_rho(ctx, words)
    assert m.public_inputs(words, payees) == (rho, binding_F(words, rho))


def test_happy_path_rejections_and_replays(node, setup, batch_fixture):
    f = batch_fixture
    m, mo, a, c, attacker = f["m"], f["mo"], f["a"], f["c"], f["attacker"]
    (proof0, words0), (proof1, words1) = f["p0"], f["p1"]
    payees0 = [a.address, attacker.address]
    relayer = node.keys[5]  # anyone may submit: the proof binds payees and aggregate

    with pytest.raises(ChainError, match="InvalidProof"):  # proof made for batch 1, now is batch 0
        m.submit_batch(relayer, proof1, words1, [c.address])
    with pytest.raises(ChainError, match="InvalidProof"):  # other payees
        m.submit_batch(relayer, proof0, words0, [a.address, c.address])
    with pytest.raises(ChainError, match="InvalidProof"):  # payees reordered
        m.submit_batch(relayer, proof0, words0, payees0[::-1])
    with pytest.raises(ChainError, match="InvalidProof"):  # another aggregate
        m.submit_batch(relayer, proof0, [words0[0] + 1, words0[1]], payees0)
    bad = dict(proof0, pi_c=proof0["pi_a"])
    with pytest.raises(ChainError, match="InvalidProof"):  # a tampered proof
        m.submit_batch(relayer, bad, words0, payees0)
    # another contract (and task: its deadline differs) with the same DOs registered
    m2 = RollupMarket.deploy(node.w3, mo, m.contract.functions.verifier().call(), task(FAR_DEADLINE - 1))
    m2.register(a.key)
    m2.register(c.key)
    proof_a_c, words_ac = prove(setup, m, [a.address, c.address], ROWS0, 0, "b0ac")
    with pytest.raises(ChainError, match="InvalidProof"):
        m2.submit_batch(relayer, proof_a_c, words_ac, [a.address, c.address])
    conserved(m)
    conserved(m2)

    rc = m.submit_batch(relayer, proof0, words0, payees0)
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
        m.submit_batch(relayer, proof0, words0, payees0)
    with pytest.raises(ChainError, match="NotFinishable"):
        m.finish(mo)
    rc1 = m.submit_batch(relayer, proof1, words1, [c.address])
    print(f"submitBatch gas, 1 payee: {rc1['gasUsed']}")
    assert m.batches_submitted() == 2
    with pytest.raises(ChainError, match="AllBatchesDone"):
        m.submit_batch(relayer, DUMMY, words1, [node.accounts[6].address])
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
    for acct in (a, c):
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
    assert acc["refunded"] == acc["deposit"] - 3 * REWARD and acc["balance"] == 0
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
            m.submit_batch(other.keys[5], proof, words, payees)
        conserved(m)


def test_rejections_before_the_proof(node, setup):
    """Checks on calldata and state that come before verification (a dummy proof is enough)."""
    w3 = node.w3
    mo = node.keys[0]
    v = deploy_verifier(w3, mo, setup.verifier_sol)
    wl = [node.accounts[1].address, node.accounts[2].address]
    m = RollupMarket.deploy(w3, mo, v.address, task(), whitelist=wl)
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
        ([one, two, one], words, "BadPayeeCount"),
        ([one], words[:-1], "WrongWordCount"),
        ([one], words + [0], "WrongWordCount"),
        ([one], [0, 1 << 250], "WordTooLarge"),
        ([one], [0, R_FIELD_MINUS_1], "WordTooLarge"),
        ([one, two], words, "InvalidProof"),
    ]
    for payees, ws, err in cases:
        with pytest.raises(ChainError, match=err):
            m.submit_batch(node.keys[4], DUMMY, ws, payees)
    conserved(m)
    # deployment checks
    with pytest.raises(ChainError, match="DepositTooSmall"):
        RollupMarket.deploy(w3, mo, v.address, task(), deposit=task().required_deposit - 1)
    bad = TaskParams(**{**task().__dict__, "n_words": PARAMS.n_words + 1})
    with pytest.raises(ChainError, match="BadParams"):
        RollupMarket.deploy(w3, mo, v.address, bad)
    with pytest.raises(ChainError, match="BadParams"):
        RollupMarket.deploy(w3, mo, node.accounts[7].address, task())  # verifier without code


R_FIELD_MINUS_1 = 21888242871839275222246405745257275088548364400416034343698204186575808495616


def test_refund_after_deadline(node, setup):
    w3, mo = node.w3, node.keys[0]
    v = deploy_verifier(w3, mo, setup.verifier_sol)
    now = w3.eth.get_block("latest")["timestamp"]
    m = RollupMarket.deploy(w3, mo, v.address, task(deadline=now + 1000))
    m.register(node.keys[1])
    with pytest.raises(ChainError, match="NotFinishable"):
        m.finish(mo)
    node.increase_time(1001)
    with pytest.raises(ChainError, match="DeadlinePassed"):
        m.submit_batch(node.keys[4], DUMMY, [0] * PARAMS.n_words, [node.accounts[1].address])
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
                 "--reward-wei", "7"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["params"] == {"N": 2, "d": 30, "k": 8, "B": 200_000, "M": 2, "w": 10, "c": 25, "R": 3}
    assert out["deposit_wei"] == 2 * 3 * 7
    assert out["market"].startswith("0x") and out["verifier"].startswith("0x")
