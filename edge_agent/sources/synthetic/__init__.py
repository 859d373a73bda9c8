"""``type: synthetic`` — devices that need no hardware: counters and sine waves on a schedule.

For smoke tests of a site, load tests and benchmarks: every reading is predictable
(``counter`` increases by one per poll per device), so a receiver can check that
nothing was lost or mixed.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import AsyncIterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from hinode.contract import DeviceKind, Ident, MetricInfo
from edge_agent.sources.base import DeviceBatch, SourceConfigBase, SourceContext, now_ms, reading, wait_event


class Config(SourceConfigBase):
    type: Literal["synthetic"]
    devices: list["Device"] = Field(min_length=1)
    interval_s: float = Field(default=1.0, gt=0, description="one batch per device per interval")
    metrics: int = Field(default=10, ge=1, le=1000, description="values per device per poll")
    kind: DeviceKind = DeviceKind.METER


class Device(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Ident


Config.model_rebuild()


class Source:
    type_name = "synthetic"

    def __init__(self, config: Config, context: SourceContext):
        self.config = config
        self.context = context
        self._closed = asyncio.Event()
        self.polls = 0
        # ``counter`` only grows (one per poll), the sine values are gauges.
        metrics = [MetricInfo(metric="counter", counter=True)] + \
            [MetricInfo(metric=f"value_{i}") for i in range(1, config.metrics)]
        for device in config.devices:
            context.register(device.id, config.kind)
            context.describe(device.id, "synthetic", metrics)

    async def connect(self) -> None:
        for device in self.config.devices:
            self.context.device_up(device.id)

    async def readings(self) -> AsyncIterator[DeviceBatch]:
        interval = self.config.interval_s
        next_tick = time.monotonic()
        names = ["counter"] + [f"value_{i}" for i in range(1, self.config.metrics)]
        while not self._closed.is_set():
            self.polls += 1
            ts = now_ms()
            for device in self.config.devices:
                values = [float(self.polls)] + [math.sin(self.polls / 10 + i) for i in range(1, len(names))]
                yield DeviceBatch(device=device.id, kind=self.config.kind, profile="synthetic",
                                  readings=[reading(ts, n, v) for n, v in zip(names, values)])
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay < 0:                      # overran: skip missed ticks instead of bursting
                next_tick = time.monotonic()
                delay = 0
            await wait_event(self._closed, delay)

    async def close(self) -> None:
        self._closed.set()
