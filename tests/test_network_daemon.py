"""The server daemon as a real process over TLS on 127.0.0.1: health, Submit checks, persistence,
peer/control authentication, SIGTERM. Registration uses the dev allow-list (see
test_network_registry.py for the on-chain check)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from network_fixtures import (
    CHAIN_ID,
    MARKET,
    LocalNet,
    control_stub,
    do_key,
    health_status,
    make_local_net,
)

from omniplus.core.errors import InputError
from omniplus.proto.gen import omniplus_pb2 as pb  # noqa: E402
from omniplus.proto.gen import omniplus_pb2_grpc as pbg  # noqa: E402
from omniplus.prover.field import R
from omniplus.servers import signing
from omniplus.servers.certs import make_identity
from omniplus.servers.client import TaskRef, build_request, public_channel, send, status
from omniplus.servers.pinning import pinned_channel

TASK = TaskRef.parse(MARKET, CHAIN_ID)
WIRES = [3, 4, 5, 9]
SHARES = [11, 22, 33, R - 1]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    n = make_local_net(tmp_path_factory.mktemp("net"), limits={"max_submit_bytes": 64 * 1024})
    n.start(1)
    yield n
    n.stop_all()


def stored(net: LocalNet, j: int = 1) -> list[tuple[Any, ...]]:
    """Rows of server j's submissions table, read straight from its sqlite file."""
    db = sqlite3.connect(f"file:{net.root / f'state/server-{j}/server.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT do_address, wires, shares, state FROM submissions ORDER BY seq").fetchall()
    finally:
        db.close()


def nonces(net: LocalNet, j: int = 1) -> int:
    db = sqlite3.connect(f"file:{net.root / f'state/server-{j}/server.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0]
    finally:
        db.close()


def test_health_serving_on_both_ports(net: LocalNet) -> None:
    assert health_status(net.public(1), 1, net.pins) == "SERVING"
    assert health_status(net.public(1), 1, net.pins, service="omniplus.v1.Submission") == "SERVING"
    _, cert, key = net.client_tls("coordinator")
    assert health_status(net.peer(1), 1, net.pins, service="omniplus.v1.Peer", client=(cert, key)) == "SERVING"


def test_submission_survives_kill_and_restart(net: LocalNet) -> None:
    req = build_request(do_key(1), TASK, 1, 3, 1, WIRES, SHARES)
    out = send(net.public(1), 1, req, net.pins)
    assert out.accepted, out
    assert status(net.public(1), 1, TASK, do_key(1), net.pins).state == "accepted"
    net.kill(1)  # SIGKILL: no chance to flush anything that was not already on disk
    net.start(1)
    st = status(net.public(1), 1, TASK, do_key(1), net.pins)
    assert st.state == "accepted" and st.batch_index == -1
    rows = [r for r in stored(net) if bytes(r[0]) == req.do_address]
    assert len(rows) == 1 and bytes(rows[0][2]) == req.shares
    # after the restart an identical resend (the DO lost the reply) is answered as stored; the
    # same nonce with anything else is a replay; and the DO cannot submit a second update
    again = send(net.public(1), 1, req, net.pins)
    assert again.accepted and again.message == "already stored", again
    assert len([r for r in stored(net) if bytes(r[0]) == req.do_address]) == 1
    nonce_reuse = send(net.public(1), 1, build_request(do_key(1), TASK, 1, 3, 1, WIRES, [1, 2, 3, 4],
                                                     nonce=bytes(req.nonce)), net.pins)
    assert nonce_reuse.code == "ALREADY_EXISTS" and "nonce" in nonce_reuse.message
    other = send(net.public(1), 1, build_request(do_key(1), TASK, 1, 3, 1, WIRES, [1, 2, 3, 4]), net.pins)
    assert other.code == "ALREADY_EXISTS" and "duplicate submission" in other.message


def test_one_daemon_per_state_directory(net: LocalNet) -> None:
    """A second daemon on server 1's state directory exits with a clear error (the lock file)."""
    net.wait_serving(1)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "omniplus", "server", "--config", str(net.configs[0])],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "in use by pid" in out.stderr and "one daemon per state directory" in out.stderr, out.stderr


