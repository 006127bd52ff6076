"""Units of the network layer that need no sockets: config validation, certificates, the signed
digest, storage transactions; plus the certs/submit CLI verbs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from network_fixtures import CHAIN_ID, MARKET, do_addr, do_key, make_local_net

from omniplus.cli import main
from omniplus.contracts.committee import cert_fingerprint
from omniplus.core.errors import InputError
from omniplus.servers import signing
from omniplus.servers.certs import common_name
from omniplus.servers.config import load_config, parse_config
from omniplus.servers.daemon import Daemon, JsonLog
from omniplus.servers.storage import Rejected, Storage, StorageError


def _cfg(**over: object) -> dict:
    base = {
        "id": 1,
        "listen": "127.0.0.1:1",
        "peer_listen": "127.0.0.1:2",
        "storage": "s",
        "task": {"market": MARKET, "registry": "dev-allowlist"},
        "tls": {"cert": "b", "key": "c"},
        "peers": [{"id": j, "address": f"127.0.0.1:{10 + j}", "cert": f"p{j}.pem"} for j in (1, 2, 3)],
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    "over,text",
    [
        ({"threshold": 2}, "n >= 2t+1"),
        ({"id": 4}, "not among [[peers]]"),
        ({"listen": "localhost"}, "HOST:PORT"),
        ({"task": {"market": "0x12", "registry": "dev-allowlist"}}, "20-byte"),
        ({"task": {"market": MARKET, "registry": "chain"}}, "rpc_url"),
        ({"task": {"market": MARKET, "registry": "magic"}}, "registry must be"),
        ({"limits": {"max_peer_bytes": -1}}, "positive"),
        ({"limits": {"nope": 1}}, "unknown key"),
        ({"peers": [{"id": 1, "address": "127.0.0.1:1", "cert": "a"},
                    {"id": 3, "address": "127.0.0.1:3", "cert": "b"}]}, "1..n"),
        ({"peers": [{"id": j, "address": f"127.0.0.1:{j}"} for j in (1, 2, 3)]}, "'cert'"),
        ({"tls": {"ca": "a", "cert": "b", "key": "c"}}, "'ca' is gone"),
    ],
)
def test_config_errors_name_the_problem(over: dict, text: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        parse_config(_cfg(**over), tmp_path)
    assert text in str(err.value)


def test_config_resolves_paths_and_defaults(tmp_path: Path) -> None:
    cfg = parse_config(_cfg(limits={"recv_timeout": 5}), tmp_path)
    assert cfg.n == 3 and cfg.threshold == 1 and cfg.cert_name == "server-1"
    assert cfg.tls.cert == (tmp_path / "b").resolve() and cfg.limits.recv_timeout == 5.0
    assert cfg.peers[1].cert == (tmp_path / "p2.pem").resolve() and cfg.coordinator_certs == ()
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_certs_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    assert main(["certs", "--out", str(out), "--servers", "2", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)
    assert set(files) == {"server-1", "server-2", "coordinator"}
    assert files["server-2"]["fingerprint"] == "0x" + cert_fingerprint((out / "server-2.pem").read_bytes()).hex()
    cert = x509.load_pem_x509_certificate((out / "server-2.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "server-2" in sans.get_values_for_type(x509.DNSName)
    assert common_name((out / "coordinator.pem").read_bytes()) == "coordinator"
    assert (out / "server-1.key").stat().st_mode & 0o077 == 0
    cert1 = x509.load_pem_x509_certificate((out / "server-1.pem").read_bytes())
    assert cert1.issuer == cert1.subject and not (out / "ca.key").exists()  # self-signed: no CA anywhere
    assert main(["certs", "--out", str(out), "--servers", "2"]) == 1  # never overwrites an identity
    assert main(["certs", "--out", str(out), "--name", "server-3", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert list(one) == ["server-3"] and (out / "server-3.key").stat().st_mode & 0o077 == 0
    assert main(["certs", "--out", str(out), "--name", "server-3"]) == 1  # an operator's key is never replaced
    assert main(["certs", "--out", str(out), "--name", "../x"]) == 1


def test_digest_covers_every_field() -> None:
    h = signing.SubmissionHeader(CHAIN_ID, b"\xab" * 20, b"\x01" * 20, 1, 3, 1, b"\x02" * 32, 10**9)
    payload = signing.payload_hash([1, 2], b"\x00" * 64)
    base = signing.submission_digest(h, payload)
    import dataclasses

    for name, value in [("chain_id", 1), ("market", b"\xac" * 20), ("do_address", b"\x03" * 20),
                        ("server_index", 2), ("n_servers", 5), ("threshold", 2), ("nonce", b"\x04" * 32),
                        ("expiry", 10**9 + 1)]:  # fmt: skip
        assert signing.submission_digest(dataclasses.replace(h, **{name: value}), payload) != base, name
    assert signing.payload_hash([1, 2], b"\x00" * 64) != signing.payload_hash([2, 1], b"\x00" * 64)
    sig = signing.sign_digest(base, do_key(1))
    assert "0x" + signing.recover_signer(base, sig).hex() == do_addr(1)


def test_storage_is_atomic_and_bound_to_its_server(tmp_path: Path) -> None:
    st = Storage(tmp_path, identity={"server": 1})
    kw = dict(payee=b"\x01" * 20, server_index=1, n_servers=3, threshold=1, wires=[5, 6],
              shares=b"\x00" * 64, payload_hash=b"\x09" * 32, expiry=1, signature=b"\x00" * 65)  # fmt: skip
    st.accept_submission(do_address=b"\x01" * 20, nonce=b"\x01" * 32, **kw)
    with pytest.raises(Rejected) as err:
        st.accept_submission(do_address=b"\x01" * 20, nonce=b"\x02" * 32, **kw)
    assert err.value.code == "ALREADY_EXISTS"
    assert not st.nonce_used(b"\x01" * 20, b"\x02" * 32)  # the refused one left no nonce behind
    st.begin_round("r1", "validate", b"{}")
    st.close()
    st = Storage(tmp_path, identity={"server": 1})
    assert st.interrupted == ["r1"] and st.round("r1").state == "interrupted"
    assert st.submission(b"\x01" * 20).block() == {5: 0, 6: 0}
    st.close()
    with pytest.raises(StorageError, match="belongs to server"):
        Storage(tmp_path, identity={"server": 2})


def test_submit_status_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ln = make_local_net(tmp_path)
    d = Daemon(ln.cfg(1), log=JsonLog(1, stream=open(tmp_path / "log", "a")))  # noqa: SIM115
    d.start()
    try:
        servers = ",".join(ln.public(j) for j in (1,))
        args = ["do", "submit", "--servers", servers, "--market", MARKET, "--fingerprints", "0x" + ln.pins[1].hex(),
                "--key", do_key(1), "--status", "--json"]  # fmt: skip
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["servers"][0]["state"] == "unknown"
        assert main(args[:-2]) == 1  # submitting needs --rpc, --setup and an update
    finally:
        d.stop(grace=1)
