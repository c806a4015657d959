"""TLS for peer connections: mutual authentication with a private CA.

Every node holds a certificate signed by the cluster's CA whose common name
(and a DNS subject-alternative name) is its node id. Both ends of every
connection — message and data alike — present their certificate and require
the other's (mTLS). On top of chain verification, the runtime checks that the
node id a connection claims (its hello, or the stream header) is one of the
identities in the certificate it presented, so a node cannot speak for
another; in the other direction a client checks that the server it reached
holds the certificate of the node it meant to reach. Hostname checking is off
because node ids, not DNS names, are the identities here.

:func:`make_test_pki` writes a throwaway CA and node certificates, for tests,
notebooks and trying a cluster out; production certificates come from your
own CA with the same layout (CN = node id).
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Paths to this node's certificate and key, and to the CA that signs its peers.

    ``check_identity=False`` accepts any peer certificate signed by the CA
    (e.g. one certificate shared by all nodes); the node id then rests on the
    hello alone. Keep it ``True`` whenever each node has its own certificate.
    """

    cert: Path
    key: Path
    ca: Path
    check_identity: bool = True

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._configure(ctx)
        # No TLS 1.3 session tickets: nothing here resumes sessions, and a
        # ticket is bytes the client must read on connections where it only
        # ever writes (streams, messages); a socket closed with unread bytes
        # is reset, dropping whatever it had not transmitted yet.
        ctx.num_tickets = 0
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # identities are node ids, checked by the runtime
        self._configure(ctx)
        return ctx

    def _configure(self, ctx: ssl.SSLContext) -> None:
        for name in ("cert", "key", "ca"):
            path = Path(getattr(self, name))
            if not path.is_file():
                raise FileNotFoundError(f"TLS {name} file not found: {path}")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.load_verify_locations(cafile=str(self.ca))


def peer_identities(peercert: Mapping[str, Any] | None) -> frozenset[str]:
    """Common names and DNS alternative names in a verified peer certificate
    (the dict form returned by ``SSLSocket.getpeercert()``)."""
    if not peercert:
        return frozenset()
    names: set[str] = set()
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.add(value)
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "DNS":
            names.add(value)
    return frozenset(names)


class TestPKI:
    """A throwaway certificate authority in a directory; issues node certificates.

    Not for production: keys are written unencrypted and live a few days.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, directory: Path | str, *, days: int = 7) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.days = days
        self.ca_path = self.directory / "ca.pem"
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "novacron test CA")])
        now = dt.datetime.now(dt.UTC)
        self._name = name
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
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
            .sign(self._key, hashes.SHA256())
        )
        self.ca_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, node_id: str) -> TLSConfig:
        """Write ``<node_id>.pem`` / ``<node_id>.key`` (CN and DNS SAN = node id)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=self.days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_id)]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_path = self.directory / f"{node_id}.pem"
        key_path = self.directory / f"{node_id}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return TLSConfig(cert=cert_path, key=key_path, ca=self.ca_path)


def make_test_pki(directory: Path | str, node_ids: Iterable[str]) -> dict[str, TLSConfig]:
    """A fresh CA in ``directory`` and one certificate per node id."""
    pki = TestPKI(directory)
    return {node_id: pki.issue(node_id) for node_id in node_ids}
