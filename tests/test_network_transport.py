"""Channels: the in-process network and gRPC over mutual TLS deliver the same messages, with the
same checks, and both run the protocol's own code (prover.mpc) unchanged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from omniplus.prover.field import R
from omniplus.prover.mpc.net import LocalHub, NetError
from omniplus.prover.mpc.opening import open_scalars
from omniplus.prover.shamir import share
from omniplus.servers.certs import make_network
from omniplus.servers.config import server_name
from omniplus.servers.pinning import fingerprint_of, pinned_channel, trust_bundle
from omniplus.servers.transport import (
    KIND_BYTES,
    KIND_FIELD,
    Channel,
    GrpcNetwork,
    InProcessHub,
    Mailbox,
    Message,
    Network,
    PeerServicer,
    TlsFiles,
    TransportError,
    TransportLimits,
    decode_field,
    encode_field,
    serve_peer_port,
)

N = 3
LIMITS = TransportLimits(
    max_message_bytes=4096, max_buffered_bytes=1 << 20, send_timeout=5.0, recv_timeout=10.0
)
SECRETS = [5, R - 7, 123456789]
_SHARINGS = [share(s, 1, N) for s in SECRETS]
SHARES = {j: [sh[j - 1] for sh in _SHARINGS] for j in range(1, N + 1)}


def tls_of(certs: Path, name: str) -> TlsFiles:
    """Party `name`'s identity; its mutual-TLS port accepts exactly the other servers' certificates."""
    others = [(certs / f"{server_name(j)}.pem").read_bytes() for j in range(1, N + 1) if server_name(j) != name]
    return TlsFiles.load(certs / f"{name}.pem", certs / f"{name}.key", roots=trust_bundle(others))


def pem_of(certs: Path, j: int) -> bytes:
    return (certs / f"{server_name(j)}.pem").read_bytes()


@pytest.fixture(scope="module")
def grpc_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three parties' Peer services on 127.0.0.1 (mTLS) and their GrpcNetworks."""
    certs = tmp_path_factory.mktemp("certs")
    make_network(certs, N, clients=("coordinator",))
    mailboxes = {j: Mailbox(LIMITS) for j in range(1, N + 1)}
    names = {fingerprint_of(pem_of(certs, j)): j for j in range(1, N + 1)}
    servers, ports = {}, {}
    nets: dict[int, Any] = {}
    for j in range(1, N + 1):
        # each Peer service tells its network the verified certificate of every sender (their
        # public keys check the signed statements of prover/mpc/audit.py)
        servicer = PeerServicer(mailboxes[j], names, LIMITS, lambda p, pem, j=j: nets[j].learn_peer(p, pem))
        servers[j], ports[j] = serve_peer_port("127.0.0.1:0", tls_of(certs, server_name(j)), servicer)
    peers = {j: (f"127.0.0.1:{ports[j]}", pem_of(certs, j)) for j in range(1, N + 1)}
    nets |= {
        j: GrpcNetwork(j, peers, tls_of(certs, server_name(j)), mailboxes[j], LIMITS) for j in range(1, N + 1)
    }
    yield {"certs": certs, "nets": nets, "ports": ports, "peers": peers}
    for nt in nets.values():
        nt.close()
    for s in servers.values():
        s.stop(0)


def run_all(nets: dict[int, Any], body: Callable[[Any], Any]) -> dict[int, Any]:
    """body(net) for every party in its own thread; re-raise the first failure."""
    out: dict[int, Any] = {}
    errors: list[BaseException] = []

    def go(j: int) -> None:
        try:
            out[j] = body(nets[j])
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(j,)) for j in nets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    if errors:
        raise errors[0]
    return out


def protocol_body(net: Any) -> Any:
    """What the protocol does with a Net: broadcast, private exchange, and a real prover.mpc opening."""
    me = net.party
    b = net.broadcast("hello", f"from {me}".encode())
    x = net.exchange("private", {j: bytes([me, j]) for j in range(1, net.n + 1)})
    opened = open_scalars(net, "open/secrets", SHARES[me], degree=1)
    return b, x, opened


def typed_body(ch: Channel) -> Any:
    """Point-to-point typed messages: every party sends field elements to the next one."""
    me, n = ch.party, ch.n
    nxt, prv = me % n + 1, (me - 2) % n + 1
    ch.send_field(nxt, 1, "ring", [me, R - 1, 0, me * 10**70])
    got = ch.recv_field(prv, 1, "ring", count=4)
    ch.send(nxt, 2, "raw", b"\x00" * me)
    return got, ch.recv(prv, 2, "raw")


