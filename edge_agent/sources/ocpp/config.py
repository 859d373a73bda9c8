"""Config section of the OCPP source (a local central system for workplace chargers).

Everything checkable before a socket opens is checked here: passwords exist for every
charger when the security profile asks for them (from the section or the secrets file),
TLS files exist and load, every charger's circuit is defined, ids leave room for the
session record suffix. Errors name the key and what was expected.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationInfo, field_validator,
                      model_validator)

from edge_agent.sources.base import SourceConfigBase
from edge_agent.sources.ocpp.model import BootSettings
from hinode.contract import SESSION_DEVICE_SUFFIX

# A charger id becomes a device id, and id + ".sessions" the session records' device id (≤ 64).
CHARGER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}$" % (63 - len(SESSION_DEVICE_SUFFIX))
MODES = ("off", "now", "minpv", "pv")
Mode = Literal["off", "now", "minpv", "pv"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _config_dir(info: ValidationInfo) -> Path | None:
    directory = (info.context or {}).get("config_dir")
    return Path(directory) if directory else None


def _resolve(path: Path | None, info: ValidationInfo) -> Path | None:
    if path is None:
        return None
    base = _config_dir(info)
    return base / path if not path.is_absolute() and base is not None else path


class Tls(_Strict):
    cert: Path = Field(description="server certificate (PEM)")
    key: Path = Field(description="its private key (PEM)")
    ca: Path | None = Field(default=None, description="CA that signs charger certificates (profile 3)")

    @field_validator("cert", "key", "ca")
    @classmethod
    def _file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        path = _resolve(path, info)
        if path is not None and not path.is_file():
            raise ValueError(f"expected a readable file (got {str(path)!r})")
        return path


class ChargerConfig(_Strict):
    id: str = Field(pattern=CHARGER_ID_PATTERN, description="the charge point id, last segment of its URL")
    password: SecretStr | None = Field(default=None, description="HTTP Basic password (security profile 1, 2)")
    circuit: str | None = None
    priority: int = 0
    mode: Mode = "pv"
    min_current_a: float = Field(default=6.0, ge=0, le=80)
    max_current_a: float = Field(default=16.0, gt=0, le=80)
    phases: Literal[1, 3] = 3
    phase_switching: Literal["auto", "1", "3"] = "auto"

    @field_validator("phase_switching", mode="before")
    @classmethod
    def _phases_as_text(cls, value):
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _currents_ordered(self) -> "ChargerConfig":
        if self.min_current_a > self.max_current_a:
            raise ValueError(f"min_current_a ({self.min_current_a}) must not exceed max_current_a "
                             f"({self.max_current_a})")
        return self


class MeterRef(_Strict):
    """A power reading another source of this agent polls (the meters send W)."""
    device: str
    metric: str = "power_total"
    unit: Literal["W", "kW"] = "W"


class Hysteresis(_Strict):
    threshold_w: float = 0.0
    delay_s: float = Field(ge=0)


class Circuit(_Strict):
    name: str
    limit_a: float = Field(gt=0)


class ControllerConfig(_Strict):
    interval_s: float = Field(default=10.0, gt=0)
    grid_meter: MeterRef | None = Field(default=None, description="W (or kW, see MeterRef.unit), + import / - export")
    pv_meters: list[MeterRef] = Field(default_factory=list)
    enable: Hysteresis = Hysteresis(threshold_w=0.0, delay_s=60.0)
    disable: Hysteresis = Hysteresis(threshold_w=0.0, delay_s=180.0)
    site_limit_a: float | None = Field(default=None, gt=0)
    site_limit_kw: float | None = Field(default=None, gt=0)
    circuits: list[Circuit] = Field(default_factory=list)
    residual_w: float = 0.0

    @field_validator("circuits")
    @classmethod
    def _unique_circuits(cls, circuits: list[Circuit]) -> list[Circuit]:
        names = [c.name for c in circuits]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"circuit names must be unique (got {', '.join(doubled)} twice)")
        return circuits


class Config(SourceConfigBase):
    type: Literal["ocpp"]
    host: str = "0.0.0.0"
    port: int = Field(default=9000, ge=0, le=65535)
    path_prefix: str = Field(default="", description="URL path before the charger id, e.g. /ocpp")
    security_profile: Literal[0, 1, 2, 3] = Field(
        default=1, description="0 no auth (only when set explicitly), 1 Basic auth, 2 TLS + Basic, 3 TLS client certs")
    tls: Tls | None = None
    secrets_file: Path | None = Field(default=None, description="YAML {charger_id: password}")
    unknown_chargers: Literal["pending", "rejected", "accept"] = "pending"
    heartbeat_interval_s: int = Field(default=300, gt=0)
    meter_value_interval_s: int = Field(default=10, gt=0)
    measurands: list[str] = Field(default_factory=lambda: list(BootSettings().measurands))
    response_timeout_s: float = Field(default=30.0, gt=0)
    data_transfer: Literal["unknown_vendor", "accept"] = "unknown_vendor"
    sessions_db: Path | None = Field(default=None, description="defaults to <agent data dir>/<name>-ocpp.db")
    chargers: list[ChargerConfig] = Field(default_factory=list)
    auth_list: list[str] = Field(default_factory=list, description="initial RFID tags allowed to charge")
    authorize_unknown_tags: bool = False
    controller: ControllerConfig | None = None

    _passwords: dict[str, str] = PrivateAttr(default_factory=dict)
    _config_dir: Path | None = PrivateAttr(default=None)

    @field_validator("path_prefix")
    @classmethod
    def _normalise_prefix(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        return f"/{prefix}" if prefix else ""

    @field_validator("secrets_file", "sessions_db")
    @classmethod
    def _relative_to_config(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(path, info)

    @field_validator("chargers")
    @classmethod
    def _unique_ids(cls, chargers: list[ChargerConfig]) -> list[ChargerConfig]:
        seen: set[str] = set()
        for charger in chargers:
            if charger.id in seen:
                raise ValueError(f"charger id {charger.id!r} appears twice; ids must be unique")
            seen.add(charger.id)
        return chargers

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> "Config":
        self._config_dir = _config_dir(info)
        problems: list[str] = []
        secrets = self._load_secrets(problems)
        for index, charger in enumerate(self.chargers):
            password = charger.password.get_secret_value() if charger.password else secrets.get(charger.id)
            if password is not None:
                self._passwords[charger.id] = str(password)
            elif self.security_profile in (1, 2):
                problems.append(f"chargers[{index}].password: expected a password for charger {charger.id!r} "
                                f"(security_profile {self.security_profile} uses HTTP Basic auth), "
                                f"in the section or in secrets_file")
        if self.security_profile >= 2:
            if self.tls is None:
                problems.append(f"tls: expected cert and key files (security_profile {self.security_profile} uses TLS)")
            else:
                if self.security_profile == 3 and self.tls.ca is None:
                    problems.append("tls.ca: expected the CA file that signs charger certificates (security_profile 3)")
                try:
                    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.tls.cert, self.tls.key)
                except (ssl.SSLError, OSError) as exc:
                    problems.append(f"tls.key: expected the private key of tls.cert ({exc})")
        circuits = {c.name for c in self.controller.circuits} if self.controller else set()
        for index, charger in enumerate(self.chargers):
            if charger.circuit is not None and charger.circuit not in circuits:
                problems.append(f"chargers[{index}].circuit: expected one of controller.circuits "
                                f"({', '.join(sorted(circuits)) or 'none defined'}) (got {charger.circuit!r})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _load_secrets(self, problems: list[str]) -> dict[str, str]:
        if self.secrets_file is None:
            return {}
        try:
            data = yaml.safe_load(self.secrets_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"secrets_file: expected a readable YAML file {{charger_id: password}} ({exc})")
            return {}
        if not isinstance(data, dict):
            problems.append("secrets_file: expected a YAML mapping {charger_id: password}")
            return {}
        return {str(k): str(v) for k, v in data.items()}

    @property
    def devices(self) -> list[ChargerConfig]:
        """The agent checks device ids across sources and counts devices through this name."""
        return self.chargers

    def default_sessions_db(self, data_dir: Path | None = None) -> Path:
        """Next to the agent's outbox: its folder when the agent tells us, else the config file's."""
        if self.sessions_db is not None:
            return self.sessions_db
        return Path(data_dir or self._config_dir or ".") / f"{self.name}-ocpp.db"

    def password_of(self, charger_id: str) -> str | None:
        return self._passwords.get(charger_id)

    def charger(self, charger_id: str) -> ChargerConfig | None:
        return next((c for c in self.chargers if c.id == charger_id), None)

    def boot_settings(self, boot_status: str = "Accepted") -> BootSettings:
        return BootSettings(boot_status=boot_status, heartbeat_interval_s=self.heartbeat_interval_s,
                            meter_value_interval_s=self.meter_value_interval_s,
                            measurands=tuple(self.measurands), response_timeout_s=self.response_timeout_s)
