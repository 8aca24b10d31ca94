"""Certificates for TLS tests, made with `cryptography`: a CA, a server certificate for an IP
address, a client certificate, and a client certificate from a CA no server trusts."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8, unencrypted: what Cassandra's PEM keystore and Python's ssl both read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: rsa.RSAPrivateKey,
    *,
    usage: x509.ObjectIdentifier | None = None,
    ip: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_ca(directory: Path, name: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey, Path]:
    key = _key()
    ca = _certificate(name, key, None, key)
    path = directory / f"{name}.pem"
    path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca, key, path


@dataclass
class Certificates:
    ca: Path  # the CA that signed the server's and the client's certificates
    server: Path  # the server's key, certificate and CA in one PEM: Cassandra's keystore
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from a CA the server does not trust
    stranger_key: Path


def make_certificates(directory: Path, server_ip: str = "127.0.0.1") -> Certificates:
    """Every file in `directory`: PEM, keys PKCS#8 and unencrypted (as Cassandra reads them)."""
    ca, ca_key, ca_path = _write_ca(directory, "pipeline-test-ca")
    server_key = _key()
    server = _certificate(
        "cassandra", server_key, ca, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH, ip=server_ip
    )
    server_path = directory / "server.pem"
    server_path.write_bytes(
        _pem(server_key)
        + server.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )

    def client(name: str, issuer: x509.Certificate, issuer_key) -> tuple[Path, Path]:
        key = _key()
        cert = _certificate(name, key, issuer, issuer_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem(key))
        key_path.chmod(0o600)
        return cert_path, key_path

    client_cert, client_key = client("ecom-pipeline", ca, ca_key)
    other_ca, other_ca_key, _ = _write_ca(directory, "someone-elses-ca")
    stranger_cert, stranger_key = client("stranger", other_ca, other_ca_key)
    return Certificates(ca_path, server_path, client_cert, client_key, stranger_cert, stranger_key)
