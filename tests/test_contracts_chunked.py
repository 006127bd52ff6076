"""Chunked batches (issue 11 item 4) on a real anvil with real Groth16 proofs: a model of d = 50
values split into K = 3 chunks of the same (N = 2, d_chunk = 20, k = 8, B) circuit, proven by the
single prover (omniplus.api.prove_chunks), signed by a 2-of-3 committee made here, settled in ONE
submitChunkedBatch that verifies every chunk's proof against [ctx_i, W…].

Attacks tried: chunks swapped (with and without the committee re-signing), a chunk proof replayed
into a later batch with other payees, a chunk dropped, an unchunked submitBatch on a chunked task
and a chunked one on an unchunked task, a chunk proved with the unchunked ctx, and parties whose
configuration says another K (canonical-task check)."""

from __future__ import annotations

import random

import pytest
from eth_account import Account
from eth_utils import keccak

from omniplus.api import prove_chunks
from omniplus.circuits.params import CircuitParams
from omniplus.contracts.canonical import NonCanonicalTask, check_task
from omniplus.contracts.chain import Anvil
from omniplus.contracts.committee import sign_batch
from omniplus.contracts.rollup import Committee, RollupMarket, TaskParams
from omniplus.contracts.verifier import deploy_verifier
from omniplus.core.errors import ChainError
from omniplus.prover.binding import unpack_words
from omniplus.prover.chunks import join_chunks, n_chunks, split_rows

PARAMS = CircuitParams(batch=2, dims=20, bits=8, norm_bound=100_000)
D_TOTAL, K = 50, 3
REWARD = 10**15
SERVER_KEYS = ["0x" + keccak(f"chunk server {j}".encode()).hex() for j in (1, 2, 3)]
COMMITTEE = Committee(tuple(Account.from_key(k).address for k in SERVER_KEYS),
                      tuple(keccak(f"cert {j}".encode()) for j in (1, 2, 3)), 2)


@pytest.fixture(scope="module")
def setup():
    from omniplus.prover.setup_cache import cached_setup

    return cached_setup(PARAMS)[0]


@pytest.fixture(scope="module")
def chain():
    with Anvil(accounts=8) as a:
        yield a


def deploy(chain, setup, chunks: int = K, batches: int = 2) -> RollupMarket:
    w3, key = chain.w3, chain.keys[0]
    v = deploy_verifier(w3, key, setup.path)
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86400
    task = TaskParams.from_circuit(PARAMS, reward=REWARD, batches=batches, deadline=deadline, chunks=chunks)
    return RollupMarket.deploy(w3, key, v.address, task, committee=COMMITTEE)


def rows_for(seed: int) -> list[list[int]]:
    """DOs whose updates agree (a common direction plus noise): every chunk's scores are positive."""
    rng = random.Random(seed)
    base = [rng.randrange(-50, 50) for _ in range(D_TOTAL)]
    return [[b + rng.randrange(-10, 10) for b in base] for _ in range(PARAMS.batch)]


SCORES: dict[str, list[list[int]]] = {}  # chunk proofs → their per-chunk partial scores


def _key(proofs) -> str:
    return repr([p.a for p in proofs])


def signed(m: RollupMarket, proofs, words, payees, batch_index=None, keys=SERVER_KEYS[:2]) -> list[bytes]:
    digest = m.chunked_digest(proofs, words, payees, scores_for(proofs), batch_index)
    return [sign_batch(digest, k) for k in keys]


def scores_for(proofs) -> list[list[int]]:
    """The partial scores each chunk proof was made for (placeholders for proofs of no batch)."""
    return SCORES.get(_key(proofs)) or [[1] * PARAMS.batch for _ in proofs]


def make_batch(m: RollupMarket, setup, payees, seed: int, batch_index: int = 0):
    chunk_rows = split_rows(rows_for(seed), PARAMS.dims)
    assert len(chunk_rows) == n_chunks(D_TOTAL, PARAMS.dims) == K
    out = prove_chunks(setup.path, chunk_rows, m.binding_context(payees, batch_index), "snarkjs")
    proofs = [c.proof for c in out]
    SCORES[_key(proofs)] = [c.scores for c in out]
    for i in range(len(proofs)):  # any sub-list or reordering keeps its chunks' scores
        SCORES[_key(proofs[i:i + 1])] = [out[i].scores]
    return chunk_rows, proofs, [c.words for c in out]


def submit(m: RollupMarket, key: str, proofs, words, payees, signatures, **kw):
    return m.submit_chunked_batch(key, proofs, words, payees, scores_for(proofs), signatures, **kw)


