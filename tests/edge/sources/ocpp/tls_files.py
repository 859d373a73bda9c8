"""Certificates made in the test: a self-signed server certificate, and a CA with client certificates."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert, key) -> tuple[Path, Path]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _certificate(subject_cn: str, key, issuer_cn: str, issuer_key, *, ca: bool, server: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_self_signed(folder: Path) -> tuple[Path, Path]:
    """(cert, key) of a self-signed server certificate for 127.0.0.1 / localhost."""
    key = _key()
    return _write(folder / "server", _certificate("ocpp-test", key, "ocpp-test", key, ca=True, server=True), key)


def make_ca_and_client(folder: Path, client_cn: str) -> tuple[Path, Path, Path]:
    """(ca cert, client cert, client key): a CA and one client certificate with CN ``client_cn``."""
    ca_key = _key()
    ca_cert = _certificate("test-ca", ca_key, "test-ca", ca_key, ca=True, server=False)
    ca_path, _ = _write(folder / "ca", ca_cert, ca_key)
    client_key = _key()
    client_cert, client_key_path = _write(folder / f"client-{client_cn}",
                                          _certificate(client_cn, client_key, "test-ca", ca_key, ca=False,
                                                       server=False), client_key)
    return ca_path, client_cert, client_key_path
