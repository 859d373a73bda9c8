"""Config section of the BLE vitals source (one per nurse's visit kit).

Everything that can be checked before the radio is touched is checked here: the stack has
what it needs (bumble: an HCI transport spec), the time zone exists, every device has an
address or a name (the allow-list), its category is known, its model override exists and fits
the category, a passkey is six digits and a passkey file is readable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationInfo, field_validator,
                      model_validator)

from edge_agent.sources.base import SourceConfigBase, unique_device_ids
from edge_agent.sources.ble.page_config import PageConfig
from edge_agent.sources.ble.schedule import ScheduleError, load_schedule
from hinode.contract import Ident
from hinode.vitals import Category

ADDRESS_RE = re.compile(r"^([0-9A-F]{2}:){5}[0-9A-F]{2}$")
PASSKEY_RE = re.compile(r"^\d{6}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def normalize_address(address: str) -> str:
    """``f0:f1:...`` and bumble's ``F0:F1:.../P`` (public) compare equal to ``F0:F1:...``."""
    return address.strip().upper().split("/")[0]


def _config_dir(info: ValidationInfo) -> Path | None:
    directory = (info.context or {}).get("config_dir")
    return Path(directory) if directory else None


def _profile_dirs(info: ValidationInfo) -> list[Path]:
    return [Path(d) for d in (info.context or {}).get("profile_dirs") or []]


class Reconnect(_Strict):
    initial_s: float = Field(default=0.5, gt=0, description="first wait after a lost connection or an empty scan")
    max_s: float = Field(default=10.0, gt=0, description="longest wait between scans for a device that sleeps")

    @model_validator(mode="after")
    def _ordered(self) -> "Reconnect":
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be at least initial_s ({self.initial_s})")
        return self


class Device(_Strict):
    id: Ident
    category: Category = Field(description="blood_pressure, spo2, temperature, weight, glucose or heart_rate")
    address: str | None = Field(default=None, description="Bluetooth address, e.g. F0:12:34:56:78:9A")
    name: str | None = Field(default=None, min_length=1, max_length=29, description="exact advertised name")
    model: str | None = Field(default=None, min_length=1,
                              description="model override id (device_profiles/ble/*.yaml); default: matched by "
                                          "advertised name, else the generic model of the category")
    passkey: SecretStr | None = Field(default=None, description="six-digit pairing passkey (overrides the model's)")
    passkey_file: Path | None = Field(default=None, description="file holding the passkey")

    @field_validator("address")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        if address is None:
            return None
        normalized = normalize_address(address)
        if not ADDRESS_RE.match(normalized):
            raise ValueError("expected a Bluetooth address of six hex pairs, e.g. F0:12:34:56:78:9A")
        return normalized

    @field_validator("passkey")
    @classmethod
    def _passkey(cls, passkey: SecretStr | None) -> SecretStr | None:
        if passkey is not None and not PASSKEY_RE.match(passkey.get_secret_value()):
            raise ValueError("expected six digits (the passkey shown in the device's manual), as a quoted string")
        return passkey

    @field_validator("passkey_file")
    @classmethod
    def _passkey_file(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base = _config_dir(info)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ValueError(f"expected a readable file holding the six-digit passkey (got {str(path)!r})")
        if not PASSKEY_RE.match(path.read_text().strip()):
            raise ValueError(f"{path} must hold six digits and nothing else")
        return path

    @model_validator(mode="after")
    def _allow_listed(self, info: ValidationInfo) -> "Device":
        if self.address is None and self.name is None:
            raise ValueError("give 'address' or 'name' (or both): only listed devices are ever connected")
        if self.passkey is not None and self.passkey_file is not None:
            raise ValueError("give 'passkey' or 'passkey_file', not both")
        if self.model is not None:
            from edge_agent.sources.ble.models import load_model

            try:
                model = load_model(self.model, _profile_dirs(info))
            except ValueError as exc:          # ModelError: names the file and key, or where it looked
                raise ValueError(str(exc)) from None
            if str(model.category) != str(self.category):
                raise ValueError(f"model {self.model!r} is a {model.category} model; this device's category is "
                                 f"{self.category}")
        return self

    def configured_passkey(self) -> str | None:
        if self.passkey is not None:
            return self.passkey.get_secret_value()
        if self.passkey_file is not None:
            return self.passkey_file.read_text().strip()
        return None

    def matches(self, address: str, name: str) -> bool:
        """The allow-list check on an advertisement: the address, else the exact name."""
        if self.address is not None:
            return normalize_address(address) == self.address
        return name == self.name


class Config(SourceConfigBase):
    type: Literal["ble"]
    kit: Ident = Field(description="the visit kit's id (visit ids are v-<kit>-<date>-<n>)")
    stack: Literal["bumble", "bleak"] = "bleak"
    hci: str | None = Field(default=None, description="bumble transport: usb:0, hci-socket:0, serial:..., "
                                                      "tcp-client:HOST:PORT")
    adapter: str | None = Field(default=None, description="bleak: the BlueZ adapter, e.g. hci0 (default: BlueZ's)")
    timezone: str = Field(default="Asia/Tokyo", description="the zone the device clocks keep")
    scan_timeout_s: float = Field(default=10.0, gt=0, le=600)
    connect_timeout_s: float = Field(default=15.0, gt=0, le=120)
    gatt_timeout_s: float = Field(default=10.0, gt=0, le=120, description="a GATT request or the RACP answer")
    reconnect: Reconnect = Field(default_factory=Reconnect)
    devices: list[Device] = Field(min_length=1)
    page: PageConfig
    _profile_dirs: list[Path] = PrivateAttr(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as Asia/Tokyo or UTC") from None
        return zone

    @field_validator("devices")
    @classmethod
    def _unique_ids(cls, devices: list[Device]) -> list[Device]:
        return unique_device_ids(devices)

    @model_validator(mode="after")
    def _stack_ready(self, info: ValidationInfo) -> "Config":
        if self.stack == "bumble" and not self.hci:
            raise ValueError("stack 'bumble' needs 'hci' (usb:0, hci-socket:0, tcp-client:HOST:PORT ...)")
        if self.stack == "bleak" and self.hci:
            raise ValueError("'hci' is a bumble transport; with stack 'bleak' choose the adapter with 'adapter'")
        schedule = self.page.schedule_file
        if schedule is not None and schedule.exists():
            try:
                load_schedule(schedule, self.kit)
            except ScheduleError as exc:             # names the file and the key; never a display name
                raise ValueError(f"page.schedule_file: {exc}") from None
        seen: dict[str, str] = {}
        for device in self.devices:
            key = device.address or f"name {device.name}"
            if key in seen:
                raise ValueError(f"devices {seen[key]!r} and {device.id!r} both match {key!r}; "
                                 "each allow-list entry must pick one device")
            seen[key] = device.id
        self._profile_dirs = _profile_dirs(info)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
