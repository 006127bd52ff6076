"""Commit-then-reveal and echo checks name a deviating party (prover/mpc/audit.py), in-process.

Each test runs 3 parties on a LocalHub; party 3 deviates through a wrapper around its Net and
the honest parties must fail with a Deviation naming party 3 (never one of them)."""

from __future__ import annotations

import random

import pytest

from omniplus.prover.field import R
from omniplus.prover.mpc.audit import Deviation, _pack, _unpack, committed_broadcast
from omniplus.prover.mpc.net import LocalHub, LocalNet
from omniplus.prover.mpc.opening import open_scalars
from omniplus.prover.mpc.randomness import Rng, joint_coin
from omniplus.prover.shamir import share


class Cheater(LocalNet):
    """Party 3 with a `mode`: change its reveal, equivocate its commitment, or forge an echo."""

    def __init__(self, hub: LocalHub, party: int, mode: str) -> None:
        super().__init__(hub, party)
        self.mode = mode

    def broadcast(self, tag: str, payload: bytes) -> dict[int, bytes]:
        if self.mode == "rush" and tag.endswith("/reveal"):
            body, sig = _unpack(payload, 2, tag, self.party)
            payload = _pack(body[:32] + bytes([body[32] ^ 1]) + body[33:], sig)  # another value than committed
        if self.mode == "equivocate" and tag.endswith("/commit"):
            c, _ = _unpack(payload, 2, tag, self.party)
            from omniplus.prover.mpc.audit import statement

            other = bytes(32 - len(c)) + bytes(b ^ 0xFF for b in c)
            alt = _pack(other, self.sign(statement("commit", tag.removesuffix("/commit"), self.party, other)))
            return self.exchange(tag, {1: payload, 2: alt, 3: payload})
        if self.mode == "forge-echo" and tag.endswith("/echo"):
            parts = list(_unpack(payload, 12, tag, self.party))
            parts[1] = b"not a signature"
            payload = b"".join(_pack(*parts[4 * i : 4 * i + 4]) for i in range(3))
        return super().broadcast(tag, payload)


def run3(mode: str, body) -> dict[int, object]:  # type: ignore[no-untyped-def]
    import threading

    hub = LocalHub(3, timeout=20)
    out: dict[int, object] = {}

    def target(j: int) -> None:
        net = Cheater(hub, j, mode) if j == 3 else hub.net(j)
        try:
            out[j] = body(net)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out[j] = exc  # no hub.abort: on the real network each party fails on its own

    threads = [threading.Thread(target=target, args=(j,)) for j in (1, 2, 3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return out


def test_honest_committed_broadcast_returns_every_payload() -> None:
    out = run3("none", lambda net: committed_broadcast(net, "t", bytes([net.party]) * 5))
    assert all(out[j] == {k: bytes([k]) * 5 for k in (1, 2, 3)} for j in (1, 2, 3))


@pytest.mark.parametrize("mode", ["rush", "equivocate"])
def test_a_party_that_changes_or_splits_its_message_is_named(mode: str) -> None:
    rng = random.Random(5)
    secret = rng.randrange(R)
    shares = share(secret, 1, 3, Rng(b"x"))
    out = run3(mode, lambda net: open_scalars(net, "open", [shares[net.party - 1]], degree=1))
    for j in (1, 2):
        assert isinstance(out[j], Deviation), out[j]
        assert out[j].culprit == 3, out[j]


def test_a_coin_cannot_be_rushed() -> None:
    out = run3("rush", lambda net: joint_coin(net, "coin", Rng(), b"bind"))
    assert all(isinstance(out[j], Deviation) and out[j].culprit == 3 for j in (1, 2)), out


def test_a_forged_echo_names_the_echoer_not_the_sender() -> None:
    out = run3("forge-echo", lambda net: committed_broadcast(net, "t", b"hello"))
    for j in (1, 2):
        assert isinstance(out[j], Deviation) and out[j].culprit == 3, out[j]
