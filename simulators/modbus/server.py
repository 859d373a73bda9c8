"""Modbus simulator: N meters as unit ids 1..N on one TCP port or one RTU line.

    sim = ModbusSimulator(meters=20, port=0)
    await sim.start()                 # returns once listening; sim.port is the bound port
    sim.set_fault(3, "timeout")       # unit 3 stops answering
    sim.set_fault(4, "exception:2")   # unit 4 answers exception 2 (illegal data address)
    sim.values(1)                     # what a correct client decodes from unit 1 right now
    await sim.stop()

Values are recomputed and encoded once per ``interval`` for every unit; requests are
answered from those tables without any per-request encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from device_profiles.schema import ModbusProfile, RegisterFunction, load_profile
from simulators.meters import MeterBank
from simulators.modbus.datastore import SimulatorContext, UnitState, parse_fault
from simulators.modbus.layout import ProfileLayout
from simulators.modbus.nullmodem import PtyNullModem
from simulators.modbus.sunspec import SunSpecMeter

log = logging.getLogger("simulators.modbus")
DEFAULT_PROFILE = "hinode-sim-meter"
MAX_UNITS = 247                       # Modbus unit ids 1..247


class ModbusSimulator:
    def __init__(self, meters: int = 20, port: int = 0, host: str = "127.0.0.1", profile: str = DEFAULT_PROFILE,
                 interval: float = 1.0, seed: int = 0, sunspec: bool = False, sunspec_base: int = 40000,
                 rtu: bool = False, baudrate: int = 19200, clock: Callable[[], float] = time.time) -> None:
        if not 1 <= meters <= MAX_UNITS:
            raise ValueError(f"meters must be 1..{MAX_UNITS} (one Modbus unit id each), got {meters}")
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.meters, self.host, self.interval, self.rtu = meters, host, interval, rtu
        self.baudrate = baudrate
        self.sunspec = sunspec
        self.seed = seed
        self.bank = MeterBank(meters, seed, clock)
        self.profile: ModbusProfile | None = None
        self._layout: ProfileLayout | None = None
        self._sunspec: dict[int, SunSpecMeter] = {}
        if sunspec:
            self._sunspec = {u: SunSpecMeter(u, sunspec_base, seed) for u in self.units}
        else:
            loaded = load_profile(profile)
            if not isinstance(loaded, ModbusProfile):
                raise ValueError(f"profile {profile!r} is a {loaded.protocol} profile, not a Modbus one")
            self.profile = loaded
            self._layout = ProfileLayout(loaded)
        self._requested_port = port
        self.port: int | None = None
        self.client_port: str | None = None        # RTU: the serial device a client opens
        writable = self._layout.writable if self._layout else frozenset()
        self._state = {u: UnitState(writable=writable) for u in self.units}
        self._served: dict[int, dict] = {}
        self._points: dict[int, dict] = {}
        self.context = SimulatorContext(self._state)
        self.context.on_write = self._written
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._modem: PtyNullModem | None = None
        self._refresher: asyncio.Task | None = None
        self.refresh_count = 0

    @property
    def units(self) -> range:
        return range(1, self.meters + 1)

    @property
    def served_at(self) -> float:
        """Time (``clock`` seconds) of the values currently served."""
        return self.bank.updated_at

    def describe(self) -> str:
        where = f"RTU on {self.client_port}" if self.rtu else f"TCP {self.host}:{self.port}"
        what = f"SunSpec (models 1, 203) at {next(iter(self._sunspec.values())).base}" if self.sunspec \
            else f"profile {self.profile.id}"
        faults = {u: self.fault(u) for u, s in self._state.items() if s.fault}
        text = f"Modbus simulator: {self.meters} meters (unit ids 1..{self.meters}), {what}, {where}, refresh {self.interval:g}s"
        return text + (f", faults {faults}" if faults else "")

    def refresh(self, t: float | None = None) -> None:
        """Recompute and re-encode every unit now (also runs every ``interval``)."""
        t = self.bank.refresh(t)
        for unit in self.units:
            values = self.bank.values(unit)
            if self._sunspec:
                table, served, points = self._sunspec[unit].build(values)
                self._state[unit].tables = {RegisterFunction.HOLDING: table}
                self._points[unit] = points
            else:
                tables, served = self._layout.build(values, unit, t, self.seed, self._state[unit].written)
                self._state[unit].tables = tables
            self._served[unit] = served
        self.refresh_count += 1

    def _written(self, unit: int) -> None:
        self._served[unit] = self._layout.decode(self._state[unit].tables)

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a bad value must not stop the simulator
                log.exception("refreshing simulated values failed")
            if loop.time() - next_at > self.interval:
                next_at = loop.time()    # fell behind (suspended machine): don't burst

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self.refresh()
        if self.rtu:
            self._modem = PtyNullModem()
            self._modem.open()
            self.client_port = self._modem.client_port
            self._server = ModbusSerialServer(self.context, framer=FramerType.RTU, port=self._modem.server_port,
                                              baudrate=self.baudrate, ignore_missing_devices=True)
        else:
            self._server = ModbusTcpServer(self.context, address=(self.host, self._requested_port),
                                           ignore_missing_devices=True)
        try:
            await self._server.serve_forever(background=True)
        except Exception:
            await self.stop()
            raise
        if not self.rtu:
            self.port = self._server.transport.sockets[0].getsockname()[1]
        self._refresher = asyncio.create_task(self._refresh_forever(), name="modbus-sim-refresh")
        log.info("%s", self.describe())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._server is not None:
            self.drop_connections()
            await self._server.shutdown()
            self._server = None
        if self._modem is not None:
            self._modem.close()
            self._modem = None

    async def __aenter__(self) -> "ModbusSimulator":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _check_unit(self, unit: int) -> None:
        if unit not in self._state:
            raise ValueError(f"unit {unit} is not simulated (units 1..{self.meters})")

    def set_fault(self, unit: int, fault: str | None) -> None:
        """``None`` (healthy), ``"timeout"`` (no answer) or ``"exception:<code>"`` for one unit."""
        self._check_unit(unit)
        self._state[unit].fault = parse_fault(fault)
        log.info("unit %d fault: %s", unit, fault or "none")

    def fault(self, unit: int) -> str | None:
        self._check_unit(unit)
        fault = self._state[unit].fault
        if fault is None:
            return None
        return "timeout" if fault[0] == "timeout" else f"exception:{fault[1]}"

    def drop_connections(self) -> int:
        """Close every client TCP connection (clients see the socket closed); returns how many."""
        if self._server is None or self.rtu:
            return 0
        connections = list(self._server.active_connections.values())
        for connection in connections:
            connection.close()
        return len(connections)

    def values(self, unit: int) -> dict:
        """Metric -> value exactly as a correct client decodes unit ``unit`` right now."""
        self._check_unit(unit)
        if unit not in self._served:
            self.refresh()
        return dict(self._served[unit])

    def sunspec_points(self, unit: int) -> dict[str, float | None]:
        """SunSpec mode: model 203 point -> scaled value (None = not implemented)."""
        self._check_unit(unit)
        if not self.sunspec:
            raise RuntimeError("sunspec_points() needs sunspec=True")
        return dict(self._points[unit])

    def request_counts(self, unit: int) -> dict[str, int]:
        """Outcome -> number of requests unit ``unit`` got (ok, timeout, exception_2, ...)."""
        return {outcome: n for (u, outcome), n in self.context.requests.items() if u == unit}
