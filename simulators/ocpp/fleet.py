"""N simulated chargers on one simulated clock: what the CLI, the demo and the benchmark run."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from simulators.ocpp.clock import SimClock
from simulators.ocpp.ev import LOCAL_TZ
from simulators.ocpp.station import ChargerOptions, SimCharger
from simulators.ocpp.v16 import V16Charger
from simulators.ocpp.v201 import V201Charger

VERSIONS = ("1.6", "2.0.1", "mixed")


def read_passwords(path: str | Path) -> dict[str, str]:
    """``ID PASSWORD`` or ``ID:PASSWORD`` per line; blank lines and ``#`` comments are skipped."""
    passwords = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        charger, sep, password = line.partition(":") if ":" in line.split()[0] else line.partition(" ")
        if not sep or not password.strip():
            raise ValueError(f"{path}:{number}: expected 'ID PASSWORD' or 'ID:PASSWORD'")
        passwords[charger.strip()] = password.strip()
    return passwords


class ChargerFleet:
    """``chargers`` charge points ``<id_prefix>01``.. connecting to ``<url>/<id>``.

    ``version="mixed"`` makes odd-numbered chargers 1.6J and even-numbered ones 2.0.1.
    ``options`` are passed to every charger (see :class:`ChargerOptions`); ``password``
    applies to all, ``passwords`` (id -> password) overrides it per charger.
    """

    def __init__(self, url: str, chargers: int = 10, version: str = "1.6", *, id_prefix: str = "CP",
                 time_scale: float = 1.0, start: datetime | None = None, model_time: datetime | None = None,
                 password: str | None = None,
                 passwords: dict[str, str] | None = None, options: ChargerOptions | None = None, **option_fields):
        if version not in VERSIONS:
            raise ValueError(f"version: expected one of {', '.join(VERSIONS)}, got {version!r}")
        if chargers < 1:
            raise ValueError(f"chargers: expected at least 1, got {chargers}")
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url: expected ws://host:port[/prefix] or wss://..., got {url!r}")
        self.url = url
        self.version = version
        self.clock = SimClock(start, time_scale)
        if model_time is not None:
            self.clock.model_offset = model_time - self.clock.now()
        base = options or ChargerOptions(**option_fields)
        digits = max(2, len(str(chargers)))
        self.chargers: list[SimCharger] = []
        for index in range(1, chargers + 1):
            charger_id = f"{id_prefix}{index:0{digits}d}"
            speaks = version if version != "mixed" else ("1.6" if index % 2 else "2.0.1")
            cls = V16Charger if speaks == "1.6" else V201Charger
            secret = (passwords or {}).get(charger_id, password)
            opts = ChargerOptions(**{**base.__dict__, "password": secret})
            self.chargers.append(cls(charger_id, url, self.clock, index, opts))

    def __getitem__(self, charger_id: str) -> SimCharger:
        for charger in self.chargers:
            if charger.charger_id == charger_id:
                return charger
        raise KeyError(charger_id)

    def __len__(self) -> int:
        return len(self.chargers)

    async def start(self) -> None:
        """Starts every charger; they connect, boot and reconnect on their own."""
        for charger in self.chargers:
            await charger.start()

    async def stop(self) -> None:
        await asyncio.gather(*(charger.stop() for charger in self.chargers))

    async def __aenter__(self) -> "ChargerFleet":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def describe(self) -> str:
        opts = self.chargers[0].options
        first, last = self.chargers[0].charger_id, self.chargers[-1].charger_id
        versions = {"1.6": "OCPP 1.6J", "2.0.1": "OCPP 2.0.1", "mixed": "OCPP 1.6J and 2.0.1 mixed"}[self.version]
        auth = "Basic auth" if any(c.options.password for c in self.chargers) else "no auth"
        start = self.clock.start.astimezone(LOCAL_TZ).isoformat(timespec="minutes")
        return (f"OCPP simulator: {len(self)} chargers ({first}..{last}), {versions}, to {self.url}/<id>, {auth}, "
                f"{opts.connectors} connector(s), {opts.phases} phase(s) {opts.max_current_a:g} A, "
                f"simulated clock from {start} at x{self.clock.time_scale:g}, "
                f"meter values every {opts.meter_interval_s}s")

    def summary(self) -> dict:
        """Counts for a quick look: connected chargers, sessions running, total power (W)."""
        connectors = [c for charger in self.chargers for c in charger.connectors]
        return {"connected": sum(c.connected for c in self.chargers),
                "charging": sum(c.tx is not None for c in connectors),
                "power_w": round(sum(c.power_w for c in connectors), 1)}
