"""Questions asked of one Modbus unit: does it answer, who is it (FC43/14), is it SunSpec, which profile fits.

Every request goes through ``Bus.request``, which keeps one request in flight, waits the
configured pause after each one (a commissioning scan must never flood an RS-485 line
that may already be polled by a PLC) and turns pymodbus' outcomes into three cases:
an answer, a Modbus exception (``UnitException``), or silence (``UnitSilent``).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pymodbus.exceptions import ModbusException

from device_profiles.codec import decode_raw, decode_register
from device_profiles.schema import DataType, ModbusProfile, Register, RegisterFunction

SUNS = [0x5375, 0x6E53]
SUNSPEC_BASES = (40000, 0, 50000)
GATEWAY_NO_TARGET = {0x0A, 0x0B}       # a TCP gateway saying "no such device behind me"
MAX_READ = 125
# Plausible engineering values of a live installation, by metric name prefix.
PLAUSIBLE = [(re.compile(r"voltage_(l\d_l\d|ll_avg)$"), (140.0, 520.0)),
             (re.compile(r"voltage_(l\d|ln_avg)$"), (80.0, 300.0)),
             (re.compile(r"frequency$"), (45.0, 65.0)),
             (re.compile(r"power_factor(_l\d)?$"), (-1.0, 1.0))]
SUGGEST_AT = 0.75                      # share of fingerprint registers that must read plausibly


class UnitSilent(Exception):
    """No answer within the timeout."""


class UnitException(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"Modbus exception {code}")
        self.code = code


class Bus:
    """One pymodbus client, one request at a time, ``pause_s`` after each; counts requests."""

    def __init__(self, client, pause_s: float) -> None:
        self.client, self.pause_s = client, pause_s
        self.requests = 0
        self.started = time.monotonic()

    async def request(self, method: str, **kwargs) -> Any:
        self.requests += 1
        try:
            response = await getattr(self.client, method)(**kwargs)
        except (ModbusException, asyncio.TimeoutError, ConnectionError, OSError):
            raise UnitSilent() from None
        finally:
            await asyncio.sleep(self.pause_s)
        if response.isError():
            raise UnitException(int(getattr(response, "exception_code", 0) or 0))
        return response

    async def read(self, function: RegisterFunction, address: int, count: int, unit: int) -> list[int]:
        method = {RegisterFunction.HOLDING: "read_holding_registers",
                  RegisterFunction.INPUT: "read_input_registers"}[function]
        response = await self.request(method, address=address, count=count, device_id=unit)
        return list(response.registers)


@dataclass
class UnitFinding:
    unit: int
    exception: int | None = None                 # the unit answered the first read with this exception
    identification: dict[str, str] = field(default_factory=dict)
    sunspec: dict[str, Any] | None = None        # base, manufacturer, model, version, serial, models
    matches: list[tuple[str, float]] = field(default_factory=list)     # (profile id, score 0..1), best first

    @property
    def suggested_profile(self) -> str | None:
        return self.matches[0][0] if self.matches and self.matches[0][1] >= SUGGEST_AT else None


async def answers(bus: Bus, unit: int) -> int | None:
    """None if the unit answered a one-register read; its exception code if it refused; UnitSilent if silent."""
    try:
        await bus.read(RegisterFunction.HOLDING, 0, 1, unit)
        return None
    except UnitException as exc:
        if exc.code in GATEWAY_NO_TARGET:
            raise UnitSilent() from None
        return exc.code


async def identify(bus: Bus, unit: int) -> dict[str, str]:
    """FC43/14 basic device identification (vendor, product code, revision); {} if unsupported."""
    try:
        response = await bus.request("read_device_information", read_code=1, object_id=0, device_id=unit)
    except (UnitException, UnitSilent):
        return {}
    names = {0: "vendor", 1: "product_code", 2: "revision"}
    found = {}
    for object_id, value in (getattr(response, "information", None) or {}).items():
        if object_id in names and isinstance(value, bytes | bytearray):
            text = value.decode("ascii", errors="replace").strip("\x00 ").strip()
            if text:
                found[names[object_id]] = text
    return found


def _text(words: list[int]) -> str:
    return str(decode_raw(words, DataType.STRING)).strip("\x00 ").strip()


async def probe_sunspec(bus: Bus, unit: int, max_models: int = 20) -> dict[str, Any] | None:
    for base in SUNSPEC_BASES:
        try:
            marker = await bus.read(RegisterFunction.HOLDING, base, 2, unit)
        except UnitException:
            continue
        if marker != SUNS:
            continue
        header = await bus.read(RegisterFunction.HOLDING, base + 2, 2, unit)
        if header[0] != 1:
            return {"base": base, "error": f"the map starts with model {header[0]}, not common model 1"}
        common = await bus.read(RegisterFunction.HOLDING, base + 4, min(header[1], 66), unit)
        found = {"base": base, "manufacturer": _text(common[0:16]), "model": _text(common[16:32]),
                 "version": _text(common[40:48]), "serial": _text(common[48:64])}
        models, address = [1], base + 4 + header[1]
        while len(models) < max_models:
            try:
                model_id, length = await bus.read(RegisterFunction.HOLDING, address, 2, unit)
            except UnitException:
                break
            if model_id == 0xFFFF:
                break
            models.append(model_id)
            address += 2 + length
        found["models"] = models
        return found
    return None


def _checked_registers(profile: ModbusProfile) -> list[Register]:
    """The profile's registers with a plausibility range: its distinctive fingerprint."""
    return [r for r in profile.registers if _range(r.metric) and r.function in (RegisterFunction.HOLDING,
                                                                                 RegisterFunction.INPUT)]


def _range(metric: str) -> tuple[float, float] | None:
    for pattern, bounds in PLAUSIBLE:
        if pattern.match(metric):
            return bounds
    return None


async def match_profile(bus: Bus, unit: int, profile: ModbusProfile) -> float:
    """Share of the profile's voltage/frequency/power-factor registers that read plausibly (0 if none)."""
    registers = _checked_registers(profile)
    if not registers:
        return 0.0
    by_function: dict[RegisterFunction, list[Register]] = {}
    for register in registers:
        by_function.setdefault(register.function, []).append(register)
    plausible = 0
    for function, group in by_function.items():
        start = min(r.address for r in group)
        end = max(r.address + r.count for r in group)
        if end - start > MAX_READ:                      # keep it to one request per function
            group = [r for r in group if r.address + r.count - start <= MAX_READ]
            end = max(r.address + r.count for r in group)
        try:
            words = await bus.read(function, start, end - start, unit)
        except UnitException:
            continue
        for register in group:
            offset = register.address - start
            value = decode_register(register, words[offset:offset + register.count])
            low, high = _range(register.metric)
            if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
                plausible += 1
    return plausible / len(registers)
