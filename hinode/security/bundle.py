"""Generate everything the broker and the clients need for MQTT over TLS with per-identity
credentials: a CA, the broker certificate, a certificate + random password per agent and for
the cloud identities, and the Mosquitto password file, ACL and TLS listener config.

Files that exist are kept (the CA, certificates, keys and passwords), so adding an agent to the
inventory and running the command again issues credentials only for the new one. The password
file, ACL and listener config are rewritten every time from the inventory.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hinode import certs
from hinode.security import mosquitto
from hinode.security.inventory import Inventory, agent_username


@dataclass
class Identity:
    username: str
    directory: Path
    site: str | None = None
    agent: str | None = None

    @property
    def cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def key(self) -> Path:
        return self.directory / "client.key"

    @property
    def password_path(self) -> Path:
        return self.directory / "password"

    def password(self) -> str:
        return self.password_path.read_text().strip()


@dataclass
class Bundle:
    root: Path
    inventory: Inventory
    created: list[Path] = field(default_factory=list)

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca.key"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def broker_config_path(self) -> Path:
        return self.broker_dir / "mosquitto-tls.conf"

    def identities(self) -> list[Identity]:
        cloud = self.inventory.cloud
        found = [Identity(cloud.ingest_username, self.root / "clients" / cloud.ingest_username),
                 Identity(cloud.api_username, self.root / "clients" / cloud.api_username)]
        for site, agent in self.inventory.agents():
            user = agent_username(site, agent)
            found.append(Identity(user, self.root / "clients" / user, site, agent))
        return found

    def identity(self, username: str) -> Identity:
        return next(i for i in self.identities() if i.username == username)

    def agent(self, site: str, agent: str) -> Identity:
        return self.identity(agent_username(site, agent))

    def broker_config(self, port: int | None = None, bind: str | None = None) -> str:
        """The listener config; ``port``/``bind`` override the inventory (tests use a free port)."""
        b = self.inventory.broker
        return mosquitto.broker_config(
            port=port or b.port, bind=bind or b.bind, cafile=str(self.ca_cert),
            certfile=str(self.broker_dir / "broker.pem"), keyfile=str(self.broker_dir / "broker.key"),
            password_file_path=str(self.broker_dir / "passwd"), acl_file_path=str(self.broker_dir / "acl"),
            require_certificate=b.require_certificate, use_identity_as_username=b.use_identity_as_username)


def _write_secret(path: Path, text: str) -> None:
    """Create with 0600 from the start (no window where the file is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def _mqtt_section(bundle: Bundle, ident: Identity) -> dict:
    """The ``mqtt:`` section for this identity's site.yaml or cloud.yaml (paths absolute)."""
    b = bundle.inventory.broker
    host = next((h for h in b.hostnames if not h.replace(".", "").isdigit()), b.hostnames[0])
    section = {"host": host, "port": b.port, "username": ident.username,
               "password_file": str(ident.password_path),
               "tls": {"ca": str(bundle.ca_cert), "cert": str(ident.cert), "key": str(ident.key)}}
    if ident.agent is None and ident.username == bundle.inventory.cloud.ingest_username:
        section["share_group"] = bundle.inventory.cloud.share_group
    return section


def generate(inventory: Inventory, root: Path | str, *, broker_files: bool = True) -> Bundle:
    """Create what is missing (CA, broker and client certificates, passwords) and write the broker's
    passwd and acl from the inventory. ``broker_files=False`` leaves passwd and acl to enrollment
    (hinode/security/enroll.py), which writes them from the inventory plus the enrolled agents."""
    bundle = Bundle(Path(root).resolve(), inventory)
    bundle.root.mkdir(parents=True, exist_ok=True)
    bundle.root.chmod(0o700)
    if not bundle.ca_cert.exists():
        certs.make_ca(bundle.ca_cert, bundle.ca_key)
        bundle.created += [bundle.ca_cert, bundle.ca_key]
    broker_cert, broker_key = bundle.broker_dir / "broker.pem", bundle.broker_dir / "broker.key"
    if not broker_cert.exists():
        certs.make_signed(broker_cert, broker_key, bundle.ca_cert, bundle.ca_key, "hinode-mqtt-broker",
                          hostnames=tuple(inventory.broker.hostnames), server=True)
        bundle.created += [broker_cert, broker_key]
    passwords = {}
    for ident in bundle.identities():
        if not ident.cert.exists():
            certs.make_signed(ident.cert, ident.key, bundle.ca_cert, bundle.ca_key, ident.username)
            bundle.created += [ident.cert, ident.key]
        if not ident.password_path.exists():
            _write_secret(ident.password_path, secrets.token_urlsafe(32) + "\n")
            bundle.created.append(ident.password_path)
        passwords[ident.username] = ident.password()
        (ident.directory / "mqtt.yaml").write_text(yaml.safe_dump({"mqtt": _mqtt_section(bundle, ident)},
                                                                  sort_keys=False))
    if broker_files:
        passwd = bundle.broker_dir / "passwd"
        _write_secret(passwd, mosquitto.password_file(passwords, passwd.read_text() if passwd.exists() else None))
        (bundle.broker_dir / "acl").write_text(mosquitto.acl_text(inventory))
    bundle.broker_config_path.write_text(bundle.broker_config())
    return bundle
