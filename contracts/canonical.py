"""Is this the task we think it is? (PROTOCOL.md v2, "The task"; issue 9 attack 3.)

Servers (at start), the coordinator and every DO client call `check_task` before sharing anything.
It refuses, with one clear line (NonCanonicalTask), a market

* whose runtime code is not the canonical RollupMarket build: eth_getCode compared byte for byte
  with solc's runtime output of contracts/RollupMarket.sol, the immutable ranges (the task
  parameters, which solc reports in `immutableReferences`) masked on both sides;
* whose verifier's code differs from the Groth16Verifier.sol exported by *our own* setup (the
  verifier has no immutables: exact comparison), so a reject-all or accept-all verifier of the
  MO's choice is caught;
* whose N, N_min, d, k, B, M, w, c, model hash or committee (signing addresses, TLS certificate
  fingerprints, threshold) differ from what the caller expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omniplus.core.errors import OmniplusError


class NonCanonicalTask(OmniplusError):
    """The market, its verifier or its parameters are not the ones this party was set up for."""


@dataclass(frozen=True)
class TaskFacts:
    """What the check read from the chain (for the caller to bind to)."""

    task_id: int
    deploy_block: int
    committee: Any  # contracts.rollup.Committee
    min_batch: int
    verifier: str
    chunks: int = 1  # K
    min_score: int = 0  # a payee's contribution score must exceed it


def _code(w3: Any, address: str) -> bytes:
    from web3 import Web3

    return bytes(w3.eth.get_code(Web3.to_checksum_address(address)))


def check_task(w3: Any, market_address: str, setup: Any, *, min_batch: int | None = None,
               committee: Any = None, n_servers: int | None = None, threshold: int | None = None,
               model_hash: bytes | None = None, chunks: int | None = 1) -> TaskFacts:
    """Raise NonCanonicalTask unless the market at `market_address` is canonical for `setup`
    (a prover.trusted_setup.SetupDir) and matches every given expectation.

    `chunks` is the K this party expects (default 1: a party that settles one proof per batch
    refuses a chunked task, whose batches only submitChunkedBatch can settle; None: any K). For a
    chunked task the setup is the chunk circuit, so d, B, M, w and c are a chunk's."""
    from omniplus.contracts.rollup import RollupMarket
    from omniplus.contracts.solc import market_artifacts
    from omniplus.contracts.verifier import verifier_artifact

    where = f"market {market_address}"
    code = _code(w3, market_address)
    if not code:
        raise NonCanonicalTask(f"{where}: no contract code at this address on chain {w3.eth.chain_id}")
    art = market_artifacts()["RollupMarket"]
    if art.masked_runtime(code) != art.masked_runtime():
        raise NonCanonicalTask(f"{where}: runtime code is not the canonical RollupMarket build "
                               f"({len(code)} bytes vs {art.deployed_size}); refusing to take part")
    m = RollupMarket.at(w3, market_address)
    f = m.contract.functions
    verifier = str(f.verifier().call())
    want_v = bytes.fromhex(verifier_artifact(setup.verifier_sol).deployed.removeprefix("0x"))
    if _code(w3, verifier) != want_v:
        raise NonCanonicalTask(f"{where}: verifier {verifier} is not the Groth16Verifier exported from this "
                               f"setup's verification key ({setup.path}); refusing to take part")
    p = setup.params
    expect = {"batchSize (N)": (f.batchSize, p.batch), "dims (d)": (f.dims, p.dims), "bits (k)": (f.bits, p.bits),
              "normBound (B)": (f.normBound, p.norm_bound), "nWords (M)": (f.nWords, p.n_words),
              "wordBits (w)": (f.wordBits, p.word_bits), "perWord (c)": (f.perWord, p.per_word),
              "scoreOffset (S_OFF)": (f.scoreOffset, p.score_offset), "scoreBits (sw)": (f.scoreBits, p.score_bits),
              "scoresPerWord (cs)": (f.scoresPerWord, p.scores_per_word),
              "nScoreWords (K)": (f.nScoreWords, p.n_score_words)}
    if min_batch is not None:
        expect["minBatch (N_min)"] = (f.minBatch, min_batch)
    if chunks is not None:
        expect["chunks (K)"] = (f.chunks, chunks)
    for name, (fn, want) in expect.items():
        got = int(fn().call())
        if got != int(want):
            raise NonCanonicalTask(f"{where}: {name} = {got} on-chain, but this party's setup says {want}")
    if model_hash is not None and bytes(f.modelHash().call()) != bytes(model_hash):
        raise NonCanonicalTask(f"{where}: modelHash differs from the expected model commitment")
    chain_committee = m.committee()
    if committee is not None and not chain_committee.same_as(committee):
        raise NonCanonicalTask(f"{where}: the on-chain server committee {chain_committee.to_json()} differs "
                               f"from this party's configuration {committee.to_json()}")
    if n_servers is not None and len(chain_committee.members) != n_servers:
        raise NonCanonicalTask(f"{where}: committee has {len(chain_committee.members)} servers, "
                               f"this party shares to {n_servers}")
    if threshold is not None and chain_committee.threshold != threshold:
        raise NonCanonicalTask(f"{where}: committee threshold {chain_committee.threshold}, expected {threshold}")
    return TaskFacts(task_id=m.task_id, deploy_block=m.deploy_block(), committee=chain_committee,
                     min_batch=int(f.minBatch().call()), verifier=verifier, chunks=int(f.chunks().call()),
                     min_score=int(f.minScore().call()))
