"""A development certificate authority for a local server network.

Every server gets one certificate used both ways (serverAuth for its ports, clientAuth when it
calls its peers), named `server-<i>`: the common name and a DNS SAN carry that name, so a peer
is identified by its certificate and a client can pin the name it expects with
`grpc.ssl_target_name_override`. Extra client-only certificates (e.g. `coordinator`) can call
the Control service. Keys are P-256 and written mode 0600. Not for production: the CA key sits
next to the certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from omniplus.core.errors import InputError
from omniplus.servers.config import server_name

VALID_DAYS = 365


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "omniplus devnet"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _load(out: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(f"{out / 'ca.key'} is not an EC key")
    return cert, key


def make_ca(out: Path, name: str = "omniplus devnet CA") -> CertPair:
    """Create ca.pem/ca.key in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (out / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(out / "ca.key", key)
    return CertPair(out / "ca.pem", out / "ca.key")


def issue(
    out: Path, cn: str, *, server: bool, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> CertPair:
    """Issue `<cn>.pem`/`<cn>.key` signed by the CA in `out`; server certs also carry `hosts` as SANs."""
    ca_cert, ca_key = _load(out)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(cn)]
    if server:
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (out / f"{cn}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(out / f"{cn}.key", key)
    return CertPair(out / f"{cn}.pem", out / f"{cn}.key")


def make_network(
    out: str | Path, servers: int, clients: tuple[str, ...] = ("coordinator",)
) -> dict[str, CertPair]:
    """CA + `server-1..N` + client certificates in `out`; returns name -> CertPair (the CA as 'ca')."""
    if servers < 1:
        raise InputError("--servers must be at least 1")
    out = Path(out)
    if (out / "ca.key").exists():
        raise InputError(f"{out} already holds a CA (ca.key); choose an empty directory")
    result = {"ca": make_ca(out)}
    for i in range(1, servers + 1):
        result[server_name(i)] = issue(out, server_name(i), server=True)
    for c in clients:
        if c in result:
            raise InputError(f"client name {c!r} clashes with a server name")
        result[c] = issue(out, c, server=False)
    return result


def common_name(pem: bytes) -> str:
    """The CN of a PEM certificate (what a peer will see us as)."""
    cert = x509.load_pem_x509_certificate(pem)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""
