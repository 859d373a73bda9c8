"""``python -m edge_agent enroll --url https://api:8443 --token T --config-dir /etc/hinode [--cafile ca.pem]``

Generates this box's own key (it never leaves the box), sends a CSR with the one-time token to
``POST /enroll``, and writes what comes back into ``<config-dir>/mqtt/`` (client.key, client.pem,
ca.pem, password; 0600 in a 0700 directory) and the ``mqtt:`` section into ``<config-dir>/site.yaml``
(merged into an existing one, or the site config template stored with the token), else into
``<config-dir>/mqtt.yaml``. Exit codes: 0 enrolled, 3 refused (403: used/expired/unknown token),
2 anything else (network, TLS, bad answer).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

# cryptography is imported where a key or CSR is made: `python -m edge_agent run` builds its
# argument parser from this module, and x509 alone would add ~8 MB to every running agent.

EXIT_REFUSED = 3
EXIT_FAILED = 2


class EnrollFailed(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the cloud API, e.g. https://api.example.jp:8443")
    token = parser.add_mutually_exclusive_group(required=True)
    token.add_argument("--token", help="the one-time enrollment token")
    token.add_argument("--token-file", help="read the token from this file (keeps it out of `ps`)")
    parser.add_argument("--config-dir", required=True, help="where site.yaml and mqtt/ go, e.g. /etc/hinode")
    parser.add_argument("--cafile", help="CA that signed the API's TLS certificate (default: the system's)")
    parser.add_argument("--key-type", choices=("ec", "rsa"), default="ec", help="EC P-256 (default) or RSA 2048")
    parser.add_argument("--mqtt-file", action="store_true", help="write mqtt.yaml instead of touching site.yaml")
    parser.add_argument("--timeout", type=float, default=30.0)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def new_key(key_type: str):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    return ec.generate_private_key(ec.SECP256R1()) if key_type == "ec" else rsa.generate_private_key(65537, 2048)


def csr_for(key) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.gethostname()[:64] or "hinode-agent")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def post_enroll(url: str, token: str, csr_pem: str, cafile: str | None, timeout: float) -> dict:
    endpoint = url.rstrip("/") + "/enroll"
    context = None
    if endpoint.startswith("https://"):
        context = ssl.create_default_context(cafile=cafile)
    elif endpoint.startswith("http://"):
        print("warning: plain HTTP: the token, the certificate and the MQTT password cross the network "
              "unencrypted; use https:// outside a test", file=sys.stderr)
    else:
        raise EnrollFailed(f"--url: expected https://host:port (got {url!r})")
    request = urllib.request.Request(endpoint, data=json.dumps({"token": token, "csr": csr_pem}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except (ValueError, AttributeError):
            detail = ""
        if exc.code == 403:
            raise EnrollFailed(f"enrollment refused by {endpoint}: {detail or 'forbidden'}", EXIT_REFUSED) from None
        raise EnrollFailed(f"enrollment failed: {endpoint} answered {exc.code}: {detail or exc.reason}") from None
    except ssl.SSLError as exc:
        raise EnrollFailed(f"TLS with {endpoint} failed: {exc} (is --cafile the CA of the API's certificate?)") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            raise EnrollFailed(f"TLS with {endpoint} failed: {reason} "
                               f"(is --cafile the CA of the API's certificate?)") from None
        raise EnrollFailed(f"cannot reach {endpoint}: {reason}") from None
    except (OSError, ValueError) as exc:
        raise EnrollFailed(f"enrollment failed: {endpoint}: {exc}") from None


def write_credentials(config_dir: Path, key, answer: dict, separate_mqtt_file: bool) -> list[Path]:
    """Key, certificate, CA, password and the mqtt section; returns the files written."""
    for field in ("certificate", "ca_certificate", "mqtt", "site", "agent"):
        if field not in answer:
            raise EnrollFailed(f"the API's answer lacks {field!r}: is --url the hinode API?")
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cred_dir = config_dir / "mqtt"
    cred_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(cred_dir, 0o700)
    key_path, cert_path, ca_path = cred_dir / "client.key", cred_dir / "client.pem", cred_dir / "ca.pem"
    from cryptography.hazmat.primitives import serialization
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write_private(cert_path, answer["certificate"].encode())
    _write_private(ca_path, answer["ca_certificate"].encode())
    written = [key_path, cert_path, ca_path]
    mqtt = dict(answer["mqtt"])
    if answer.get("password"):
        password_path = cred_dir / "password"
        _write_private(password_path, (answer["password"] + "\n").encode())
        mqtt["password_file"] = str(password_path.resolve())
        written.append(password_path)
    mqtt["tls"] = {"ca": str(ca_path.resolve()), "cert": str(cert_path.resolve()), "key": str(key_path.resolve())}
    site_path = config_dir / "site.yaml"
    if separate_mqtt_file:
        target, document = config_dir / "mqtt.yaml", {"mqtt": mqtt}
    elif site_path.exists():
        document = yaml.safe_load(site_path.read_text()) or {}
        if not isinstance(document, dict):
            raise EnrollFailed(f"{site_path}: (top level): expected a mapping; not changed")
        target = site_path
    elif answer.get("site_config"):
        target, document = site_path, dict(answer["site_config"])
    else:
        target, document = config_dir / "mqtt.yaml", {"mqtt": mqtt}
    if target == site_path:
        document.update({"site": answer["site"], "agent": answer["agent"],
                         "mqtt": {**(document.get("mqtt") or {}), **mqtt}})
    _write_private(target, yaml.safe_dump(document, sort_keys=False).encode())
    return written + [target]


def enroll(args: argparse.Namespace) -> int:
    try:
        token = args.token if args.token else Path(args.token_file).read_text().strip()
    except OSError as exc:
        print(f"--token-file: cannot read {args.token_file}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    config_dir = Path(args.config_dir)
    key = new_key(args.key_type)
    try:
        answer = post_enroll(args.url, token, csr_for(key), args.cafile, args.timeout)
        written = write_credentials(config_dir, key, answer, args.mqtt_file)
    except EnrollFailed as exc:
        print(exc, file=sys.stderr)
        return exc.code
    print(f"enrolled as {answer['username']}; wrote {', '.join(str(p) for p in written)}")
    return 0