def test_chunked_batch_settles_in_one_transaction_and_resists_swaps_and_replays(chain, setup):
    m = deploy(chain, setup)
    relayer = chain.keys[7]
    dos = chain.keys[1:5]
    for k in dos:
        m.register(k)
    payees = [Account.from_key(k).address for k in dos[:2]]
    chunk_rows, proofs, words = make_batch(m, setup, payees, seed=1)

    # the chunked task refuses the one-proof path, and K−1 chunks
    with pytest.raises(ChainError, match="ChunkedTask"):
        m.submit_batch(relayer, proofs[0], words[0], payees, [1, 1], [b"\0" * 65])
    with pytest.raises(ChainError, match="WrongChunkCount"):
        submit(m, relayer, proofs[:2], words[:2], payees, signed(m, proofs[:2], words[:2], payees))
    # swapped chunks: the committee's signatures no longer match ...
    sw_p, sw_w = [proofs[1], proofs[0], proofs[2]], [words[1], words[0], words[2]]
    with pytest.raises(ChainError, match="NotCommittee|BadSignature"):
        submit(m, relayer, sw_p, sw_w, payees, signed(m, proofs, words, payees))
    # ... and even a committee fooled into signing the swap cannot make chunk 1's proof verify at index 0
    with pytest.raises(ChainError, match="InvalidProof"):
        submit(m, relayer, sw_p, sw_w, payees, signed(m, sw_p, sw_w, payees))

    rec = submit(m, relayer, proofs, words, payees, signed(m, proofs, words, payees))
    assert rec["status"] == 1
    assert [m.credit(p) for p in payees] == [REWARD, REWARD]
    (ev,) = m.batch_events()
    assert ev.payees == payees and len(ev.words) == K * PARAMS.n_words
    from omniplus.prover.contribution import scores

    total = [sum(part[i] for part in scores_for(proofs)) for i in range(2)]
    assert total == scores(rows_for(1)) and min(total) > 0  # chunk partial scores sum to the model's
    assert ev.scores == total and ev.amounts == [REWARD, REWARD]
    per_chunk = [ev.words[i * PARAMS.n_words:(i + 1) * PARAMS.n_words] for i in range(K)]
    assert per_chunk == words
    agg = join_chunks([unpack_words(PARAMS, w) for w in per_chunk], D_TOTAL)
    assert agg == [sum(c) for c in zip(*rows_for(1), strict=True)]
    assert m.batches_submitted() == 1

    # replay: batch 0's chunk proofs, re-signed for batch 1 with two fresh payees, fail on-chain
    fresh = [Account.from_key(k).address for k in dos[2:4]]
    with pytest.raises(ChainError, match="InvalidProof"):
        submit(m, relayer, proofs, words, fresh, signed(m, proofs, words, fresh))
    # the same batch again: its payees are paid already
    with pytest.raises(ChainError, match="AlreadyPaid"):
        submit(m, relayer, proofs, words, payees, signed(m, proofs, words, payees))
    # a chunk proved with the unchunked ctx (a one-proof statement) does not verify as chunk 0
    from omniplus.prover.binding import public_signals

    ctx = m.binding_context(fresh)
    chunk_rows1, proofs1, words1 = make_batch(m, setup, fresh, seed=2, batch_index=1)
    plain = prove_chunks(setup.path, chunk_rows1[:1], ctx, "snarkjs")  # K=1 statement: chunk_ctx(ctx, 0, 1)
    assert plain[0].public != public_signals(ctx, words1[0], plain[0].public[1 + PARAMS.n_words:])  # not the plain ctx
    mixed = [plain[0].proof, *proofs1[1:]]
    with pytest.raises(ChainError, match="InvalidProof"):
        submit(m, relayer, mixed, words1, fresh, signed(m, mixed, words1, fresh))
    rec = submit(m, relayer, proofs1, words1, fresh, signed(m, proofs1, words1, fresh))
    assert rec["status"] == 1 and m.batches_submitted() == 2
    acc = m.accounts()
    assert acc["totalCredited"] == 4 * REWARD and acc["balance"] == acc["deposit"] == 2 * 2 * REWARD


def test_unchunked_task_refuses_chunked_submit_and_parties_check_k(chain, setup):
    plain = deploy(chain, setup, chunks=1)
    chunked = deploy(chain, setup, chunks=K)
    relayer = chain.keys[7]
    with pytest.raises(ChainError, match="ChunkedTask"):
        plain.submit_chunked_batch(relayer, [], [], [], [], [b"\0" * 65], simulate_first=True)
    # every party compares K with its own configuration: a K-unaware party refuses a chunked task
    assert check_task(chain.w3, plain.address, setup).chunks == 1
    with pytest.raises(NonCanonicalTask, match=r"chunks \(K\) = 3"):
        check_task(chain.w3, chunked.address, setup)
    assert check_task(chain.w3, chunked.address, setup, chunks=K).chunks == K
    with pytest.raises(NonCanonicalTask, match=r"chunks \(K\) = 1"):
        check_task(chain.w3, plain.address, setup, chunks=K)
