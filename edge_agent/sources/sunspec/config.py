"""Config section of the SunSpec source: the Modbus transport keys plus devices by unit id."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.sources.modbus.config import DeviceBase, TransportConfig

BASE_ADDRESSES = (40000, 0, 50000)     # probed in this order when a device gives none


class Device(DeviceBase):
    base_address: Literal[40000, 0, 50000] | None = Field(
        default=None, description="where the 'SunS' marker sits; probed 40000, 0, 50000 when omitted")


class Config(TransportConfig):
    type: Literal["sunspec"]
    devices: list[Device] = Field(min_length=1)
