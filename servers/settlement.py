"""Batch settlement around the contract (PROTOCOL.md v2, steps 5-6): a server endorses a batch it
proved, the coordinator collects t+1 endorsements and relays.

Server side (`endorse`): only after this server validated every DO of the batch itself and opened
exactly the agreed set's aggregate (servers/batch_policy.py), it rebuilds the public inputs from
its own context (its configured chain and market, the task id read at start, the payees from its
own storage), verifies the proof locally, and only then signs the batch digest
(contracts/committee.py). A proof that fails locally is never signed.

Coordinator side (`collect`, `relay`): the signatures come back through Control.RoundStatus
(batch_signature); `collect` keeps those of distinct committee members over exactly this batch,
`relay` eth_calls submitBatch first and broadcasts only a call that would succeed, so a reverted
transaction never publishes the words in calldata.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omniplus.core.errors import InputError, ProofError


class NotEndorsed(ProofError):
    """This server refuses to sign the batch (no signing key, or the proof does not verify)."""


class ProofRejected(NotEndorsed):
    """The joint proof does not verify against this server's own inputs (counted per batch index:
    servers/daemon.py gives a pinned set up after batch_policy.MAX_FAILED_PROOFS of these)."""


def endorse(*, key: str, vkey: dict, chain_id: int, market: str, task_id: int, batch_index: int,
            payees: Sequence[str], words: Sequence[int], proof: Any, scores: Sequence[int], params: Any,
            mark: Callable[[str], None] | None = None) -> bytes:
    """Verify `proof` against [ctx, words, packed scores] built from this server's own facts (its
    opened scores, its circuit `params`), then sign the digest, which covers the scores
    (`mark("verify")` and `mark("sign")` as each ends, for per-phase timings)."""
    from omniplus.contracts.committee import batch_digest, sign_batch
    from omniplus.prover.binding import BindingContext, pack_scores, public_signals
    from omniplus.prover.groth16_verify import verify

    if not key:
        raise NotEndorsed("this server has no signing key (signing_key / signing_keyfile in its config)")
    ctx = BindingContext.for_batch(chain_id=chain_id, market=market, task_id=task_id, batch_index=batch_index,
                                   payees=payees)
    if not verify(vkey, proof, public_signals(ctx, words, pack_scores(params, scores))):
        raise ProofRejected(f"batch {batch_index}: the joint proof does not verify locally; not signing")
    if mark:
        mark("verify")
    signature = sign_batch(batch_digest(chain_id, market, batch_index, payees, words, proof, scores), key)
    if mark:
        mark("sign")
    return signature


def collect(signatures: Mapping[int, bytes], digest: bytes, committee: Any) -> list[bytes]:
    """t+1 valid signatures of distinct committee members (committee order); InputError if fewer."""
    from omniplus.contracts.committee import select_signatures

    return select_signatures(digest, [s for _, s in sorted(signatures.items()) if s], committee.members,
                             committee.threshold)


def relay(market: Any, key: str, proof: Any, words: Sequence[int], payees: Sequence[str], scores: Sequence[int],
          signatures: Sequence[bytes]) -> dict:
    """submitBatch, simulated first (ChainError "would revert: …" and nothing sent if it would fail)."""
    if not signatures:
        raise InputError("no committee signatures: nothing to relay")
    return market.submit_batch(key, proof, words, payees, scores, signatures, simulate_first=True)
