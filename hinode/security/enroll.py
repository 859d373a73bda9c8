"""Enrollment of freshly flashed agents with one-time tokens, and revocation.

An admin creates a token for (site, agent); the agent generates its own key and sends a CSR with
the token; the platform CA (the bundle of ``python -m hinode.security mqtt``) signs it with
CN = ``<agent>@<site>`` whatever the CSR asked, the identity joins the broker's ACL (and password
file), and the broker is asked to reload. Revocation puts the serial on the CRL the broker's
listener checks (``crlfile``) and takes the identity out of the ACL and password file.

The broker files (acl, passwd, crl.pem) are rewritten from the inventory plus the enrolled
agents, so ``EnrollmentService.write_broker_files()`` must run after ``python -m hinode.security
mqtt`` (which rewrites acl and passwd from the inventory alone): the API does it at start-up.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import signal
import subprocess
import threading
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hinode.contract import Ident
from hinode.security import mosquitto
from hinode.security.bundle import Bundle
from hinode.security.enroll_store import EnrollStore, TokenRefused
from hinode.security.inventory import Inventory, agent_username, load_inventory

log = logging.getLogger(__name__)

__all__ = ["EnrollConfig", "EnrollmentService", "EnrollError", "TokenRefused", "load_enroll_config"]

MAX_CSR_BYTES = 16 * 1024
CRL_VALID_DAYS = 3650   # the broker is the CRL's only reader; an expired CRL would refuse every client


class EnrollError(ValueError):
    """A request we refuse for a reason the caller can fix (bad CSR, unknown agent): 400/404."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerReload(_Strict):
    """How the broker is told to re-read acl/passwd/crl (Mosquitto 2 does on SIGHUP)."""
    pid_file: Path | None = Field(default=None, description="send SIGHUP to the pid in this file")
    command: list[str] | None = Field(default=None, description="or run this, e.g. [systemctl, reload, mosquitto]")


class EnrollConfig(_Strict):
    bundle: Path = Field(description="output directory of `python -m hinode.security mqtt` (CA key, broker files)")
    inventory: Path = Field(description="the inventory.yaml that bundle was generated from")
    store: Path | None = Field(default=None, description="SQLite file; default $HINODE_STATE_DIR/enroll.db")
    crl: Path | None = Field(default=None, description="CRL the broker listener reads (crlfile); "
                             "default <bundle>/broker/crl.pem")
    mqtt_host: str | None = Field(default=None, description="broker host given to agents; default the inventory's "
                                  "first broker hostname that is not an IP address")
    mqtt_port: int | None = Field(default=None, ge=1, le=65535, description="default broker.port of the inventory")
    reload: BrokerReload = Field(default_factory=BrokerReload)
    default_token_ttl_s: int = Field(default=24 * 3600, ge=60)
    max_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    cert_days: int = Field(default=825, ge=1, le=3650)
    max_requests_per_address: int = Field(default=10, ge=1, description="POST /enroll per client address per window")
    window_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _ttls(self) -> "EnrollConfig":
        if self.default_token_ttl_s > self.max_token_ttl_s:
            raise ValueError("default_token_ttl_s must not exceed max_token_ttl_s")
        return self

    def store_path(self) -> Path:
        state_dir = os.environ.get("HINODE_STATE_DIR") or Path.home() / ".local" / "state" / "hinode"
        return self.store or Path(state_dir) / "enroll.db"

    def crl_path(self) -> Path:
        return self.crl or self.bundle / "broker" / "crl.pem"


def load_enroll_config(path: Path | str) -> EnrollConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return EnrollConfig.model_validate(data)
    except OSError as exc:
        raise EnrollError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise EnrollError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise EnrollError("\n".join(lines)) from None


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write beside and rename: the broker never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_if_changed(path: Path, data: bytes, mode: int) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    _write_atomic(path, data, mode)
    return True


