"""A malicious server on a real network (issue 10): anvil, 3 `omniplus server` processes over
mutual TLS, the coordinator process, real proofs.

Server 3 runs `MaliciousEngine`: the real engine plus faults chosen by the file `malice` in the
devnet directory, each injected once: the file is rewritten to "none" when the deviation is
actually made (not when a round starts: a round that fails before the faulty step would use the
fault up without deviating), so the coordinator's retry under fresh masks meets an honest server:

* `rush`: in the validation opening it reveals a different value than it committed to (what a
  rushing server does to adapt its point to the others' and flip a verdict);
* `b1`: its round-1 B1 share is a wrong point (the spare point detects it; the pairing check
  e(B1, G2) = e(G1, B2) on the openings without each server locates it);
* `withhold`: it never sends its validation opening;
* `b1-always`: as `b1`, but never disarmed (a persistent deviator: tests/test_network_exclusion.py,
  where n = 4 = 2t+2 lets the coordinator leave it out once it is named).

Each time the honest servers must name server 3 (logs, state.json, `omniplus coordinator
--status`), and in the end the valid DOs are paid, the invalid one is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from network_fixtures import pay_by_score

from omniplus.core.resources import ROOT
from omniplus.devnet import Devnet, DevnetOptions
from omniplus.servers.channel import RECV_TIMEOUT
from omniplus.servers.mpc_engine import MpcEngine
from omniplus.servers.rounds import BatchRequest, RoundContext, Verdict
from omniplus.servers.storage import StoredSubmission

TESTS = Path(__file__).resolve().parent
MALICE = "malice"  # relative to the server's working directory (the devnet root)


def armed(wanted: Sequence[str]) -> str:
    """The armed fault, if it is one of `wanted` ("none" otherwise); `disarm` once it is made."""
    p = Path(MALICE)
    mode = p.read_text().strip() if p.exists() else "none"
    return mode if mode in wanted else "none"


def disarm() -> None:
    """The deviation was made: the next round is honest."""
    Path(MALICE).write_text("none")


class MaliciousNet:
    """Wraps a round's Channel; `rush` changes the validation reveal, `withhold` drops it."""

    def __init__(self, inner: Any, mode: str) -> None:
        self.inner, self.mode = inner, mode
        self.party, self.n = inner.party, inner.n

    def broadcast(self, tag: str, payload: bytes) -> dict[int, bytes]:
        if tag.endswith("validate/open/reveal"):
            if self.mode == "withhold":
                import time

                disarm()
                time.sleep(3600)  # never sends; the round is aborted around us
            if self.mode == "rush":
                from omniplus.prover.mpc.audit import _pack, _unpack

                disarm()
                body, sig = _unpack(payload, 2, tag, self.party)
                payload = _pack(body[:32] + bytes([body[32] ^ 1]) + body[33:], sig)
        return self.inner.broadcast(tag, payload)

    def exchange(self, tag: str, payloads: dict[int, bytes]) -> dict[int, bytes]:
        return self.inner.exchange(tag, payloads)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


COLLUDER = "colluder.json"  # {"address", "row"}: the invalid DO that colludes with server 3 (`pass`)


def lagrange_at_zero(j: int, points: Sequence[int]) -> int:
    from omniplus.prover.field import R

    num = den = 1
    for m in points:
        if m != j:
            num, den = num * (-m) % R, den * (j - m) % R
    return num * pow(den, -1, R) % R


