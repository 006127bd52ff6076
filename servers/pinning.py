"""Certificate pinning: a party accepts exactly the certificate whose sha256 (of the DER) it was
told to expect, no CA in between.

gRPC's Python API has no verification callback, so pinning is done in two steps that together
accept exactly the pinned certificate:

1. `pinned_certificate` opens a plain TLS connection (no verification), takes the certificate
   the server presents and compares its sha256 with the pin (from the task's on-chain committee
   or the operator's config). A mismatch is refused here, before any byte of ours is sent
   (`PinMismatch`, one line naming both fingerprints).
2. The gRPC channel then trusts that certificate alone as its root (it is self-signed,
   servers/certs.py). A server that swaps certificates between the two steps fails the gRPC
   handshake: only the holder of the pinned key can complete it.

Inbound mutual TLS works the same way round: a server's peer port trusts the concatenation of
the pinned certificates of its peers and coordinators as roots, and a handler identifies the
caller by the sha256 of the certificate it presented (`caller_fingerprint`), never by its name.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from omniplus.core.errors import InputError


def fingerprint_of(pem: bytes) -> bytes:
    """sha256 of the DER of a PEM certificate (what the task lists per server)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise InputError(f"not a PEM certificate: {exc}") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def target_name(pem: bytes) -> str:
    """The certificate's common name: the TLS target name a client asks for."""
    attrs = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def parse_fingerprint(text: str | bytes, where: str = "fingerprint") -> bytes:
    """32 bytes from '0x…' hex or raw bytes; InputError otherwise."""
    if isinstance(text, bytes | bytearray):
        raw = bytes(text)
    else:
        try:
            raw = bytes.fromhex(str(text).removeprefix("0x"))
        except ValueError:
            raise InputError(f"{where}: {text!r} is not hex") from None
    if len(raw) != 32:
        raise InputError(f"{where}: a certificate fingerprint is 32 bytes (sha256), got {len(raw)}")
    return raw


def load_pinned(path: Path, expected: bytes | None = None, what: str = "certificate") -> bytes:
    """A PEM certificate file; InputError if unreadable or (with `expected`) not the pinned one."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror or exc}") from None
    fp = fingerprint_of(pem)
    if expected is not None and fp != expected:
        raise InputError(f"{what} {path} has sha256 0x{fp.hex()}, not the pinned 0x{expected.hex()}")
    return pem


class _PinError(grpc.RpcError):
    """An RpcError with a fixed status code, so callers that handle gRPC failures handle it too."""

    CODE = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def code(self) -> grpc.StatusCode:
        return self.CODE

    def details(self) -> str:
        return self.message

    def __str__(self) -> str:
        return self.message


class PinMismatch(_PinError):
    """The server presented another certificate than the pinned one (wrong server or impostor)."""

    CODE = grpc.StatusCode.UNAUTHENTICATED


class PinUnreachable(_PinError):
    """The server could not be reached to read its certificate (retryable)."""

    CODE = grpc.StatusCode.UNAVAILABLE


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def presented_certificate(address: str, timeout: float = 5.0, client: tuple[bytes, bytes] | None = None) -> bytes:
    """The DER certificate a TLS server at HOST:PORT presents (nothing verified: the caller
    compares it with its pin). `client` = (key PEM, cert PEM) for ports that require one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if client is not None:
        with tempfile.TemporaryDirectory(prefix="omniplus-pin-") as d:
            (Path(d) / "c.pem").write_bytes(client[1])
            (Path(d) / "c.key").write_bytes(client[0])
            ctx.load_cert_chain(str(Path(d) / "c.pem"), str(Path(d) / "c.key"))
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, ctx.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise PinUnreachable(f"{address}: cannot read its TLS certificate ({exc})") from None
    if not der:
        raise PinUnreachable(f"{address}: presented no certificate")
    return der


_cache: dict[tuple[str, bytes], bytes] = {}
_cache_lock = threading.Lock()


def pinned_certificate(address: str, pin: bytes, timeout: float = 5.0,
                       client: tuple[bytes, bytes] | None = None) -> bytes:
    """PEM of the certificate at `address` if its sha256 is `pin` (cached); PinMismatch otherwise."""
    with _cache_lock:
        hit = _cache.get((address, pin))
    if hit is not None:
        return hit
    der = presented_certificate(address, timeout, client)
    got = hashlib.sha256(der).digest()
    if got != pin:
        raise PinMismatch(f"{address} presented certificate sha256 0x{got.hex()}, not the pinned 0x{pin.hex()} "
                          "(another server or an impostor): refused, nothing sent")
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    with _cache_lock:
        _cache[(address, pin)] = pem
    return pem


def forget(address: str | None = None) -> None:
    """Drop cached certificates (all, or one address's), e.g. after an operator rotated its key."""
    with _cache_lock:
        for k in [k for k in _cache if address is None or k[0] == address]:
            del _cache[k]


def pinned_channel(address: str, pem: bytes, *, client: tuple[bytes, bytes] | None = None,
                   options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A TLS channel that trusts exactly the (self-signed) certificate `pem`; `client` = (key, cert)
    is presented for mutual TLS."""
    key, chain = client if client is not None else (None, None)
    creds = grpc.ssl_channel_credentials(root_certificates=pem, private_key=key, certificate_chain=chain)
    opts = list(options) + [("grpc.ssl_target_name_override", target_name(pem))]
    return grpc.secure_channel(address, creds, options=opts)


def connect_pinned(address: str, pin: bytes, *, client: tuple[bytes, bytes] | None = None,
                   options: Sequence[tuple[str, Any]] = (), timeout: float = 5.0) -> grpc.Channel:
    """Read the certificate at `address`, check it against `pin`, and open a channel trusting it
    alone. Raises PinMismatch (refused) or PinUnreachable (retry later), both grpc.RpcError."""
    pem = pinned_certificate(address, pin, timeout, client)
    return pinned_channel(address, pem, client=client, options=options)


def trust_bundle(pems: Iterable[bytes]) -> bytes:
    """The roots a mutual-TLS port accepts: exactly these self-signed certificates."""
    return b"".join(p if p.endswith(b"\n") else p + b"\n" for p in pems)


def caller_fingerprint(context: grpc.ServicerContext) -> bytes | None:
    """sha256 of the verified client certificate of an inbound call (None without one)."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        return None
    try:
        return fingerprint_of(pems[0])
    except InputError:
        return None


def who(fp: bytes | None, roster: Mapping[bytes, Any]) -> Any:
    """The identity a fingerprint stands for in `roster`, or None."""
    return roster.get(fp) if fp is not None else None
