"""Fuzz every RPC of a real daemon: mutated Submit, Status, Peer.Exchange and Control messages over
loopback TLS, in a bounded loop (OMNIPLUS_FUZZ_MESSAGES, default 10,000). Three in-process daemons
with the real MPC engine; the fuzzer sends raw bytes (so malformed protobuf reaches our parser, not
just gRPC's) with the credentials each service wants (none for Submission, server-2's certificate
for Peer, the coordinator's for Control). Nothing may crash (a handler exception would come back as
UNKNOWN or INTERNAL), every daemon must answer health afterwards, and nothing may be stored: no
submission, no round, no MPC message left buffered."""

from __future__ import annotations

import os
import random
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from network_fixtures import LocalNet, do_key, health_status, make_local_net

from omniplus.proto.gen import omniplus_pb2 as pb
from omniplus.servers.client import TaskRef, build_request, public_channel
from omniplus.servers.config import load_config, server_name, write_config
from omniplus.servers.daemon import Daemon, JsonLog
from omniplus.servers.pinning import pinned_channel

COUNT = int(os.environ.get("OMNIPLUS_FUZZ_MESSAGES", "10000"))
ENGINE = "omniplus.servers.mpc_engine:make_engine"


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNet, list[Daemon], Any]]:
    from omniplus.circuits.params import CircuitParams
    from omniplus.prover.mpc.layout import load_layout
    from omniplus.prover.setup_cache import cached_setup

    setup = cached_setup(CircuitParams(batch=4, dims=8, bits=6, norm_bound=2000).check())[0]
    root = tmp_path_factory.mktemp("fuzz")
    ln = make_local_net(root, allow=[], engine=ENGINE)  # nobody registered: nothing can be stored
    for c in ln.configs:
        data = tomllib.loads(c.read_text())
        data["prover"]["setup"] = str(setup.path)
        write_config(c, data)
    ds = [Daemon(load_config(c), log=JsonLog(j, stream=open(root / f"d{j}.log", "a"), level="error"))  # noqa: SIM115
          for j, c in enumerate(ln.configs, start=1)]
    for d in ds:
        d.start()
    try:
        yield ln, ds, load_layout(setup)
    finally:
        for d in ds:
            d.stop(grace=1)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four byte-level mutations: flips, random bytes, cuts, splices, varint-ish junk."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[i % len(b)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i % len(b)] = rng.randrange(256)
        elif op == 2:
            del b[i:i + rng.randint(1, 64)]
        elif op == 3:
            b[i:i] = rng.randbytes(rng.randint(1, 32))
        elif op == 4 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 128)]
        elif op == 5:
            b[i:i] = bytes([rng.choice([0x08, 0x10, 0x1A, 0x22, 0x4A, 0x52, 0x62, 0xFA]), 0xFF, 0xFF, 0xFF, 0x0F])
        else:
            b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def test_fuzz_every_rpc(daemons: tuple[LocalNet, list[Daemon], Any]) -> None:
    ln, ds, layout = daemons
    rng = random.Random(20261201)
    task = TaskRef.parse("0x" + "ab" * 20, 31337)
    wires = list(layout.slot_wires[0])
    submits = [build_request(do_key(i), task, 1, 3, 1, wires, [rng.randrange(1 << 250) for _ in wires])
               .SerializeToString() for i in range(1, 4)]
    status = pb.StatusRequest(chain_id=31337, market=task.market, do_address=bytes(20)).SerializeToString()
    peer = [pb.PeerMessage(session=f"validate-0-{k}", round=1, tag="open", kind=k % 5, count=2,
                           data=rng.randbytes(64)).SerializeToString() for k in range(4)]
    dos = [bytes.fromhex(do_key(i)[2:42]) for i in range(1, 4)]
    control = {
        "StartValidation": pb.StartValidationRequest(session="validate-0-aa", do_addresses=dos),
        "StartBatch": pb.StartBatchRequest(session="batch-0-bb", batch_index=0, do_addresses=dos,
                                           params=b'{"chain_id": 31337, "payees": []}'),
        "Abort": pb.AbortRequest(session="validate-0-aa", reason="fuzz"),
        "RoundStatus": pb.RoundStatusRequest(session="validate-0-aa"),
        "Submissions": pb.SubmissionsRequest(since=0, limit=10),
    }
    pins, coord_cert, coord_key = ln.client_tls()
    s2_cert = (ln.certs / f"{server_name(2)}.pem").read_bytes()
    s2_key = (ln.certs / f"{server_name(2)}.key").read_bytes()

    def mtls(j: int, cert: bytes, key: bytes) -> grpc.Channel:
        pem = (ln.certs / f"{server_name(j)}.pem").read_bytes()
        return pinned_channel(ln.peer(j), pem, client=(key, cert))

    chans = {("pub", j): public_channel(ln.public(j), j, pins) for j in (1, 2, 3)}
    chans |= {("peer", j): mtls(j, s2_cert, s2_key) for j in (1, 3)}
    chans |= {("ctl", j): mtls(j, coord_cert, coord_key) for j in (1, 2, 3)}

    def raw(kind: str, j: int, method: str) -> Callable[..., Any]:
        return chans[(kind, j)].unary_unary(method, request_serializer=None, response_deserializer=None)

    targets: list[tuple[str, Callable[..., Any], bytes]] = []
    for j in (1, 2, 3):
        targets += [(f"Submit@{j}", raw("pub", j, "/omniplus.v1.Submission/Submit"), s) for s in submits]
        targets.append((f"Status@{j}", raw("pub", j, "/omniplus.v1.Submission/Status"), status))
        for name, msg in control.items():
            targets.append((f"Control.{name}@{j}", raw("ctl", j, f"/omniplus.v1.Control/{name}"),
                            msg.SerializeToString()))
    for j in (1, 3):
        targets += [(f"Peer@{j}", raw("peer", j, "/omniplus.v1.Peer/Exchange"), m) for m in peer]
    from omniplus.prover.field import R

    def structured_submit() -> bytes:
        """A correctly signed request with one field off (so it gets past the signature check)."""
        ws, vals = list(wires), [rng.randrange(R) for _ in wires]
        kw: dict[str, Any] = {}
        n, t, j = 3, 1, 1
        pick = rng.randrange(7)
        if pick == 0:
            vals[rng.randrange(len(vals))] = R + rng.randrange(1 << 20)  # not canonical
            vals = [v % (1 << 256) for v in vals]
        elif pick == 1:
            ws = ws[: rng.randrange(len(ws))] or [0]
            vals = vals[: len(ws)]
        elif pick == 2:
            n, t = rng.choice([(1, 0), (2, 1), (5, 2), (3, 0)])
        elif pick == 3:
            j = rng.choice([0, 2, 3, 2**31])
        elif pick == 4:
            kw["expiry"] = rng.choice([0, 1, int(time.time()) - 5, 2**63])
        elif pick == 5:
            ws = [w + 1 for w in ws]
        req = build_request(do_key(rng.randrange(1, 1000)), task, j, n, t, ws,
                            [v % (1 << 256) for v in vals], **kw)
        return req.SerializeToString()

    jobs = []
    submit1 = raw("pub", 1, "/omniplus.v1.Submission/Submit")
    for _ in range(COUNT):
        if rng.random() < 0.1:
            jobs.append(("Submit(signed)@1", submit1, structured_submit()))
            continue
        name, call, base = rng.choice(targets)
        jobs.append((name, call, mutate(rng, base)))
    codes: Counter[str] = Counter()
    bad: list[str] = []

    def send(job: tuple[str, Callable[..., Any], bytes]) -> None:
        name, call, data = job
        try:
            call(data, timeout=10)
            codes["OK"] += 1
        except grpc.RpcError as exc:
            code = exc.code().name
            codes[code] += 1
            if code in ("UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED", "UNAVAILABLE"):
                bad.append(f"{name}: {code}: {exc.details()} <- {data[:80].hex()}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, jobs))
    seconds = time.monotonic() - t0
    for ch in chans.values():
        ch.close()
    print(f"\nfuzzed {COUNT} messages in {seconds:.1f}s ({COUNT / seconds:.0f}/s): {dict(codes)}", file=sys.stderr)
    assert sum(codes.values()) == COUNT
    assert not bad, bad[:10]
    for j, d in enumerate(ds, start=1):
        assert health_status(ln.public(j), j, pins) == "SERVING"
        assert d.storage.count_submissions() == 0 and d.storage.rounds() == []
        assert d.mailbox.buffered_bytes <= d.limits.max_buffered_bytes
    # Peer messages for sessions no round opened are dropped after their TTL; nothing else stays
    for d in ds:
        d.mailbox._expire(time.monotonic() + d.limits.unopened_session_ttl + 1)
        assert d.mailbox.buffered_bytes == 0