class MaliciousEngine(MpcEngine):
    def validate(self, ctx: RoundContext, submissions: Sequence[StoredSubmission]) -> dict[bytes, Verdict]:
        mode = armed(("pass", "pass2"))
        if mode != "none":
            with self.colluding(ctx, submissions, then="none" if mode == "pass" else "pass1"):
                return super().validate(ctx, submissions)
        mode = armed(("rush", "withhold"))
        if mode != "none":
            ctx.log("test_malice", mode=mode, session=ctx.session)
            ctx = dataclasses.replace(ctx, channel=MaliciousNet(ctx.channel, mode))
        return super().validate(ctx, submissions)

    @contextlib.contextmanager
    def colluding(self, ctx: RoundContext, submissions: Sequence[StoredSubmission], then: str) -> Iterator[None]:
        """`pass`: the colluding invalid DO told us its update, so we know its true validity value v
        once the coin is drawn, and shift our degree-2t point by -v/λ_3: every server opens 0 and
        accepts it. Undetectable at n = 2t+1 (no spare point). Used in validation (`pass`, `pass2`)
        and, for `pass2`, once more in the batch's re-check (`pass1`); `then` is the next mode."""
        from omniplus.prover.field import R
        from omniplus.prover.mpc import validation
        from omniplus.servers.data_owner import update_block

        info = json.loads(Path(COLLUDER).read_text())
        target = bytes.fromhex(info["address"][2:].lower())
        sub = next((s for s in submissions if s.do_address == target), None)
        if sub is None:
            yield
            return
        clear = update_block(self.setup, self.layout, info["row"], check=False)[1]
        shares = list(sub.share_values())
        inv_lam = pow(lagrange_at_zero(ctx.party, list(ctx.parties)), -1, R)
        honest = validation.residual

        def shifted(circuit: Any, w: Sequence[int], rhos: Sequence[int]) -> int:
            v = honest(circuit, w, rhos)
            if list(w) == shares:
                Path(MALICE).write_text(then)
                v = (v - honest(circuit, clear, rhos) * inv_lam) % R
            return v

        ctx.log("test_malice", mode="pass", session=ctx.session)
        validation.residual = shifted
        try:
            yield
        finally:
            validation.residual = honest

    def prove_batch(
        self, ctx: RoundContext, batch: BatchRequest, submissions: Sequence[StoredSubmission]
    ) -> dict[str, Any]:
        if armed(("pass1",)) == "pass1":  # `pass2`'s second deviation: in the batch's re-check
            with self.colluding(ctx, submissions, then="none"):
                return super().prove_batch(ctx, batch, submissions)
        mode = armed(("c3", "c2", "c1"))
        if mode != "none":  # `cK`: a wrong round-2 C share in the next K batch attempts (not locatable)
            ctx.log("test_malice", mode=mode, session=ctx.session)
            from omniplus.prover.curve import G1_GEN, g1_add
            from omniplus.prover.mpc import groth16

            honest_c = groth16.finish_c
            made: list[bool] = []

            def bad_c(*args: Any, **kwargs: Any) -> Any:
                if not made:  # one attempt used up (a fast proof and its fallback are one attempt)
                    made.append(True)
                    Path(MALICE).write_text(f"c{int(mode[1]) - 1}" if mode != "c1" else "none")
                return g1_add(honest_c(*args, **kwargs), G1_GEN)

            groth16.finish_c = bad_c
            try:
                return super().prove_batch(ctx, batch, submissions)
            finally:
                groth16.finish_c = honest_c
        mode = armed(("b1", "b1-always"))
        if mode != "none":
            ctx.log("test_malice", mode=mode, session=ctx.session)
            from omniplus.prover.curve import g1_add
            from omniplus.prover.mpc import groth16

            honest = groth16.local_commitments

            def bad(*args: Any, **kwargs: Any) -> Any:
                A, B1, B2, LH = honest(*args, **kwargs)
                if mode == "b1":
                    disarm()
                return A, g1_add(B1, B1), B2, LH  # a B1 point that is not our share

            groth16.local_commitments = bad
            try:
                return super().prove_batch(ctx, batch, submissions)
            finally:
                groth16.local_commitments = honest
        return super().prove_batch(ctx, batch, submissions)


def make_malicious_engine(config: Any) -> MaliciousEngine:
    return MaliciousEngine(config)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    opts = DevnetOptions(
        servers=3,
        dos=4,
        invalid=1,
        seed=11,
        recv_timeout=RECV_TIMEOUT,
        engines={3: "test_network_malicious:make_malicious_engine"},
        pythonpath=(str(TESTS),),
    )
    net = Devnet(tmp_path_factory.mktemp("malice"), opts, progress=lambda m: print(m, file=sys.stderr))
    try:
        net.start()
        net.submit_dos()
        yield net
    finally:
        net.stop()


def events(text: str, event: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if f'"event":"{event}"' in line]


def test_a_malicious_server_is_named_and_the_market_still_pays(devnet: Devnet) -> None:
    net = devnet
    named_at: list[str] = []
    for mode, kind in (("withhold", "validate"), ("rush", "validate")):
        (net.root / MALICE).write_text(mode)
        proc = net.start_coordinator(batches=None, max_attempts=1, batch_wait=60)
        try:
            deadline_log = None
            import time

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                named = events(net.coordinator_log(), "server_named")
                if len(named) > len(named_at):
                    deadline_log = named[-1]
                    break
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(30)
        assert deadline_log is not None, net.coordinator_log()[-4000:]
        assert deadline_log["server"] == 3 and deadline_log["kind"] == kind
        assert sorted(deadline_log["accused_by"]) == [1, 2], deadline_log
        named_at.append(mode)
        for j in (1, 2):
            assert any(e["culprit"] == 3 for e in events(net.server_log(j), "peer_deviated")), net.server_log(j)
    assert net.market.batches_submitted() == 0  # nothing was paid while the server misbehaved

    # a wrong B1 point in the batch proof: located by the pairing check, then a clean retry pays
    (net.root / MALICE).write_text("b1")
    proc = net.start_coordinator(batches=1, max_attempts=3, batch_wait=0.5)
    assert proc.wait(300) == 0, net.coordinator_log()[-4000:]
    named = events(net.coordinator_log(), "server_named")
    assert any(e["server"] == 3 and e["kind"] == "batch" for e in named), named
    honest = sorted(d.address for d in net.dos if d.valid)
    assert net.market.batches_submitted() == 1
    pay = pay_by_score(net, [d for d in net.dos if d.valid])
    assert all(net.market.credit(a) == pay[a] > 0 for a in honest)
    assert all(net.market.credit(d.address) == 0 for d in net.dos if not d.valid)

    out = subprocess.run(
        [sys.executable, "-m", "omniplus", "coordinator", "--config", str(net.root / "coordinator.toml"),
         "--status"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "ALERT server 3 named as deviating by servers [1, 2]" in out.stdout, out.stdout
