"""A virtual visit kit (real bumble devices, gateway controller over HCI-over-TCP on a free port) and
``ble`` sources built on it, for the source's tests.

Async tests run on the ``aio_loop`` fixture of ``tests/edge/sources/conftest.py`` so that the kit,
the source and the test share one event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from edge_agent.sources.base import DeviceBatch, SourceContext
from edge_agent.sources.ble import Config, Source
from hinode.security.api_secrets import hash_password
from hinode.services import free_port
from simulators.ble.kit import KIT_DEVICES, VirtualKit

KIT = "kit-01"
PATIENT = "p-7f3a9c"
NURSE = "n-01"
NURSE_PIN = "2468"
ZONE = "Asia/Tokyo"


@pytest.fixture
def kit(aio_loop):
    """All six virtual devices; ``kit.gateway_hci`` is the ``hci`` a source connects with."""
    virtual = VirtualKit(KIT, hci=f"tcp-server:127.0.0.1:{free_port()}", seed=11)
    aio_loop.run_until_complete(virtual.start())
    yield virtual
    aio_loop.run_until_complete(virtual.stop())


@pytest.fixture
def passkey_kit(aio_loop):
    """A kit whose cuff bonds only with the passkey it shows (123456) before it indicates readings."""
    virtual = VirtualKit(KIT, hci=f"tcp-server:127.0.0.1:{free_port()}", seed=12, pairing_passkey="123456",
                         device_ids=["bp-cuff-1"])
    aio_loop.run_until_complete(virtual.start())
    yield virtual
    aio_loop.run_until_complete(virtual.stop())


def kit_device(kit: VirtualKit, device_id: str, **extra) -> dict:
    """A config entry for one of the kit's devices, by address (``by="name"``: by advertised name)."""
    category, _ = KIT_DEVICES[device_id]
    device = kit.device(device_id)
    by = extra.pop("by", "address")
    return {"id": device_id, "category": category, by: device.address if by == "address" else device.name, **extra}


def write_schedule(path: Path) -> Path:
    today = dt.datetime.now(ZoneInfo(ZONE)).date()
    path.write_text(yaml.safe_dump({"visits": [
        {"date": today.isoformat(), "time": "10:00", "pseudonym": PATIENT, "display_name": "Yamada Hanako"}]},
        allow_unicode=True))
    return path


def source_section(kit: VirtualKit, tmp_path: Path, devices: list[dict], **overrides) -> dict:
    section = {
        "type": "ble", "name": "visit-kit", "kit": KIT, "stack": "bumble", "hci": kit.gateway_hci,
        "timezone": ZONE, "scan_timeout_s": 1.5, "connect_timeout_s": 5, "gatt_timeout_s": 3,
        "reconnect": {"initial_s": 0.2, "max_s": 1.0},
        "devices": devices,
        "page": {"listen": f"127.0.0.1:{free_port()}", "schedule_file": str(write_schedule(tmp_path / "schedule.yaml")),
                 "nurses": [{"id": NURSE, "name": "Sato", "pin_hash": hash_password(NURSE_PIN)}]},
    }
    section.update(overrides)
    return section


@dataclass
class RunningSource:
    """A source as the agent runs it: connect(), then readings() consumed into ``batches``."""

    source: Source
    context: SourceContext
    batches: list[DeviceBatch] = field(default_factory=list)
    task: asyncio.Task | None = None

    @property
    def book(self):
        return self.source.book

    async def start(self) -> "RunningSource":
        await self.source.connect()
        self.task = asyncio.create_task(self._consume())
        return self

    async def _consume(self) -> None:
        async for batch in self.source.readings():
            self.batches.append(batch)

    async def stop(self) -> None:
        await self.source.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def online(self, device: str) -> bool:
        health = self.context.devices.get(device)
        return bool(health and health.online)

    def error(self, device: str) -> str:
        health = self.context.devices.get(device)
        return health.error if health else ""

    def session(self, device: str):
        return self.source.sessions[device]

    def sessions_connections(self, device: str) -> int:
        session = self.source.sessions.get(device)
        return session.connections if session else 0

    def held(self, device: str | None = None, state: str | None = None) -> list:
        return [r for r in self.book.held() if (device is None or r.device == device)
                and (state is None or r.state == state)]


@pytest.fixture
def make_source(aio_loop, kit, tmp_path):
    """``make_source(devices, state_dir=..., on_kit=..., **config overrides)`` -> a RunningSource (not started);
    every source made is stopped after the test."""
    made: list[RunningSource] = []

    def make(devices: list[dict], state_dir: Path | None = None, on_kit: VirtualKit | None = None,
             **overrides) -> RunningSource:
        section = source_section(on_kit or kit, tmp_path, devices, **overrides)
        config = Config.model_validate(section, context={"config_dir": tmp_path, "profile_dirs": []})
        context = SourceContext(source_name=config.name, log=logging.getLogger("test.ble"),
                                state_dir=state_dir or tmp_path / "state")
        running = RunningSource(Source(config, context), context)
        made.append(running)
        return running

    yield make
    for running in made:
        aio_loop.run_until_complete(running.stop())