def channels(nets: dict[int, Network], session: str) -> dict[int, Channel]:
    return {j: nt.channel(session) for j, nt in nets.items()}


def test_in_process_and_grpc_pass_the_same_messages(grpc_net: dict[str, Any]) -> None:
    hub = InProcessHub(N, LIMITS)
    local = run_all(channels({j: hub.network(j) for j in range(1, N + 1)}, "s1"), protocol_body)
    remote_ch = channels(grpc_net["nets"], "s1")
    remote = run_all(remote_ch, protocol_body)
    lhub = LocalHub(N, timeout=10)
    reference = run_all({j: lhub.net(j) for j in range(1, N + 1)}, protocol_body)
    assert local == remote == reference
    assert remote[1][2] == SECRETS  # the opening reconstructed the shared secrets
    assert remote[2][0] == {1: b"from 1", 2: b"from 2", 3: b"from 3"}
    assert remote[2][1] == {1: bytes([1, 2]), 2: bytes([2, 2]), 3: bytes([3, 2])}  # only what was meant for 2
    # accounting agrees too: bytes sent to others, and a broadcast, an exchange and a committed
    # opening (commit, reveal, echo) = 5 rounds
    local_ch = channels({j: hub.network(j) for j in range(1, N + 1)}, "s1-stats")
    run_all(local_ch, protocol_body)
    for j in range(1, N + 1):
        assert remote_ch[j].stats.bytes_sent == local_ch[j].stats.bytes_sent == lhub.bytes_sent[j]
        assert remote_ch[j].stats.rounds == 5


def test_typed_point_to_point(grpc_net: dict[str, Any]) -> None:
    hub = InProcessHub(N, LIMITS)
    local = run_all(channels({j: hub.network(j) for j in range(1, N + 1)}, "t1"), typed_body)
    remote = run_all(channels(grpc_net["nets"], "t1"), typed_body)
    assert local == remote
    assert remote[2] == ([1, R - 1, 0, 10**70], b"\x00")


def both(grpc_net: dict[str, Any]) -> list[dict[int, Network]]:
    hub = InProcessHub(N, LIMITS)
    return [{j: hub.network(j) for j in range(1, N + 1)}, grpc_net["nets"]]


@pytest.mark.parametrize("which", ["in-process", "grpc"])
def test_duplicate_message_is_refused(grpc_net: dict[str, Any], which: str) -> None:
    nets = both(grpc_net)[which == "grpc"]
    ch = nets[1].channel(f"dup-{which}")
    ch.send(2, 0, "once", b"a")
    with pytest.raises(TransportError) as err:
        ch.send(2, 0, "once", b"b")
    assert err.value.code == "ALREADY_EXISTS"
    assert nets[2].channel(f"dup-{which}").recv(1, 0, "once") == b"a"  # the first one stands
    with pytest.raises(TransportError):  # and a replay after it was consumed is refused too
        ch.send(2, 0, "once", b"a")


@pytest.mark.parametrize("which", ["in-process", "grpc"])
def test_limits_and_shapes(grpc_net: dict[str, Any], which: str) -> None:
    nets = both(grpc_net)[which == "grpc"]
    ch = nets[1].channel(f"lim-{which}")
    with pytest.raises(TransportError) as err:
        ch.send(2, 0, "big", b"\x00" * 5000)
    assert err.value.code == "RESOURCE_EXHAUSTED"
    with pytest.raises(TransportError) as err:
        ch.send(2, 0, "bad", R.to_bytes(32, "little"), KIND_FIELD, 1)
    assert err.value.code == "INVALID_ARGUMENT" and "canonical" in str(err.value)
    with pytest.raises(TransportError) as err:
        ch.send(2, 0, "len", b"\x00" * 33, KIND_FIELD, 1)
    assert err.value.code == "INVALID_ARGUMENT"
    with pytest.raises(TransportError) as err:
        ch.send(2, 0, "bad tag with spaces", b"")
    assert err.value.code == "INVALID_ARGUMENT"
    t0 = time.monotonic()
    with pytest.raises(TransportError) as err:
        ch.recv(3, 0, "never", timeout=0.3)
    assert err.value.code == "DEADLINE_EXCEEDED" and time.monotonic() - t0 < 5
    assert isinstance(err.value, NetError)  # protocol code that catches NetError catches ours