def test_a_second_daemon_on_a_taken_port_does_not_start(net: LocalNet, tmp_path: Path) -> None:
    """gRPC's port sharing is off: a daemon on server 1's ports (another state directory) fails
    to bind instead of receiving some of server 1's calls."""
    import subprocess
    import sys
    import tomllib

    from omniplus.servers.config import write_config

    net.wait_serving(1)
    data = tomllib.loads(net.configs[0].read_text())
    data["storage"] = str(tmp_path / "other-state")
    cfg = write_config(net.configs[0].with_name("server-1-twin.toml"), data)
    out = subprocess.run([sys.executable, "-m", "omniplus", "server", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "cannot bind" in out.stderr, out.stderr
    net.wait_serving(1)  # the first daemon is unaffected


def test_high_s_and_v_0_1_signatures_are_refused() -> None:
    digest = signing.submission_digest(
        signing.SubmissionHeader(TASK.chain_id, TASK.market, b"\x01" * 20, 1, 3, 1, b"\x00" * 32, 1), b"\x00" * 32
    )
    sig = signing.sign_digest(digest, do_key(1))
    r, s_, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high = r + (signing.SECP256K1_N - s_).to_bytes(32, "big") + bytes([55 - v])  # the same signature, flipped
    with pytest.raises(InputError, match="high-s"):
        signing.recover_signer(digest, high)
    with pytest.raises(InputError, match="27 or 28"):
        signing.recover_signer(digest, sig[:64] + bytes([v - 27]))
    assert signing.recover_signer(digest, sig) == signing.address_of(do_key(1))


def _resign(req: Any, key: str) -> Any:
    """Re-sign a (possibly altered) request so only the intended defect remains."""
    header = signing.SubmissionHeader(
        chain_id=req.chain_id,
        market=req.market,
        do_address=req.do_address,
        server_index=req.server_index,
        n_servers=req.n_servers,
        threshold=req.threshold,
        nonce=req.nonce,
        expiry=req.expiry,
    )
    digest = signing.submission_digest(header, signing.payload_hash(list(req.wires), req.shares))
    req.signature = signing.sign_digest(digest, key)
    return req


def _mut(resign: bool = True, **fields: Any) -> Callable[[Any], Any]:
    """Change fields, then re-sign (unless the change breaks the signed header's own shape)."""

    def f(req: Any) -> Any:
        for k, v in fields.items():
            if k == "wires":
                del req.wires[:]
                req.wires.extend(v)
            else:
                setattr(req, k, v)
        return _resign(req, do_key(2)) if resign else req

    return f


def _noncanonical(req: Any) -> Any:
    req.shares = req.shares[:32] + R.to_bytes(32, "little") + req.shares[64:]
    return _resign(req, do_key(2))


def _tampered(req: Any) -> Any:
    req.shares = (1234).to_bytes(32, "little") + req.shares[32:]  # after signing
    return req


def _other_signer(req: Any) -> Any:
    return _resign(req, do_key(3))


def _garbage_sig(req: Any) -> Any:
    req.signature = b"\x01" * 65
    return req


BAD = [
    ("version", _mut(version=2), "INVALID_ARGUMENT", "unsupported protocol version"),
    ("short payload", _mut(shares=b"\x01" * 100), "INVALID_ARGUMENT", "wrong share payload length"),
    ("no wires", _mut(wires=[], shares=b""), "INVALID_ARGUMENT", "empty block"),
    ("repeated wire", _mut(wires=[3, 3, 5, 9]), "INVALID_ARGUMENT", "distinct"),
    ("wire zero", _mut(wires=[0, 4, 5, 9]), "INVALID_ARGUMENT", "wire 0"),
    ("non-canonical", _noncanonical, "INVALID_ARGUMENT", "not a canonical field element"),
    ("wrong market", _mut(market=b"\xcd" * 20), "INVALID_ARGUMENT", "wrong task"),
    ("wrong chain", _mut(chain_id=1), "INVALID_ARGUMENT", "wrong task"),
    ("short address", _mut(False, market=b"\xab" * 19), "INVALID_ARGUMENT", "20-byte"),
    ("other server's share", _mut(server_index=2), "INVALID_ARGUMENT", "share for server 2 sent to server 1"),
    ("wrong n", _mut(n_servers=5), "INVALID_ARGUMENT", "sharing parameters"),
    ("wrong t", _mut(threshold=2), "INVALID_ARGUMENT", "sharing parameters"),
    ("short nonce", _mut(False, nonce=b"\x01" * 8), "INVALID_ARGUMENT", "nonce"),
    ("expired", _mut(expiry=int(time.time()) - 10), "INVALID_ARGUMENT", "expired"),
    ("far expiry", _mut(expiry=int(time.time()) + 10**8), "INVALID_ARGUMENT", "expiry"),
    ("signed by someone else", _other_signer, "UNAUTHENTICATED", "not by do_address"),
    ("tampered after signing", _tampered, "UNAUTHENTICATED", "bad signature"),
    ("garbage signature", _garbage_sig, "UNAUTHENTICATED", "bad signature"),
    ("short signature", _mut(False, signature=b"\x01" * 64), "UNAUTHENTICATED", "65 bytes"),
    ("point shares to an engine without them", _mut(point_shares=b"\x00" * 320), "INVALID_ARGUMENT",
     "takes no point shares"),
]


@pytest.mark.parametrize("name,mutate,code,text", BAD, ids=[b[0] for b in BAD])
def test_bad_submission_is_refused_and_nothing_stored(
    net: LocalNet, name: str, mutate: Callable[[Any], Any], code: str, text: str
) -> None:
    before, before_nonces = stored(net), nonces(net)
    req = mutate(build_request(do_key(2), TASK, 1, 3, 1, WIRES, SHARES))
    out = send(net.public(1), 1, req, net.pins)
    assert (out.code, text in out.message) == (code, True), out
    assert stored(net) == before and nonces(net) == before_nonces
    assert status(net.public(1), 1, TASK, do_key(2), net.pins).state == "unknown"


def test_unregistered_do_is_refused(net: LocalNet) -> None:
    before = stored(net)
    out = send(net.public(1), 1, build_request(do_key(9), TASK, 1, 3, 1, WIRES, SHARES), net.pins)
    assert out.code == "PERMISSION_DENIED" and "not registered" in out.message
    assert stored(net) == before


def test_oversized_message_is_refused(net: LocalNet) -> None:
    before = stored(net)
    m = 3000  # 96 kB of shares against the configured 64 KiB limit
    out = send(net.public(1), 1, build_request(do_key(2), TASK, 1, 3, 1, range(1, m + 1), [7] * m), net.pins)
    assert out.code == "RESOURCE_EXHAUSTED", out
    assert stored(net) == before


def test_malformed_bytes_are_refused(net: LocalNet) -> None:
    before = stored(net)
    with public_channel(net.public(1), 1, net.pins) as ch:
        raw = ch.unary_unary("/omniplus.v1.Submission/Submit")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x52\x05ab", timeout=10)  # field 10 claims 5 bytes, has 2
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed SubmitRequest" in err.value.details()
    assert stored(net) == before


def test_wrong_task_in_status(net: LocalNet) -> None:
    other = TaskRef.parse("0x" + "cd" * 20, CHAIN_ID)
    with pytest.raises(grpc.RpcError) as err:
        status(net.public(1), 1, other, do_key(1), net.pins)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_share_cannot_go_to_the_wrong_server(net: LocalNet) -> None:
    """The client pins server j's certificate: server 1's address cannot receive share 2."""
    out = send(net.public(1), 2, build_request(do_key(2), TASK, 2, 3, 1, WIRES, SHARES), net.pins)
    assert out.code == "UNAUTHENTICATED" and "not the pinned" in out.message, out
    assert status(net.public(1), 1, TASK, do_key(2), net.pins).state == "unknown"


def _peer_call(net: LocalNet, cert: bytes | None, key: bytes | None) -> grpc.RpcError:
    pem = (net.certs / "server-1.pem").read_bytes()
    with pinned_channel(net.peer(1), pem, client=(key, cert) if cert is not None and key is not None else None) as ch:
        stub = pbg.PeerStub(ch)
        msg = pb.PeerMessage(session="s", round=0, tag="x", kind=pb.PAYLOAD_KIND_BYTES, data=b"hi")
        with pytest.raises(grpc.RpcError) as err:
            stub.Exchange(msg, timeout=5)
    return err.value


def test_peer_service_needs_a_server_certificate(net: LocalNet, tmp_path: Path) -> None:
    # no client certificate: the mutual-TLS handshake fails
    assert _peer_call(net, None, None).code() == grpc.StatusCode.UNAVAILABLE
    # a self-signed certificate with a server's name and another key: refused at the handshake
    rogue = make_identity(tmp_path / "rogue", "server-2")
    err = _peer_call(net, rogue.cert.read_bytes(), rogue.key.read_bytes())
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    # an outsider's certificate is not pinned by anyone: refused at the handshake
    _, cert, key = net.client_tls("outsider")
    assert _peer_call(net, cert, key).code() == grpc.StatusCode.UNAVAILABLE
    # the coordinator's is pinned, but for Control only: Peer refuses it by fingerprint
    _, cert, key = net.client_tls("coordinator")
    err = _peer_call(net, cert, key)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "not a server" in err.details()


def test_control_needs_a_coordinator_certificate(net: LocalNet) -> None:
    _, cert, key = net.client_tls("outsider")  # pinned by nobody: the handshake fails
    ch, stub = control_stub(net.peer(1), 1, net.pins, cert, key)
    with ch, pytest.raises(grpc.RpcError) as err:
        stub.RoundStatus(pb.RoundStatusRequest(session="x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    _, cert, key = net.client_tls("server-2")  # a pinned peer, but not in coordinator_certs
    ch, stub = control_stub(net.peer(1), 1, net.pins, cert, key)
    with ch, pytest.raises(grpc.RpcError) as err:
        stub.RoundStatus(pb.RoundStatusRequest(session="x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "coordinator_certs" in err.value.details()
    ch, stub = control_stub(net.peer(1), 1, net.pins, None, None)
    with ch, pytest.raises(grpc.RpcError) as err:
        stub.RoundStatus(pb.RoundStatusRequest(session="x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    _, cert, key = net.client_tls("coordinator")
    ch, stub = control_stub(net.peer(1), 1, net.pins, cert, key)
    with ch:
        assert stub.RoundStatus(pb.RoundStatusRequest(session="x"), timeout=5).state == "unknown"
        with pytest.raises(grpc.RpcError) as err:  # this network has no round engine configured
            stub.StartValidation(pb.StartValidationRequest(session="v1"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    n = make_local_net(tmp_path)
    try:
        n.start(2)
        assert n.terminate(2) == 0
        log = n.log(2)
        assert '"event":"signal"' in log and '"event":"stopped"' in log
    finally:
        n.stop_all()


def test_status_answers_only_the_signing_do_about_itself(net: LocalNet) -> None:
    """Status: unsigned, signed by another DO, replayed, stale, for another server: all refused."""
    from omniplus.servers.client import status_request

    assert send(net.public(1), 1, build_request(do_key(3), TASK, 1, 3, 1, WIRES, SHARES), net.pins).accepted
    assert status(net.public(1), 1, TASK, do_key(3), net.pins).state == "accepted"
    _, pbg_ = pb, pbg

    def ask(req: Any) -> grpc.RpcError:
        with public_channel(net.public(1), 1, net.pins) as ch, pytest.raises(grpc.RpcError) as err:
            pbg_.SubmissionStub(ch).Status(req, timeout=5)
        return err.value

    do3 = signing.address_of(do_key(3))
    unsigned = pb.StatusRequest(chain_id=CHAIN_ID, market=TASK.market, do_address=do3)
    assert ask(unsigned).code() == grpc.StatusCode.UNAUTHENTICATED
    # DO 4 signs a request about DO 3: refused, nothing about DO 3 is told
    other = status_request(do_key(4), TASK, 1)
    other.do_address = do3
    err = ask(other)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "only about itself" in err.details()
    # a replay of a valid request
    req = status_request(do_key(3), TASK, 1)
    with public_channel(net.public(1), 1, net.pins) as ch:
        assert pbg.SubmissionStub(ch).Status(req, timeout=5).state == "accepted"
    err = ask(req)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "replayed" in err.details()
    # stale, and for another server
    assert ask(status_request(do_key(3), TASK, 1, timestamp=int(time.time()) - 3600)).code() == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert "for server 2" in ask(status_request(do_key(3), TASK, 2)).details()
    # a high-s twin of a valid signature is refused
    req = status_request(do_key(3), TASK, 1)
    sig = bytes(req.signature)
    s = int.from_bytes(sig[32:64], "big")
    req.signature = sig[:32] + (signing.SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    err = ask(req)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "high-s" in err.details()


def test_a_do_refuses_an_impostor_with_the_right_name_and_another_key(net: LocalNet, tmp_path: Path) -> None:
    """A TLS server presenting a self-signed `server-1` certificate with another key gets no share:
    the DO reads its certificate, sees another fingerprint than the pinned one, and sends nothing."""
    from concurrent import futures

    from omniplus.servers.wire import TlsFiles, public_server_credentials

    fake = make_identity(tmp_path / "imp", "server-1")
    calls: list[bytes] = []
    srv = grpc.server(futures.ThreadPoolExecutor(2))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("omniplus.v1.Submission", {
        "Submit": grpc.unary_unary_rpc_method_handler(lambda raw, ctx: calls.append(raw) or b"",
                                                      request_deserializer=None, response_serializer=None)}),))
    port = srv.add_secure_port("127.0.0.1:0", public_server_credentials(TlsFiles.load(fake.cert, fake.key)))
    srv.start()
    try:
        out = send(f"127.0.0.1:{port}", 1, build_request(do_key(5), TASK, 1, 3, 1, WIRES, SHARES), net.pins)
        assert out.code == "UNAUTHENTICATED" and "not the pinned" in out.message, out
        assert calls == []
    finally:
        srv.stop(0)
    # the real server 1 with the pinned certificate takes the same DO's share
    assert send(net.public(1), 1, build_request(do_key(5), TASK, 1, 3, 1, WIRES, SHARES), net.pins).accepted
