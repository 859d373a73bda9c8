"""The one shape every device source has.

A source lives in ``edge_agent/sources/<type>/`` and exports two names from its
``__init__``: ``Config`` (a pydantic model of its config section, ``type`` included)
and ``Source`` (a class following :class:`Source`). The agent finds it by the
``type`` key of a config section, so adding a protocol adds a folder and touches
nothing else.

Life cycle, driven by the agent::

    source = Source(config, context)
    await source.connect()            # never raises for an unreachable device
    async for batch in source.readings():   # poll or subscribe; ends after close()
        ...
    await source.close()

Optional: ``async def handle_command(self, command, device) -> CommandOutcome`` for sources
that can act (``device`` is the device id the command targets, or None when it targets
the source by name). A source without it answers every command ``rejected``. A source
tells the cloud what its devices measure (units, counters, writable metrics) with
``context.describe(device, profile, metrics)`` once it has loaded their profiles.

A source isolates its devices: a device that times out, answers with an exception
or vanishes is marked offline through the context, retried with back-off, and
never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import AsyncIterator, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from hinode.contract import CommandStatus, DeviceKind, MetricInfo, Quality, Reading


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True if it was set.

    Use this instead of ``asyncio.wait_for(event.wait(), t)``: on Python 3.11 that can
    swallow a cancellation arriving just as the event fires, leaving a task that never
    stops (we saw agents hang on SIGTERM).
    """
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            await event.wait()
        return True
    except TimeoutError:
        return event.is_set()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class DeviceBatch:
    """Readings of one device from one poll (or one subscription publish)."""

    device: str
    kind: DeviceKind
    profile: str
    readings: list[Reading]
    meta: dict[str, str] = field(default_factory=dict)   # keys the kind declares (contract.META_KEYS)


@dataclass(slots=True, frozen=True)
class CommandOutcome:
    """What a source's ``handle_command`` returns: a final status, a message, optional data
    (e.g. the value read back after a write)."""

    status: CommandStatus
    message: str = ""
    data: dict = field(default_factory=dict)

    @classmethod
    def done(cls, message: str = "", **data) -> "CommandOutcome":
        return cls(CommandStatus.DONE, message, data)

    @classmethod
    def failed(cls, message: str) -> "CommandOutcome":
        return cls(CommandStatus.FAILED, message)

    @classmethod
    def rejected(cls, message: str) -> "CommandOutcome":
        return cls(CommandStatus.REJECTED, message)


def reading(ts: int, metric: str, value, unit: str = "", quality: Quality = Quality.GOOD) -> Reading:
    """Build a Reading without re-validating: sources produce values of known types."""
    return Reading.model_construct(ts=ts, metric=metric, value=value, unit=unit, quality=quality)


def unique_device_ids(devices: list) -> list:
    """For a ``devices`` field validator: ids must be unique within a source."""
    seen: set[str] = set()
    for device in devices:
        if device.id in seen:
            raise ValueError(f"device id {device.id!r} appears twice; ids must be unique")
        seen.add(device.id)
    return devices


class SourceConfigBase(BaseModel):
    """Every source section has ``type`` and ``name``; plugins add their own keys."""

    model_config = ConfigDict(extra="forbid")
    type: str
    name: str


class LatestValues:
    """The newest value of every metric of every device of this agent, shared by its sources:
    a site controller reads the grid meter another source polls (``get("grid-meter", "power_total")``)."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, tuple[int, object]]] = {}

    def update(self, batch: DeviceBatch) -> None:
        values = self._values.setdefault(batch.device, {})
        for r in batch.readings:
            values[r.metric] = (r.ts, r.value)

    def get(self, device: str, metric: str) -> tuple[int, object] | None:
        """(ts in ms, value) of the newest reading, or None if none was seen."""
        return self._values.get(device, {}).get(metric)

    def device(self, device: str) -> dict[str, tuple[int, object]]:
        return dict(self._values.get(device, {}))


@dataclass
class DeviceHealth:
    kind: DeviceKind
    online: bool = False
    error: str = ""
    since_ms: int = 0


@dataclass
class SourceContext:
    """What a source reports back: device state, error counters, and a logger."""

    source_name: str
    log: logging.Logger
    profile_dirs: list = field(default_factory=list)         # user profile folders, searched before the shipped ones
    devices: dict[str, DeviceHealth] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)        # (device, code) -> count
    readings: int = 0
    on_state_change: object = None                          # callable(device, DeviceHealth) set by the agent
    catalog: dict[str, tuple[str, list[MetricInfo]]] = field(default_factory=dict)   # device -> (profile, metrics)
    on_catalog_change: object = None                        # callable() set by the agent
    latest: LatestValues = field(default_factory=LatestValues)   # shared by all sources of the agent
    state_dir: object = None          # Path: where a source keeps its own state (next to the outbox)

    def register(self, device: str, kind: DeviceKind) -> None:
        self.devices.setdefault(device, DeviceHealth(kind=kind))

    def describe(self, device: str, profile: str, metrics: list[MetricInfo]) -> None:
        """What a device measures (unit, counter or gauge, writable), sent to the cloud as its catalog."""
        entry = (profile, list(metrics))
        if self.catalog.get(device) != entry:
            self.catalog[device] = entry
            if self.on_catalog_change:
                self.on_catalog_change()

    def device_up(self, device: str) -> None:
        health = self.devices[device]
        if not health.online:
            health.online, health.error, health.since_ms = True, "", now_ms()
            self.log.info("%s: device %s online", self.source_name, device)
            if self.on_state_change:
                self.on_state_change(device, health)

    def device_down(self, device: str, error: str) -> None:
        health = self.devices[device]
        changed = health.online or health.error != error
        if changed:
            was_online = health.online
            health.online, health.error, health.since_ms = False, error, now_ms()
            level = logging.WARNING if was_online or not health.since_ms else logging.INFO
            self.log.log(level, "%s: device %s offline: %s", self.source_name, device, error)
            if self.on_state_change:
                self.on_state_change(device, health)

    def count_error(self, device: str, code: str, n: int = 1) -> None:
        """Count a device error by code (``timeout``, ``exception_2``, ``connect``, ``bad_status`` ...)."""
        self.errors[(device, code)] += n


class Source(Protocol):
    type_name: ClassVar[str]

    def __init__(self, config: SourceConfigBase, context: SourceContext) -> None: ...

    async def connect(self) -> None: ...

    def readings(self) -> AsyncIterator[DeviceBatch]: ...

    async def close(self) -> None: ...