def test_abort_wakes_a_waiting_receiver(grpc_net: dict[str, Any]) -> None:
    ch = grpc_net["nets"][1].channel("abort-me")
    threading.Timer(0.2, ch.abort, args=("coordinator said stop",)).start()
    t0 = time.monotonic()
    with pytest.raises(TransportError) as err:
        ch.recv(2, 0, "x", timeout=30)
    assert err.value.code == "ABORTED" and time.monotonic() - t0 < 5
    with pytest.raises(TransportError) as err:  # a late message for the aborted session is refused
        grpc_net["nets"][2].channel("abort-me").send(1, 0, "x", b"late")
    assert err.value.code == "ABORTED"


def test_server_side_checks_on_raw_messages(grpc_net: dict[str, Any]) -> None:
    """A peer that skips its own checks still meets the receiver's: non-canonical, wrong length."""
    from omniplus.proto.gen import omniplus_pb2 as pb
    from omniplus.proto.gen import omniplus_pb2_grpc as pbg

    certs, port = grpc_net["certs"], grpc_net["ports"][1]
    tls = tls_of(certs, server_name(2))
    with pinned_channel(f"127.0.0.1:{port}", pem_of(certs, 1), client=(tls.key, tls.cert)) as chan:
        stub = pbg.PeerStub(chan)
        for msg, code in [
            (
                pb.PeerMessage(
                    session="raw", tag="a", kind=pb.PAYLOAD_KIND_FIELD, count=1, data=R.to_bytes(32, "little")
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                pb.PeerMessage(session="raw", tag="b", kind=pb.PAYLOAD_KIND_G1, count=1, data=b"\x00" * 63),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (pb.PeerMessage(session="raw", tag="c", kind=7, data=b""), grpc.StatusCode.INVALID_ARGUMENT),
            (
                pb.PeerMessage(session="", tag="d", kind=pb.PAYLOAD_KIND_BYTES),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                pb.PeerMessage(session="raw", tag="e", kind=pb.PAYLOAD_KIND_BYTES, data=b"\x00" * 10_000),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                stub.Exchange(msg, timeout=5)
            assert err.value.code() == code, (msg.tag, err.value.details())
        # a well-formed one is accepted and attributed to the certificate's owner (party 2)
        stub.Exchange(
            pb.PeerMessage(session="raw", tag="ok", kind=pb.PAYLOAD_KIND_BYTES, data=b"hi"), timeout=5
        )
    assert grpc_net["nets"][1].channel("raw").recv(2, 0, "ok", timeout=5) == b"hi"


def test_peer_identity_is_pinned(grpc_net: dict[str, Any]) -> None:
    """If party 2's address actually answers with server-3's certificate, nothing is delivered."""
    peers = dict(grpc_net["peers"])
    certs = grpc_net["certs"]
    peers[2] = (peers[3][0], pem_of(certs, 2))
    mb = Mailbox(LIMITS)
    lim = TransportLimits(LIMITS.max_message_bytes, LIMITS.max_buffered_bytes, send_timeout=1.0)
    nt = GrpcNetwork(1, peers, tls_of(certs, server_name(1)), mb, lim)
    try:
        with pytest.raises(TransportError) as err:
            nt.channel("pin").send(2, 0, "x", b"secret share")
        assert err.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    finally:
        nt.close()
    with pytest.raises(TransportError):
        grpc_net["nets"][3].channel("pin").recv(1, 0, "x", timeout=0.2)


def test_an_impostor_with_the_right_name_and_another_key_is_refused_both_ways(
    grpc_net: dict[str, Any], tmp_path: Path
) -> None:
    """A self-signed `server-2` certificate with another key (what anyone can make without a CA):
    party 1 does not deliver to it, and party 1's peer port does not accept its messages."""
    from omniplus.proto.gen import omniplus_pb2 as pb
    from omniplus.proto.gen import omniplus_pb2_grpc as pbg
    from omniplus.servers.certs import make_identity

    certs = grpc_net["certs"]
    fake = make_identity(tmp_path / "rogue", server_name(2))
    assert fingerprint_of(fake.cert.read_bytes()) != fingerprint_of(pem_of(certs, 2))
    # the impostor serves a Peer port with the right name; party 1 pins the real server-2
    rogue_mb = Mailbox(LIMITS)
    rogue_tls = TlsFiles.load(fake.cert, fake.key, roots=trust_bundle([pem_of(certs, 1)]))
    rogue_srv, rogue_port = serve_peer_port(
        "127.0.0.1:0", rogue_tls, PeerServicer(rogue_mb, {fingerprint_of(pem_of(certs, 1)): 1}, LIMITS))
    peers = dict(grpc_net["peers"])
    peers[2] = (f"127.0.0.1:{rogue_port}", pem_of(certs, 2))
    lim = TransportLimits(LIMITS.max_message_bytes, LIMITS.max_buffered_bytes, send_timeout=1.0)
    nt = GrpcNetwork(1, peers, tls_of(certs, server_name(1)), Mailbox(LIMITS), lim)
    try:
        with pytest.raises(TransportError) as err:
            nt.channel("imp").send(2, 0, "x", b"secret share")
        assert err.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
        assert rogue_mb.buffered_bytes == 0  # nothing reached the impostor
    finally:
        nt.close()
        rogue_srv.stop(0)
    # the impostor calls party 1's real peer port presenting its server-2 certificate
    with pinned_channel(f"127.0.0.1:{grpc_net['ports'][1]}", pem_of(certs, 1),
                        client=(fake.key.read_bytes(), fake.cert.read_bytes())) as chan:
        with pytest.raises(grpc.RpcError) as rpc:
            pbg.PeerStub(chan).Exchange(pb.PeerMessage(session="imp", tag="y", kind=pb.PAYLOAD_KIND_BYTES,
                                                       data=b"forged"), timeout=5)
        assert rpc.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    with pytest.raises(TransportError):
        grpc_net["nets"][1].channel("imp").recv(2, 0, "y", timeout=0.2)


def test_field_codec_roundtrip() -> None:
    vals = [0, 1, R - 1, 2**200]
    assert decode_field(encode_field(vals), 4) == vals
    with pytest.raises(TransportError):
        decode_field(b"\xff" * 32)
    with pytest.raises(TransportError):
        decode_field(b"\x00" * 31)


def test_a_flooding_peer_exhausts_only_its_own_quota() -> None:
    """Party 3 floods party 1 with empty messages and messages for sessions nobody runs; party 1's
    round with party 2 still completes, and what party 1 buffers stays bounded."""
    from omniplus.servers.channel import MESSAGE_OVERHEAD

    lim = TransportLimits(
        max_message_bytes=1 << 16, max_buffered_bytes=1 << 20, send_timeout=2.0, recv_timeout=5.0,
        max_pending_per_peer=100, max_messages_per_session=200, unopened_session_ttl=0.5,
        max_unopened_sessions_per_peer=4,
    )
    hub = InProcessHub(3, lim)
    flooder = hub.network(3)
    refused = 0
    for i in range(5000):  # empty messages are counted too
        try:
            flooder._deliver(1, f"junk-{i % 50}", 0, f"t{i}", Message(KIND_BYTES, 0, b""))
        except TransportError as exc:
            assert exc.code == "RESOURCE_EXHAUSTED"
            refused += 1
    mb = hub.mailboxes[1]
    assert refused >= 4900 and mb.refused[3] == refused
    assert mb.buffered_bytes <= 100 * MESSAGE_OVERHEAD
    # a real round between 1 and 2 is unaffected (2's quota is its own)
    ch1, ch2 = hub.network(1).channel("real"), hub.network(2).channel("real")
    ch2.send(1, 0, "x", b"hello")
    assert ch1.recv(2, 0, "x") == b"hello"
    # sessions no round opened expire: the flooder's pending messages are released
    time.sleep(0.6)
    ch2.send(1, 0, "y", b"again")
    assert mb.buffered_bytes <= 2 * (MESSAGE_OVERHEAD + 5)
    ch1.close()
    with pytest.raises(TransportError):
        ch2.send(1, 0, "z", b"late")  # a closed round refuses late messages


def test_a_send_reaches_a_peer_that_came_back_after_a_long_outage(grpc_net: dict[str, Any]) -> None:
    """gRPC's default reconnect back-off (1 s × 1.6^k, up to 120 s) left a channel waiting ~6.6 s
    after 9 s of outage, longer than a 2 s send_timeout; capped at 1 s the send goes through."""
    import socket

    from omniplus.servers.wire import RECONNECT_OPTIONS

    assert ("grpc.max_reconnect_backoff_ms", 1000) in RECONNECT_OPTIONS
    certs = grpc_net["certs"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    peers = dict(grpc_net["peers"])
    peers[2] = (f"127.0.0.1:{port}", pem_of(certs, 2))  # party 2 "restarts" on this port later
    lim = TransportLimits(LIMITS.max_message_bytes, LIMITS.max_buffered_bytes, send_timeout=2.0)
    nt = GrpcNetwork(1, peers, tls_of(certs, server_name(1)), Mailbox(LIMITS), lim)
    mb = Mailbox(LIMITS)
    try:
        with pytest.raises(TransportError):  # down: the channel starts backing off
            nt.channel("back").send(2, 0, "early", b"x")
        time.sleep(7.0)
        servicer = PeerServicer(mb, {fingerprint_of(pem_of(certs, 1)): 1}, LIMITS)
        srv, _ = serve_peer_port(f"127.0.0.1:{port}", tls_of(certs, server_name(2)), servicer)
        try:
            nt.channel("back").send(2, 0, "late", b"hello")  # within send_timeout of the restart
            assert mb.take("back", 0, "late", 1, timeout=5).data == b"hello"
        finally:
            srv.stop(0)
    finally:
        nt.close()


_SUB = [share(s, 1, 4) for s in (11, 22)]


def subset_body(net: Any) -> Any:
    """The protocol on a party subset: broadcast, exchange and an opening over `net.parties` only
    (the shares were dealt at points 1..4; the opening uses whichever are present)."""
    me = net.party
    b = net.broadcast("hello", f"from {me}".encode())
    x = net.exchange("private", {j: bytes([me, j]) for j in net.parties})
    return b, x, open_scalars(net, "open/sub", [sh[me - 1] for sh in _SUB], degree=1)


def test_a_channel_for_a_party_subset_talks_to_those_parties_only() -> None:
    """n = 4, round among {1, 2, 4}: sends reach only them, and a message from server 3 for that
    session is refused (before the round opened: dropped when it opens; after: refused at once)."""
    hub = InProcessHub(4, LIMITS)
    nets = {j: hub.network(j) for j in range(1, 5)}
    outsider = nets[3].channel("sub")  # server 3 believes it is in the round (all parties)
    outsider.send(1, 0, "early", b"x")  # arrives before server 1 opened the session
    chans = {j: nets[j].channel("sub", parties=(4, 1, 2)) for j in (1, 2, 4)}
    assert chans[1].parties == (1, 2, 4)
    out = run_all(chans, subset_body)
    assert out[1][0] == {1: b"from 1", 2: b"from 2", 4: b"from 4"}
    assert out[4][1] == {1: bytes([1, 4]), 2: bytes([2, 4]), 4: bytes([4, 4])}
    assert out[2][2] == [11, 22]
    assert all(chans[j].stats.per_peer.get(3, 0) == 0 for j in chans)  # nothing was sent to server 3
    with pytest.raises(TransportError) as err:
        outsider.send(2, 0, "late", b"y")
    assert err.value.code == "PERMISSION_DENIED" and "not in the party set" in str(err.value)
    with pytest.raises(TransportError, match="not in this round's party set"):
        chans[1].recv(3, 0, "early", timeout=0.1)
    with pytest.raises(TransportError) as err:  # the early message was dropped when the round opened
        hub.mailboxes[1].take("sub", 0, "early", 3, 0.1)
    assert err.value.code == "DEADLINE_EXCEEDED" and hub.mailboxes[1].refused[3] >= 1
    with pytest.raises(TransportError, match="not in this round's party set"):
        chans[1].send(3, 0, "to3", b"z")
    with pytest.raises(TransportError, match="does not include"):
        nets[3].channel("sub2", parties=(1, 2, 4))
    with pytest.raises(TransportError, match="twice"):
        nets[1].channel("sub3", parties=(1, 1, 2))


def test_grpc_refuses_a_peer_outside_the_session(grpc_net: dict[str, Any]) -> None:
    nets = grpc_net["nets"]
    a = nets[1].channel("grpc-sub", parties=(1, 2))
    nets[3].channel("grpc-sub").send(2, 0, "x", b"too early")  # dropped when 2 opens the session
    b = nets[2].channel("grpc-sub", parties=(1, 2))
    a.send(2, 0, "ok", b"hi")
    assert b.recv(1, 0, "ok") == b"hi"
    with pytest.raises(TransportError) as err:
        nets[3].channel("grpc-sub").send(2, 0, "y", b"no")
    assert "not in the party set" in str(err.value)