def _check_public_key(key) -> None:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise EnrollError(f"CSR: an RSA key of {key.key_size} bits is too short (at least 2048)")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise EnrollError(f"CSR: curve {key.curve.name} is not accepted (secp256r1 or secp384r1)")
    else:
        raise EnrollError("CSR: expected an RSA or EC public key")


def parse_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    if len(csr_pem) > MAX_CSR_BYTES:
        raise EnrollError(f"CSR: larger than {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise EnrollError("CSR: expected a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)") from None
    if not csr.is_signature_valid:
        raise EnrollError("CSR: its signature does not match its key")
    _check_public_key(csr.public_key())
    return csr


class EnrollmentService:
    """Tokens, signing, the broker's acl/passwd/crl and reload. Thread-safe; its methods block
    (SQLite, files, signing): the API calls them in a worker thread."""

    def __init__(self, config: EnrollConfig):
        self.config = config
        self.inventory: Inventory = load_inventory(config.inventory)
        self.bundle = Bundle(config.bundle.resolve(), self.inventory)
        if not self.bundle.ca_key.exists():
            raise EnrollError(f"{self.bundle.ca_key}: the CA key is missing: run `python -m hinode.security mqtt "
                              f"--inventory {config.inventory} --out {config.bundle}` first")
        self.store = EnrollStore(config.store_path())
        self._files_lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def close(self) -> None:
        self.store.close()

    def count(self, result: str) -> None:
        with self._files_lock:
            self.counts[result] = self.counts.get(result, 0) + 1

    # ------------------------------------------------------------------ tokens

    def create_token(self, site: str, agent: str, ttl_s: int | None = None,
                     site_config: dict | None = None) -> tuple[str, float]:
        """A new one-time token (returned once, stored hashed) and its expiry (unix seconds)."""
        try:
            ids = _IdentPair.model_validate({"site": site, "agent": agent})
        except ValidationError as exc:
            raise EnrollError("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
        ttl = self.config.default_token_ttl_s if ttl_s is None else ttl_s
        if not 0 < ttl <= self.config.max_token_ttl_s:
            raise EnrollError(f"ttl_s: expected 1..{self.config.max_token_ttl_s} seconds (got {ttl})")
        token = secrets.token_urlsafe(32)
        expires = self.store.add_token(token, ids.site, ids.agent, ttl, site_config)
        return token, expires

    # ------------------------------------------------------------------ enrolling

    def enroll(self, token: str, csr_pem: str) -> dict:
        """The answer for the agent; TokenRefused (403) or EnrollError (400) otherwise."""
        csr = parse_csr(csr_pem)       # before the token is consumed: a bad CSR does not burn it
        grant = self.store.consume_token(token)
        username = agent_username(grant.site, grant.agent)
        try:
            cert = self._sign(csr.public_key(), username)
            password = None if self.inventory.broker.use_identity_as_username else secrets.token_urlsafe(32)
            self.store.save_agent(username, grant.site, grant.agent, cert.serial_number,
                                  mosquitto.password_hash(password) if password else None)
        except Exception:
            self.store.release_token(token)
            raise
        self.write_broker_files()
        try:
            self.reload_broker()
            reloaded = True
        except EnrollError as exc:   # enrolled all the same: the broker accepts the agent once it reloads
            reloaded = False
            log.error("agent %s enrolled, but %s", username, exc)
        self.count("enrolled")
        answer = {"broker_reloaded": reloaded, "site": grant.site, "agent": grant.agent, "username": username,
                  "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
                  "ca_certificate": self.bundle.ca_cert.read_text(),
                  "mqtt": self.mqtt_section(username),
                  "site_config": grant.site_config}
        if password:
            answer["password"] = password
        return answer

    def mqtt_section(self, username: str) -> dict:
        """The ``mqtt:`` section without file paths: the agent fills in where it wrote them."""
        broker = self.inventory.broker
        host = self.config.mqtt_host or next((h for h in broker.hostnames if not h.replace(".", "").isdigit()),
                                             broker.hostnames[0])
        return {"host": host, "port": self.config.mqtt_port or broker.port, "username": username}

    def _sign(self, public_key, username: str) -> x509.Certificate:
        ca_cert = x509.load_pem_x509_certificate(self.bundle.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.bundle.ca_key.read_bytes(), password=None)
        now = dt.datetime.now(dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, username),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hinode-iot")])
        encipher = isinstance(public_key, rsa.RSAPublicKey)
        return (x509.CertificateBuilder()
                .subject_name(name).issuer_name(ca_cert.subject).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=self.config.cert_days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=encipher, data_encipherment=False,
                                             key_agreement=not encipher, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))

    # ------------------------------------------------------------------ revoking

    def revoke(self, site: str, agent: str) -> dict:
        username = agent_username(site, agent)
        revoked = self.store.revoke(username)
        if revoked is None:
            known = self.store.agent(username)
            if known is None:
                raise LookupError(f"{username} was never enrolled (inventory agents are removed from the "
                                  f"inventory instead)")
            return {"username": username, "serial": str(known.serial), "already_revoked": True}
        self.write_broker_files()
        self.count("revoked")
        try:
            self.reload_broker()
        except EnrollError as exc:
            raise EnrollError(f"{username} is revoked (CRL, ACL and password file written), but the broker "
                              f"was not reloaded and still accepts it: {exc}") from None
        return {"username": username, "serial": str(revoked.serial), "already_revoked": False}

    # ------------------------------------------------------------------ broker files

    def effective_inventory(self) -> Inventory:
        """The inventory plus every enrolled agent, minus every revoked one (an inventory agent that
        enrolled and was then revoked is out of the ACL too)."""
        revoked = self._revoked_usernames()
        sites = {site: [agent for agent in agents if agent_username(site, agent) not in revoked]
                 for site, agents in self.inventory.sites.items()}
        for enrolled in self.store.agents():
            agents = sites.setdefault(enrolled.site, [])
            if enrolled.agent not in agents:
                agents.append(enrolled.agent)
        return self.inventory.model_copy(update={"sites": sites})

    def _revoked_usernames(self) -> set[str]:
        return {a.username for a in self.store.agents(include_revoked=True) if a.revoked_at is not None}

    def write_broker_files(self) -> list[str]:
        """acl, passwd and the CRL, from the inventory and the enrolled agents. An enrolled agent's
        password replaces the bundle's for the same username (an inventory agent enrolling).

        A file whose content would not change is left alone (an unchanged password keeps its hash,
        an unchanged revocation list its CRL), so a re-run changes nothing and a watcher of these
        files (the installers' broker-files unit) reloads the broker only for a real change.
        Returns the names of the files written.
        """
        broker_dir = self.bundle.broker_dir
        written = []
        with self._files_lock:
            acl = mosquitto.acl_text(self.effective_inventory())
            if _write_if_changed(broker_dir / "acl", acl.encode(), 0o644):
                written.append("acl")
            revoked = self._revoked_usernames()
            enrolled = {a.username: a.password_hash for a in self.store.agents() if a.password_hash}
            passwd_path = broker_dir / "passwd"
            existing = passwd_path.read_text() if passwd_path.exists() else None
            lines = [f"{username}:{password_hash}\n" for username, password_hash in sorted(enrolled.items())]
            for ident in self.bundle.identities():
                if ident.username in revoked or ident.username in enrolled or not ident.password_path.exists():
                    continue
                lines.append(mosquitto.password_file({ident.username: ident.password()}, existing))
            if _write_if_changed(passwd_path, "".join(lines).encode(), 0o600):
                written.append("passwd")
            if not self._crl_is_current():
                _write_atomic(self.config.crl_path(), self._crl(), 0o644)
                written.append("crl")
        return written

    def _crl_is_current(self) -> bool:
        """The CRL on disk lists exactly the revoked serials and stays valid for more than a year."""
        path = self.config.crl_path()
        try:
            crl = x509.load_pem_x509_crl(path.read_bytes())
        except (OSError, ValueError):
            return False
        listed = {revoked.serial_number for revoked in crl}
        wanted = {serial for serial, _ in self.store.revoked_serials()}
        valid_until = crl.next_update_utc
        return listed == wanted and valid_until is not None and \
            valid_until > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)

    def _crl(self) -> bytes:
        ca_cert = x509.load_pem_x509_certificate(self.bundle.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.bundle.ca_key.read_bytes(), password=None)
        now = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
                   .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=CRL_VALID_DAYS)))
        for serial, revoked_at in self.store.revoked_serials():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(dt.datetime.fromtimestamp(revoked_at, dt.timezone.utc)).build())
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def reload_broker(self) -> str:
        """Ask the broker to re-read its files; returns what was done (for the API's answer)."""
        reload = self.config.reload
        if reload.pid_file is not None:
            try:
                pid = int(reload.pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGHUP)
            except (OSError, ValueError, IndexError) as exc:
                self.count("reload_failed")
                raise EnrollError(f"cannot signal the broker via {reload.pid_file}: {exc}") from None
            return f"SIGHUP to pid {pid}"
        if reload.command:
            done = subprocess.run(reload.command, capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                self.count("reload_failed")
                raise EnrollError(f"broker reload command {reload.command} failed ({done.returncode}): "
                                  f"{done.stderr.strip()[:300]}")
            return f"ran {' '.join(reload.command)}"
        return "no reload configured: the broker reads the new files when it restarts"

    def apply(self) -> str:
        """Write the broker files and reload the broker when one of them changed."""
        written = self.write_broker_files()
        if not written:
            return "broker files unchanged"
        return f"changed {', '.join(written)}; {self.reload_broker()}"

    def metric_families(self):
        """``hinode_enroll_total{result=...}`` and the number of enrolled agents, for an API registry."""
        from hinode.metrics import gauge, labelled_counter

        with self._files_lock:
            counts = dict(self.counts)
        results = ("token_created", "enrolled", "revoked", "refused_used", "refused_expired", "refused_unknown",
                   "bad_request", "rate_limited", "reload_failed")
        yield labelled_counter("hinode_enroll_total", "Enrollment decisions, by result", ("result",),
                               ((result, counts.get(result, 0)) for result in results))
        yield gauge("hinode_enrolled_agents", "Enrolled agents that are not revoked", len(self.store.agents()))

    def status(self) -> dict:
        with self._files_lock:
            counts = dict(self.counts)
        return {"agents": [{"username": a.username, "site": a.site, "agent": a.agent, "serial": str(a.serial),
                            "enrolled_at": a.enrolled_at, "revoked_at": a.revoked_at}
                           for a in self.store.agents(include_revoked=True)],
                "counts": counts}


class _IdentPair(_Strict):
    site: Ident
    agent: Ident


def main(argv: list[str] | None = None) -> int:
    """``python -m hinode.security.enroll sync --config enroll.yaml``: rewrite acl/passwd/crl from the
    inventory + enrolled agents and reload the broker (run it after ``python -m hinode.security mqtt``)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m hinode.security.enroll")
    parser.add_argument("command", choices=("sync",))
    parser.add_argument("--config", required=True, help="enroll.yaml (hinode/security/ENROLL.md)")
    args = parser.parse_args(argv)
    try:
        service = EnrollmentService(load_enroll_config(args.config))
        try:
            done = service.apply()
        finally:
            service.close()
    except (ValueError, OSError) as exc:   # EnrollError, InventoryError
        print(exc, file=sys.stderr)
        return 2
    print(f"broker files written ({len(service.inventory.agents())} inventory agents); {done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
