"""The real RoundEngine: the daemon's validation and batch rounds run prover/mpc over the Channel.

Configured as `[prover] engine = "omniplus.servers.mpc_engine:make_engine"` with `setup = DIR` and
`backend = "native" | "snarkjs"`. Everything heavy (zkey, layout, prover backend) is loaded once
at start-up, so a misconfigured server fails before it accepts a single share, and Submit can
check the block's wire list against `layout.slot_wires[0]`.

Why the binding context comes from the coordinator but the payees do not: the chain id, market,
task id and batch index are public facts the coordinator reads from the contract; the payee of a
DO is what *this* server's registry said when it accepted the share. The coordinator's payee list
is only cross-checked, so a coordinator cannot redirect a DO's payment through the servers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from omniplus.core.errors import InputError, SetupError
from omniplus.prover.binding import BindingContext
from omniplus.prover.mpc.batch import prove_batch_party
from omniplus.prover.mpc.groth16 import ProverEngine
from omniplus.prover.mpc.layout import BatchLayout, load_layout
from omniplus.prover.mpc.randomness import Rng
from omniplus.prover.mpc.validation import validate_blocks
from omniplus.prover.proof import proof_to_json
from omniplus.servers.config import ServerConfig
from omniplus.servers.rounds import BatchRequest, RoundContext, Verdict
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

    def expected_wires(self) -> Sequence[int] | None:
        return list(self.layout.slot_wires[0])

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
        """The coordinator's context, checked against this server's own task and payees."""
        p = batch.params
        task = self.config.task
        try:
            chain_id, market, task_id = int(p["chain_id"]), str(p["market"]), int(p["task_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"batch params need chain_id, market and task_id: {exc}") from None
        if chain_id != task.chain_id or market.lower() != task.market.lower():
            raise InputError(
                f"batch is for market {market} on chain {chain_id}; this server serves "
                f"{task.market} on chain {task.chain_id}"
            )
        if "payees" in p and [str(a).lower() for a in p["payees"]] != [a.lower() for a in payees]:
            raise InputError("the coordinator's payee list differs from the registered payees of these DOs")
        return BindingContext(
            chain_id=chain_id,
            market=market,
            task_id=task_id,
            batch_index=batch.batch_index,
            payees=tuple(payees),
        )

    def prove_batch(
        self, ctx: RoundContext, batch: BatchRequest, submissions: Sequence[StoredSubmission]
    ) -> dict[str, Any]:
        payees = [checksum(s.payee) for s in submissions]
        context = self.binding(batch, payees)
        t0 = time.monotonic()
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
        )
        assert out.proof is not None
        seconds = round(time.monotonic() - t0, 3)
        ctx.log(
            "batch_proved",
            session=ctx.session,
            batch=batch.batch_index,
            dos=len(submissions),
            seconds=seconds,
        )
        return {
            "batch_index": batch.batch_index,
            "dos": ["0x" + s.do_address.hex() for s in submissions],
            "payees": payees,
            "proof": proof_to_json(out.proof),
            "public": [str(out.rho), str(out.F)],
            "words": [str(w) for w in out.words],
            "aggregate": out.aggregate,
            "seconds": seconds,
        }


def make_engine(config: ServerConfig) -> MpcEngine:
    """`[prover] engine = "omniplus.servers.mpc_engine:make_engine"`."""
    return MpcEngine(config)
