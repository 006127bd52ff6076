"""Operator identities: one key pair and one self-signed TLS certificate per operator.

Each server (and each coordinator) makes its own: `omniplus certs --name server-2` writes
`server-2.key` (P-256, mode 0600) and `server-2.pem`, self-signed, usable both ways (serverAuth
for its ports, clientAuth when it calls its peers). Nobody holds a CA key: the task lists each
server's certificate fingerprint, sha256 of the DER (contracts/committee.cert_fingerprint), and
every party pins exactly that certificate (servers/pinning.py). The common name and a DNS SAN
carry the name, which clients use as the TLS target name; identity is the fingerprint, not the
name (an impostor may copy a name, not a key).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from omniplus.core.errors import InputError
from omniplus.servers.config import server_name

VALID_DAYS = 365
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "omniplus operator"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def make_identity(out: str | Path, name: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> CertPair:
    """Write `<name>.key` and a self-signed `<name>.pem` (CN and SANs: name and `hosts`) into `out`.

    Refuses to overwrite an existing key: an operator's identity is what the task lists, and a
    silently replaced key would lock the server out of its own committee."""
    if not _NAME_RE.match(name):
        raise InputError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out / f"{name}.key", out / f"{name}.pem"
    if key_path.exists() or cert_path.exists():
        raise InputError(f"{out} already holds an identity named {name!r}; choose another name or folder")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertPair(cert_path, key_path)


def make_network(
    out: str | Path, servers: int, clients: tuple[str, ...] = ("coordinator",)
) -> dict[str, CertPair]:
    """One identity per server (`server-1..N`) and per client name, in one folder (devnet and
    tests: real operators each run `omniplus certs --name` on their own machine)."""
    if servers < 1:
        raise InputError("--servers must be at least 1")
    result: dict[str, CertPair] = {}
    for i in range(1, servers + 1):
        result[server_name(i)] = make_identity(out, server_name(i))
    for c in clients:
        if c in result:
            raise InputError(f"client name {c!r} clashes with a server name")
        result[c] = make_identity(out, c)
    return result


def common_name(pem: bytes) -> str:
    """The CN of a PEM certificate (what a peer will see us as)."""
    cert = x509.load_pem_x509_certificate(pem)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""
