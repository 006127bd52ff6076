"""Commit-then-reveal broadcasts with echo checks: a server that deviates is *named*.

`committed_broadcast(net, tag, payload)` replaces a plain broadcast wherever a party's message
must not depend on the others' (openings and coin contributions, PROTOCOL.md step 2):

1. commit: every party broadcasts c = H(tag, party, salt, payload) and its signature on c;
2. reveal: every party broadcasts salt || payload and its signature on H(salt || payload);
3. echo:   every party broadcasts what it received from each sender in 1 and 2 (hashes and
   signatures only, a few hundred bytes).

Every party then checks, for every sender j, all signed statements of j it has seen (its own
copy and every echoed copy): two different commitments signed by j (equivocation), a signed
reveal whose hash is not j's commitment (changed its mind after seeing the others), or a
malformed message all name j, with evidence any party can re-check (the signatures are
transferable). A party that echoes a statement with a bad signature names itself. Rushing
gains nothing: the commitment binds a party before any honest reveal is sent.

What this does not catch (and callers must): a *consistently* wrong value (committed, revealed
and echoed the same to all) — e.g. a share off its polynomial; that is the spare-point,
pairing and proof checks' job. A silent party is named by the transport's timeout; a party
that withholds from one peer only is named by that peer alone (the coordinator counts
accusations, see servers/coordinator.py).

Signing is the Net's business (`net.sign(data)`, `net.verify(party, data, sig)`; the gRPC
network uses the servers' TLS keys and pinned certificates). A Net without them (e.g. a test
double) gets unsigned statements: equivocation is then still detected but not attributable.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from omniplus.prover.mpc.net import Net, NetError


class Deviation(NetError):
    """A party broke the protocol; `culprit` is its index (the party that must be named)."""

    def __init__(self, culprit: int, message: str, evidence: str = "") -> None:
        super().__init__(f"party {culprit} deviated: {message}")
        self.culprit = culprit
        self.evidence = evidence


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(4, "big") + p)
    return h.digest()


def statement(kind: str, tag: str, party: int, digest: bytes) -> bytes:
    """What a party signs: (kind, tag, sender, digest), unambiguously encoded."""
    return _h(b"omniplus/mpc-statement/v1", kind.encode(), tag.encode(), party.to_bytes(4, "big"), digest)


def _signer(net: Net) -> tuple[Callable[[bytes], bytes], Callable[[int, bytes, bytes], bool]]:
    sign = getattr(net, "sign", None)
    verify = getattr(net, "verify", None)
    if sign is None or verify is None:
        return (lambda _d: b""), (lambda _j, _d, _s: True)
    return sign, verify


def _pack(*items: bytes) -> bytes:
    return b"".join(len(x).to_bytes(4, "big") + x for x in items)


def _unpack(data: bytes, count: int, what: str, culprit: int) -> list[bytes]:
    out, off = [], 0
    for _ in range(count):
        if off + 4 > len(data):
            raise Deviation(culprit, f"{what}: truncated message")
        size = int.from_bytes(data[off : off + 4], "big")
        off += 4
        if off + size > len(data):
            raise Deviation(culprit, f"{what}: truncated message")
        out.append(data[off : off + size])
        off += size
    if off != len(data):
        raise Deviation(culprit, f"{what}: {len(data) - off} trailing bytes")
    return out


def committed_broadcast(net: Net, tag: str, payload: bytes) -> dict[int, bytes]:
    """Broadcast `payload` so no party can adapt its own to the others' (see module doc).

    Returns {party: payload} for every party; raises Deviation naming a misbehaving sender."""
    sign, verify = _signer(net)
    me = net.party
    salt = secrets.token_bytes(32)
    commit = _h(tag.encode(), me.to_bytes(4, "big"), salt, payload)
    got = net.broadcast(f"{tag}/commit", _pack(commit, sign(statement("commit", tag, me, commit))))
    commits: dict[int, tuple[bytes, bytes]] = {}
    for j, msg in sorted(got.items()):
        c, sig = _unpack(msg, 2, f"{tag} commitment", j)
        if len(c) != 32:
            raise Deviation(j, f"{tag}: a commitment must be 32 bytes, got {len(c)}")
        if not verify(j, statement("commit", tag, j, c), sig):
            raise Deviation(j, f"{tag}: commitment signature does not verify")
        commits[j] = (c, sig)

    got = net.broadcast(f"{tag}/reveal", _pack(salt + payload, sign(statement("reveal", tag, me, commit))))
    reveals: dict[int, tuple[bytes, bytes]] = {}
    payloads: dict[int, bytes] = {}
    found: Deviation | None = None  # raised after the echo, so every honest party sees the evidence
    for j, msg in sorted(got.items()):
        try:
            body, sig = _unpack(msg, 2, f"{tag} reveal", j)
            if len(body) < 32:
                raise Deviation(j, f"{tag}: a reveal must start with a 32-byte salt")
            digest = _h(tag.encode(), j.to_bytes(4, "big"), body[:32], body[32:])
            if not verify(j, statement("reveal", tag, j, digest), sig):
                raise Deviation(j, f"{tag}: reveal signature does not verify")
            reveals[j] = (digest, sig)
            if digest != commits[j][0]:
                raise Deviation(
                    j, f"{tag}: the revealed value does not match its commitment",
                    evidence=f"commit={commits[j][0].hex()} reveal={digest.hex()}",
                )
            payloads[j] = body[32:]
        except Deviation as exc:
            found = found or exc

    echo = b"".join(
        _pack(commits[j][0], commits[j][1], *reveals.get(j, (b"", b""))) for j in sorted(commits)
    )
    got = net.broadcast(f"{tag}/echo", echo)
    for k, msg in sorted(got.items()):
        if k == me:
            continue
        parts = _unpack(msg, 4 * len(commits), f"{tag} echo", k)
        for i, j in enumerate(sorted(commits)):
            c, csig, r, rsig = parts[4 * i : 4 * i + 4]
            signed = verify(j, statement("commit", tag, j, c), csig) and (
                not r or verify(j, statement("reveal", tag, j, r), rsig)
            )
            if not signed:
                raise Deviation(k, f"{tag}: echoed a statement of party {j} with a bad signature")
            if c != commits[j][0] or (r and r != c):
                # both versions carry j's valid signatures: j told different parties different things
                raise Deviation(
                    j, f"{tag}: sent different messages to parties {me} and {k} (equivocation)",
                    evidence=f"to {me}: {commits[j][0].hex()}; to {k}: {c.hex()}/{r.hex()}",
                )
    if found is not None:
        raise found
    return payloads


class EcdsaKeys:
    """P-256 ECDSA signing for `Net.sign`/`Net.verify`: this party's key and the peers' public keys.

    The gRPC network builds it from the server's TLS key and its peers' certificates (so the
    identity that authenticates a channel also signs its statements); in-process hubs make
    fresh keys."""

    def __init__(self, private_key: object, public_keys: dict[int, object]) -> None:
        self.private_key = private_key
        self.public_keys = dict(public_keys)

    @staticmethod
    def fresh(n: int) -> dict[int, EcdsaKeys]:
        from cryptography.hazmat.primitives.asymmetric import ec

        keys = {j: ec.generate_private_key(ec.SECP256R1()) for j in range(1, n + 1)}
        pubs = {j: k.public_key() for j, k in keys.items()}
        return {j: EcdsaKeys(keys[j], pubs) for j in keys}

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        der = self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # fixed width: message sizes do not vary

    def verify(self, party: int, data: bytes, sig: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        key = self.public_keys.get(party)
        if key is None or len(sig) != 64:
            return False
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True
