"""Config section of the SunSpec source: the Modbus transport keys plus devices by unit id."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edge_agent.sources.modbus.config import DeviceBase, TransportConfig
from edge_agent.sources.sunspec.definitions import supported_models

BASE_ADDRESSES = (40000, 0, 50000)     # probed in this order when a device gives none


class Device(DeviceBase):
    base_address: Literal[40000, 0, 50000] | None = Field(
        default=None, description="where the 'SunS' marker sits; probed 40000, 0, 50000 when omitted")
    models: list[int] | None = Field(
        default=None, min_length=1,
        description="read only these models of the device's map (default: every supported one it has)")

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[int] | None) -> list[int] | None:
        if models is None:
            return None
        supported = supported_models()
        unknown = [m for m in models if m not in supported]
        if unknown:
            listed = ", ".join(str(m) for m in sorted(supported))
            raise ValueError(f"unsupported SunSpec model(s) {unknown}; expected some of {listed}")
        if len(set(models)) != len(models):
            raise ValueError(f"a model is listed twice in {models}")
        return models


class Config(TransportConfig):
    type: Literal["sunspec"]
    devices: list[Device] = Field(min_length=1)
