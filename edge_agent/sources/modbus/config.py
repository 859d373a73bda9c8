"""Config sections of the Modbus source, and the transport part SunSpec reuses.

Everything that can be checked before a socket opens is checked here, so that a
typo is a config error naming the key, not a device that silently stays offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from device_profiles.schema import ModbusProfile, ProfileError, find_profile, load_profile_file
from edge_agent.sources.base import SourceConfigBase, unique_device_ids
from hinode.contract import Ident
from edge_agent.sources.modbus.planner import plan_reads

DEFAULT_TCP_PORT = 502


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SerialSettings(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)     # hashable: part of an endpoint's identity

    port: str = Field(min_length=1, description="e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class Backoff(_Strict):
    initial_s: float = Field(default=1.0, gt=0)
    max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Backoff":
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be at least initial_s ({self.initial_s})")
        return self


class DeviceBase(_Strict):
    id: Ident
    unit: int = Field(ge=0, le=247, description="Modbus device id (unit id / slave address)")
    host: str | None = Field(default=None, min_length=1, description="overrides the section's host (tcp, rtu_over_tcp)")
    port: int | None = Field(default=None, ge=1, le=65535)
    poll_interval_s: float | None = Field(default=None, gt=0)


class TransportConfig(SourceConfigBase):
    """Keys shared by every source that talks Modbus (modbus, sunspec)."""

    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = "tcp"
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    serial: SerialSettings | None = None
    timeout_s: float = Field(default=1.0, gt=0)
    retries: int = Field(default=1, ge=0, le=10)
    pause_between_requests_ms: float = Field(default=0.0, ge=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    backoff: Backoff = Field(default_factory=Backoff)
    devices: list[DeviceBase] = Field(min_length=1)

    @field_validator("devices")
    @classmethod
    def _unique_ids(cls, devices: list[DeviceBase]) -> list[DeviceBase]:
        return unique_device_ids(devices)

    @model_validator(mode="after")
    def _transport_keys(self) -> "TransportConfig":
        if self.transport == "rtu":
            if self.serial is None:
                raise ValueError("transport 'rtu' needs 'serial: {port: /dev/ttyUSB0, baudrate: 9600, ...}'")
            if self.host is not None or self.port is not None:
                raise ValueError("transport 'rtu' reads a serial port: remove 'host'/'port' (or use rtu_over_tcp)")
            for index, device in enumerate(self.devices):
                if device.host is not None or device.port is not None:
                    raise ValueError(f"devices[{index}] ({device.id}): 'host'/'port' do not apply to transport 'rtu'")
            return self
        if self.serial is not None:
            raise ValueError(f"'serial' applies to transport 'rtu' only (transport is {self.transport!r})")
        missing = [device.id for device in self.devices if (device.host or self.host) is None]
        if missing:
            raise ValueError(f"transport {self.transport!r} needs 'host' on the section or on every device "
                             f"(missing for {', '.join(missing)})")
        return self

    def device_interval(self, device: DeviceBase) -> float:
        return device.poll_interval_s or self.poll_interval_s


# ------------------------------------------------------------------ profiles

_profile_cache: dict[tuple[str, int], ModbusProfile] = {}


def resolve_modbus_profile(name: str, profile_dirs: list[Path] | None) -> ModbusProfile:
    """Load a Modbus profile by id or path; ProfileError/ValueError if missing or not Modbus.

    Cached by file and modification time: fifty devices sharing a profile parse it once.
    """
    path = find_profile(name, [Path(d) for d in profile_dirs or []])
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    profile = _profile_cache.get(key)
    if profile is None:
        loaded = load_profile_file(path)
        if not isinstance(loaded, ModbusProfile):
            raise ValueError(f"profile {name!r} ({path}) is a {loaded.protocol} profile; expected a modbus profile")
        profile = _profile_cache[key] = loaded
    return profile


class Device(DeviceBase):
    profile: str = Field(min_length=1, description="profile id (file name without .yaml) or a path")
    _profile: ModbusProfile | None = PrivateAttr(default=None)

    @field_validator("profile")
    @classmethod
    def _profile_exists(cls, name: str, info: ValidationInfo) -> str:
        dirs = (info.context or {}).get("profile_dirs") or []
        try:
            resolve_modbus_profile(name, dirs)
        except ProfileError as exc:
            raise ValueError(str(exc)) from None
        return name

    @model_validator(mode="after")
    def _keep_profile(self, info: ValidationInfo) -> "Device":
        dirs = (info.context or {}).get("profile_dirs") or []
        self._profile = resolve_modbus_profile(self.profile, dirs)
        return self

    def loaded_profile(self, profile_dirs: list[Path] | None = None) -> ModbusProfile:
        return self._profile or resolve_modbus_profile(self.profile, profile_dirs)


class Config(TransportConfig):
    type: Literal["modbus"]
    max_registers_per_read: int | None = Field(default=None, ge=1, le=125,
                                               description="overrides the profiles' value")
    max_gap: int | None = Field(default=None, ge=0, le=124, description="overrides the profiles' value")
    devices: list[Device] = Field(min_length=1)

    @model_validator(mode="after")
    def _plannable(self) -> "Config":
        for index, device in enumerate(self.devices):
            profile = device.loaded_profile()
            try:
                plan_reads(profile.registers, self.read_limit(profile), self.gap(profile))
            except ValueError as exc:
                raise ValueError(f"devices[{index}] ({device.id}), profile {profile.id!r}: {exc}") from None
        return self

    def read_limit(self, profile: ModbusProfile) -> int:
        return self.max_registers_per_read or profile.max_registers_per_read

    def gap(self, profile: ModbusProfile) -> int:
        return profile.max_gap if self.max_gap is None else self.max_gap
