"""Config section of the OPC UA source.

Everything that can be checked before a socket opens is checked here (profiles are
OPC UA node maps, certificate files exist and carry an application URI, the key fits
the certificate), so a typo is a config error naming the key, not a device that
silently stays offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationInfo, field_validator,
                      model_validator)

from device_profiles.schema import OpcuaProfile, ProfileError, find_profile, load_profile_file
from edge_agent.sources.base import SourceConfigBase, unique_device_ids
from hinode.contract import Ident

MIN_DEFAULT_WATCHDOG_S = 5.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _config_dir(info: ValidationInfo) -> Path | None:
    directory = (info.context or {}).get("config_dir")
    return Path(directory) if directory else None


def is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN")


def load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    return x509.load_pem_x509_certificate(data) if is_pem(data) else x509.load_der_x509_certificate(data)


def certificate_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return san.value.get_values_for_type(x509.UniformResourceIdentifier)


class Deadband(_Strict):
    type: Literal["none", "absolute", "percent"] = "none"
    value: float = Field(default=0.0, ge=0, description="server units (absolute) or % of the node's EURange (percent)")

    @model_validator(mode="after")
    def _sensible(self) -> "Deadband":
        if self.type == "percent" and self.value > 100:
            raise ValueError(f"a percent deadband is 0..100 (got {self.value})")
        return self


class Security(_Strict):
    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path | None = Field(default=None, description="client certificate, DER or PEM")
    private_key: Path | None = Field(default=None, description="its private key, PEM or DER")
    private_key_password: SecretStr | None = None
    server_certificate: Path | None = Field(default=None, description="pin the server certificate (else taken from the endpoint)")
    application_uri: str | None = Field(default=None, description="defaults to the URI in the certificate's SubjectAltName")

    @field_validator("certificate", "private_key", "server_certificate")
    @classmethod
    def _file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base = _config_dir(info)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ValueError(f"no readable file at {str(path)!r}")
        return path

    @field_validator("server_certificate")
    @classmethod
    def _parses(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                load_certificate(path)
            except ValueError as exc:
                raise ValueError(f"{path} is not a PEM or DER certificate: {exc}") from None
        return path

    @model_validator(mode="after")
    def _usable(self) -> "Security":
        if self.policy == "None":
            if self.certificate or self.private_key or self.server_certificate:
                raise ValueError("certificate files are only used with policy 'Basic256Sha256' (policy is 'None')")
            return self
        if self.certificate is None or self.private_key is None:
            raise ValueError("policy 'Basic256Sha256' needs 'certificate' and 'private_key' "
                             "(hinode.certs.make_self_signed writes a pair)")
        try:
            cert = load_certificate(self.certificate)
        except ValueError as exc:
            raise ValueError(f"certificate: {self.certificate} is not a PEM or DER certificate: {exc}") from None
        uris = certificate_uris(cert)
        if not uris:
            raise ValueError(f"certificate: {self.certificate} has no URI in its SubjectAltName; OPC UA needs the "
                             "application URI there (hinode.certs.make_self_signed writes one)")
        if self.application_uri is None:
            self.application_uri = uris[0]
        elif self.application_uri not in uris:
            raise ValueError(f"application_uri: {self.application_uri!r} is not in the certificate's SubjectAltName "
                             f"{uris}; servers refuse that with BadCertificateUriInvalid")
        password = self.private_key_password.get_secret_value().encode() if self.private_key_password else None
        data = self.private_key.read_bytes()
        try:
            key = (serialization.load_pem_private_key(data, password) if is_pem(data)
                   else serialization.load_der_private_key(data, password))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"private_key: cannot load {self.private_key} "
                             f"(wrong format, or private_key_password missing/wrong): {exc}") from None
        if key.public_key().public_numbers() != cert.public_key().public_numbers():
            raise ValueError(f"private_key: {self.private_key} does not belong to certificate {self.certificate}")
        return self


class Reconnect(_Strict):
    initial_s: float = Field(default=1.0, gt=0)
    max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Reconnect":
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be at least initial_s ({self.initial_s})")
        return self


_profile_cache: dict[tuple[str, int], OpcuaProfile] = {}


def resolve_opcua_profile(name: str, profile_dirs: list[Path] | None) -> OpcuaProfile:
    """Load an OPC UA node map by id or path; ProfileError/ValueError if missing or not OPC UA."""
    path = find_profile(name, [Path(d) for d in profile_dirs or []])
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    profile = _profile_cache.get(key)
    if profile is None:
        loaded = load_profile_file(path)
        if not isinstance(loaded, OpcuaProfile):
            raise ValueError(f"profile {name!r} ({path}) is a {loaded.protocol} profile; expected an opcua node map")
        profile = _profile_cache[key] = loaded
    return profile


class Device(_Strict):
    id: Ident
    profile: str = Field(min_length=1, description="node map id (file name without .yaml) or a path")
    node_name: str | None = Field(default=None, min_length=1, description="replaces {device} in the node map; defaults to id")
    _profile: OpcuaProfile | None = PrivateAttr(default=None)

    @field_validator("profile")
    @classmethod
    def _profile_exists(cls, name: str, info: ValidationInfo) -> str:
        try:
            resolve_opcua_profile(name, (info.context or {}).get("profile_dirs"))
        except ProfileError as exc:
            raise ValueError(str(exc)) from None
        return name

    @model_validator(mode="after")
    def _keep_profile(self, info: ValidationInfo) -> "Device":
        self._profile = resolve_opcua_profile(self.profile, (info.context or {}).get("profile_dirs"))
        return self

    @property
    def name_on_server(self) -> str:
        return self.node_name or self.id

    def loaded_profile(self, profile_dirs: list[Path] | None = None) -> OpcuaProfile:
        return self._profile or resolve_opcua_profile(self.profile, profile_dirs)


class Config(SourceConfigBase):
    type: Literal["opcua"]
    endpoint: str = Field(description="opc.tcp://host:port/path")
    mode: Literal["subscribe", "poll"] = "subscribe"
    publishing_interval_ms: float = Field(default=1000, ge=10, le=3_600_000)
    sampling_interval_ms: float = Field(default=500, ge=0, le=3_600_000)
    deadband: Deadband = Field(default_factory=Deadband)
    poll_interval_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)
    security: Security = Field(default_factory=Security)
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    watchdog_s: float | None = Field(default=None, gt=0, description="default: 10 x publishing interval, at least 5 s")
    reconnect: Reconnect = Field(default_factory=Reconnect)
    devices: list[Device] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp(cls, endpoint: str) -> str:
        url = urlparse(endpoint)
        if url.scheme != "opc.tcp" or not url.hostname:
            raise ValueError(f"expected opc.tcp://host:port/... (got {endpoint!r})")
        if url.username or url.password:
            raise ValueError("put credentials in 'username'/'password', not in the endpoint")
        try:
            url.port
        except ValueError:
            raise ValueError(f"port is not a number in {endpoint!r}") from None
        return endpoint

    @field_validator("devices")
    @classmethod
    def _unique_ids(cls, devices: list[Device]) -> list[Device]:
        return unique_device_ids(devices)

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if (self.username is None) != (self.password is None):
            raise ValueError("give both 'username' and 'password', or neither")
        if self.watchdog_s is not None and self.watchdog_s < 2 * self.publishing_interval_ms / 1000:
            raise ValueError(f"watchdog_s ({self.watchdog_s}) must cover at least two publishing intervals "
                             f"({2 * self.publishing_interval_ms / 1000:g} s)")
        return self

    @property
    def effective_watchdog_s(self) -> float:
        if self.watchdog_s is not None:
            return self.watchdog_s
        return max(10 * self.publishing_interval_ms / 1000, MIN_DEFAULT_WATCHDOG_S)
