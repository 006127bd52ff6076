"""The real RoundEngine: the daemon's validation and batch rounds run prover/mpc over the Channel.

Configured as `[prover] engine = "omniplus.servers.mpc_engine:make_engine"` with `setup = DIR` and
`backend = "native" | "snarkjs"`. Everything heavy (zkey, layout, prover backend) is loaded once
at start-up, so a misconfigured server fails before it accepts a single share, and Submit can
check the block's wire list against `layout.slot_wires[0]`.

The binding context is this server's own: chain and market from its configuration, the task id
read from the chain at start (after the canonical-task check, contracts/canonical.py), the batch
index the daemon agreed to (servers/batch_policy.py) and the payees this server's registry gave
when it accepted each share. It is built by the one builder, BindingContext.for_batch; the
coordinator sends no payees, so the registry's `->address` payee mode and the DO-is-its-own-payee
mode give the same context everywhere, and a coordinator cannot redirect a payment.

After the proof, the server verifies it locally and signs the batch digest (servers/settlement.py);
the signature goes back in the round result and in RoundStatus.batch_signature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from omniplus.core.cpu import PhaseClock
from omniplus.core.errors import InputError, SetupError
from omniplus.prover.binding import BindingContext
from omniplus.prover.mpc.batch import g_values, prove_batch_party
from omniplus.prover.mpc.groth16 import ProverEngine
from omniplus.prover.mpc.layout import BatchLayout, load_layout
from omniplus.prover.mpc.randomness import Rng
from omniplus.prover.mpc.screening import low_score_reason, screen
from omniplus.prover.mpc.validation import validate_blocks
from omniplus.prover.proof import proof_to_json
from omniplus.servers.config import ServerConfig
from omniplus.servers.rounds import BatchRequest, RoundContext, Verdict
from omniplus.servers.settlement import endorse
from omniplus.servers.signing import checksum
from omniplus.servers.storage import StoredSubmission

BACKENDS = ("native", "snarkjs")


def make_prover_engine(backend: str, setup: Any) -> ProverEngine:
    """The MSM/FFT engine a server runs its local work on (DESIGN.md, "Prover backends")."""
    if backend == "native":
        from omniplus.prover.groth16_prove import NativeEngine
        from omniplus.prover.zkey import read_zkey

        return NativeEngine(read_zkey(setup.zkey))
    if backend == "snarkjs":
        from omniplus.prover.engine import SnarkjsEngine

        return SnarkjsEngine(setup.zkey)
    raise InputError(f"[prover] backend must be one of {BACKENDS}, got {backend!r}")


class MpcEngine:
    """PROTOCOL.md steps 2-5 for one server; stateless between rounds (shares live in storage)."""

    def __init__(self, config: ServerConfig) -> None:
        from omniplus.prover.trusted_setup import SetupDir
        from omniplus.prover.zkey import read_zkey

        if config.prover.setup is None:
            raise SetupError("[prover] setup = DIR is required by omniplus.servers.mpc_engine")
        self.config = config
        self.setup = SetupDir.load(config.prover.setup)
        self.layout: BatchLayout = load_layout(self.setup)
        self.zkey = read_zkey(self.setup.zkey)
        self.engine = make_prover_engine(config.prover.backend, self.setup)
        self.vkey = json.loads(self.setup.vkey.read_text())
        self.task_id: int | None = None
        if config.task.canonical and config.task.rpc_url:
            self.task_id = check_own_task(config, self.setup).task_id
        self.min_score = task_min_score(config)
        from omniplus.prover.mpc.point_shares import local_verifier

        self.verify = local_verifier(self.setup, self.engine)

    @property
    def batch_size(self) -> int:
        """N: the daemon refuses larger batches before a round starts."""
        return self.setup.params.batch

    def expected_wires(self) -> Sequence[int] | None:
        return list(self.layout.slot_wires[0])

    def point_slots(self) -> int:
        """Point shares carry one record per batch slot (prover/mpc/point_shares.py)."""
        return self.layout.n_slots

    def validate(self, ctx: RoundContext, submissions: Sequence[StoredSubmission]) -> dict[bytes, Verdict]:
        blocks = {"0x" + s.do_address.hex(): s.share_values() for s in submissions}
        t0 = time.monotonic()
        verdicts = validate_blocks(ctx.channel, ctx.t, self.layout.block, blocks, Rng(), round_id="validate")
        ctx.log(
            "validation_opened",
            session=ctx.session,
            dos=len(blocks),
            rejected=sum(v is not None for v in verdicts.values()),
            seconds=round(time.monotonic() - t0, 3),
        )
        return {
            s.do_address: Verdict(
                verdicts["0x" + s.do_address.hex()] is None, verdicts["0x" + s.do_address.hex()] or ""
            )
            for s in submissions
        }

    def binding(self, batch: BatchRequest, payees: list[str]) -> BindingContext:
        """This server's own context for the batch (see the module docstring)."""
        p = batch.params
        task = self.config.task
        task_id = self.task_id
        if task_id is None:  # no chain access at start (tests with a dev allow-list): take it from params
            try:
                task_id = int(p["task_id"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"batch params need task_id: {exc}") from None
        elif "task_id" in p and int(p["task_id"]) != task_id:
            raise InputError(f"batch is for task {p['task_id']}; this server serves task {task_id}")
        if "market" in p and str(p["market"]).lower() != task.market.lower():
            raise InputError(f"batch is for market {p['market']}; this server serves {task.market}")
        return BindingContext.for_batch(chain_id=task.chain_id, market=task.market, task_id=task_id,
                                        batch_index=batch.batch_index, payees=payees)

    def decide_kept(self, ctx: RoundContext, batch: BatchRequest, submissions: Sequence[StoredSubmission],
                    all_dos: list[str], clock: PhaseClock) -> dict[str, Any]:
        """Which DOs of the agreed set enter the aggregate, decided before anything is opened and
        pinned on disk (Storage.pin_kept) before the opening, so no retry opens another set.

        First the split: every DO's block is checked again under fresh masks and a fresh coin
        (validation.validate_blocks: one exchange gives a verdict per DO, the end point of a
        bisection in one round), so an invalid update that passed validation -- a deviating server
        flipped its opening -- is left out before its batch's aggregate exists. Then contribution
        screening (prover/mpc/screening.py) on the DOs that pass."""
        blocks = {do: s.share_values() for do, s in zip(all_dos, submissions, strict=True)}
        recheck = validate_blocks(ctx.channel, ctx.t, self.layout.block, blocks, Rng(), round_id="batch/recheck")
        clock.mark("recheck")
        failed = {do: why for do, why in recheck.items() if why is not None}
        if failed:
            ctx.log("batch_recheck_failed", level="warning", session=ctx.session, batch=batch.batch_index,
                    dos=failed, note="left out before the aggregate was opened")
        survivors = [do for do in all_dos if do not in failed]
        n_min = max(2, self.config.task.min_batch)
        screening: dict[str, Any] = {"min_score": self.min_score, "rounds": [], "dropped": {}, "scores": {},
                                     "rechecked": failed}
        if len(survivors) < n_min:
            ctx.log("batch_screened", session=ctx.session, batch=batch.batch_index, kept=0, dropped={}, ok=False)
            return {"screened_out": True, "kept": [], "screening": screening}
        g = {do: g_values(self.layout, blocks[do], self.setup.params.dims) for do in survivors}
        scr = screen(ctx.channel, ctx.t, g, min_score=self.min_score, n_min=n_min,
                     rng=Rng(), tag="batch/screen", order=survivors)
        clock.mark("screening")
        screening.update(rounds=[dict(r) for r in scr.rounds],
                         dropped={do: {"score": sc, "reason": low_score_reason(sc, scr.min_score)}
                                  for do, sc in scr.dropped},
                         scores=dict(zip(scr.kept, scr.final, strict=True)) if scr.ok else {})
        ctx.log("batch_screened", session=ctx.session, batch=batch.batch_index, kept=len(scr.kept),
                dropped={do: sc for do, sc in scr.dropped}, ok=scr.ok)
        if not scr.ok:
            return {"screened_out": True, "kept": [], "screening": screening}
        decision = {"kept": list(scr.kept), "screening": screening}
        dropped: dict[bytes, tuple[int | None, str]] = {
            bytes.fromhex(do[2:]): (None, why) for do, why in failed.items()}
        dropped.update({bytes.fromhex(do[2:]): (int(v["score"]), v["reason"])
                        for do, v in screening["dropped"].items()})
        ctx.storage.pin_kept(batch.batch_index, [bytes.fromhex(do[2:]) for do in scr.kept],
                             json.dumps(decision, sort_keys=True), dropped)
        return decision

    def prove_batch(
        self, ctx: RoundContext, batch: BatchRequest, submissions: Sequence[StoredSubmission]
    ) -> dict[str, Any]:
        t0 = time.monotonic()
        clock = PhaseClock()  # wall and CPU (this process and its node worker) per phase
        all_dos = ["0x" + s.do_address.hex() for s in submissions]
        pin = ctx.storage.pinned(batch.batch_index)
        if pin is None:
            decision = self.decide_kept(ctx, batch, submissions, all_dos, clock)
            if decision.get("screened_out"):  # fewer than N_min would be left: nothing is opened
                return {"batch_index": batch.batch_index, "dos": [], "payees": [], "screened_out": True,
                        "screening": decision["screening"], "seconds": round(time.monotonic() - t0, 3),
                        "phases": clock.phases}
        else:  # a retry: the first attempt's re-check and screening stand, the same aggregate is opened
            decision = json.loads(pin[1])
            ctx.log("batch_pinned", session=ctx.session, batch=batch.batch_index, kept=len(pin[0]),
                    note="retry: the aggregate of the DOs pinned by the first attempt")
        screening = decision["screening"]
        kept = set(decision["kept"])
        submissions = [s for s, do in zip(submissions, all_dos, strict=True) if do in kept]
        payees = [checksum(s.payee) for s in submissions]
        context = self.binding(batch, payees)
        out = prove_batch_party(
            ctx.channel,
            ctx.t,
            self.setup,
            self.zkey,
            self.layout,
            self.engine,
            [s.share_values() for s in submissions],
            payees,
            context,
            Rng(),
            tag="batch",
            point_shares=[s.point_shares or None for s in submissions],
            verify=self.verify,
            mark=clock.mark,
        )
        assert out.proof is not None
        signature = endorse(key=self.config.signing_key, vkey=self.vkey, chain_id=context.chain_id,
                            market=context.market, task_id=context.task_id, batch_index=batch.batch_index,
                            payees=payees, words=out.words, proof=out.proof, scores=out.scores,
                            params=self.setup.params, mark=clock.mark)
        seconds = round(time.monotonic() - t0, 3)
        blamed = {"0x" + submissions[i].do_address.hex(): why for i, why in sorted(out.point_blame.items())}
        if blamed:
            # The DO's update was valid (checked on wire shares) and the batch was proven from its
            # wire shares; its point shares were not the MSMs of that update: record who broke it.
            ctx.log("point_shares_refused", level="warning", session=ctx.session, batch=batch.batch_index,
                    dos=blamed)
        ctx.log(
            "batch_proved",
            session=ctx.session,
            batch=batch.batch_index,
            dos=len(submissions),
            point_shares=out.fast is not None,
            fast=out.fast,
            seconds=seconds,
        )
        return {
            "batch_index": batch.batch_index,
            "dos": ["0x" + s.do_address.hex() for s in submissions],
            "payees": payees,
            "proof": proof_to_json(out.proof),
            "public": [str(x) for x in out.public],
            "words": [str(w) for w in out.words],
            "scores": [str(x) for x in out.scores],
            "signature": "0x" + signature.hex(),
            "aggregate": out.aggregate,
            "seconds": seconds,
            "point_shares": {"fast": out.fast, "refused": blamed},
            "screening": screening,
            "phases": clock.phases,
        }


def check_own_task(config: ServerConfig, setup: Any) -> Any:
    """At start: the market is canonical for our setup, N_min and the committee are what our config
    says, and our own signing key and certificate are the committee's entry for our index."""
    from omniplus.contracts.canonical import NonCanonicalTask, check_task
    from omniplus.contracts.chain import connect
    from omniplus.contracts.committee import cert_fingerprint
    from omniplus.contracts.rollup import Committee
    from omniplus.servers.signing import address_of

    expected = None
    if all(p.signer and p.fingerprint for p in config.peers):
        expected = Committee(tuple(p.signer for p in config.peers),
                             tuple(bytes.fromhex(p.fingerprint.removeprefix("0x")) for p in config.peers),
                             config.threshold + 1)
    facts = check_task(connect(config.task.rpc_url), config.task.market, setup, min_batch=config.task.min_batch,
                       committee=expected, n_servers=config.n, threshold=config.threshold + 1)
    me = config.id - 1
    if config.signing_key:
        mine = "0x" + address_of(config.signing_key).hex()
        if facts.committee.members[me].lower() != mine:
            raise NonCanonicalTask(f"market {config.task.market}: committee entry {config.id} is "
                                   f"{facts.committee.members[me]}, not this server's signing address {mine}")
    fp = cert_fingerprint(config.tls.cert.read_bytes())
    if facts.committee.fingerprints[me] != fp:
        raise NonCanonicalTask(f"market {config.task.market}: committee entry {config.id} lists another TLS "
                               f"certificate than this server's {config.tls.cert.name}")
    for p in config.peers:  # the certificates we pin for our peers are the ones the task lists
        if p.cert is not None and facts.committee.fingerprints[p.id - 1] != cert_fingerprint(p.cert.read_bytes()):
            raise NonCanonicalTask(f"market {config.task.market}: committee entry {p.id} lists another TLS "
                                   f"certificate than [[peers]] {p.id} cert {p.cert.name}")
    return facts


def task_min_score(config: ServerConfig) -> int:
    """The screening threshold: the task's minScore() on-chain when the contract has it, else
    [task] min_score (default 0). Read once at start (a task parameter, fixed at creation)."""
    if config.task.rpc_url and config.task.canonical:
        from omniplus.contracts.chain import connect
        from omniplus.contracts.rollup import RollupMarket

        market = RollupMarket.at(connect(config.task.rpc_url), config.task.market)
        if any(f.get("name") == "minScore" for f in market.contract.abi):
            return int(market.contract.functions.minScore().call())
    return config.task.min_score


def make_engine(config: ServerConfig) -> MpcEngine:
    """`[prover] engine = "omniplus.servers.mpc_engine:make_engine"`."""
    return MpcEngine(config)
