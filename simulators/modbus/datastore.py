"""The pymodbus datastore of the simulator: per-unit register tables and per-unit faults.

pymodbus 3.16 hands every request to ``context.async_getValues`` /
``async_setValues``. Implementing that interface directly (instead of the deprecated
``ModbusDeviceContext`` blocks or a ``SimDevice`` per unit) lets each unit swap in a
freshly encoded set of tables once per refresh, answer with any exception code, or
stay silent: raising ``NoSuchIdException`` on a server built with
``ignore_missing_devices=True`` sends no response, so the client times out exactly as
with a dead RS-485 slave. Writes are accepted for the addresses of a unit's writable
registers only (whole request or nothing); any other write answers exception 1, as a
meter's measurements are read-only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException

from simulators.modbus.layout import FUNCTION_OF_CODE, Tables, Written

_FAULT = re.compile(r"^(timeout|exception:(\d+))$")


def parse_fault(fault: str | None) -> tuple[str, int] | None:
    """``None`` | ``"timeout"`` | ``"exception:<code>"`` -> (kind, code) or None; clear error otherwise."""
    if fault is None or fault == "" or fault == "none":
        return None
    match = _FAULT.match(str(fault).strip())
    if not match:
        raise ValueError(f"fault must be None, 'timeout' or 'exception:<code>', got {fault!r}")
    if match.group(2) is None:
        return ("timeout", 0)
    code = int(match.group(2))
    try:
        ExcCodes(code)
    except ValueError:
        valid = ", ".join(str(int(c)) for c in ExcCodes)
        raise ValueError(f"exception code {code} is not a Modbus exception code (one of {valid})") from None
    return ("exception", code)


@dataclass
class UnitState:
    tables: Tables = field(default_factory=dict)
    fault: tuple[str, int] | None = None
    writable: frozenset = frozenset()                      # (function, address) a client may write
    written: Written = field(default_factory=dict)         # what clients wrote; survives refreshes


class SimulatorContext(ModbusServerContext):
    """Serves the units' current tables; counts requests per (unit, outcome)."""

    def __init__(self, units: dict[int, UnitState]) -> None:  # pylint: disable=super-init-not-called
        # The base initialiser only wraps deprecated device contexts (and logs a
        # deprecation warning); this class implements the request interface itself.
        # ``old_simulator`` tells the pymodbus server to call this object directly.
        self.units = units
        self.old_simulator = True
        self.simdevices = []
        self.requests: Counter = Counter()
        self.on_write: Callable[[int], None] | None = None     # called with the unit after a write

    def device_ids(self) -> list[int]:
        return list(self.units)

    def _unit(self, device_id: int) -> UnitState:
        unit = self.units.get(device_id)
        if unit is None:
            self.requests[(device_id, "unknown_unit")] += 1
            raise NoSuchIdException(f"unit {device_id} is not simulated")
        if unit.fault is not None:
            kind, code = unit.fault
            self.requests[(device_id, f"{kind}_{code}" if code else kind)] += 1
            if kind == "timeout":
                raise NoSuchIdException(f"unit {device_id} is set to time out")
        return unit

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):
        unit = self._unit(device_id)
        if unit.fault is not None:
            return ExcCodes(unit.fault[1])
        table = unit.tables.get(FUNCTION_OF_CODE.get(func_code))
        values = table.read(address, count) if table is not None else None
        if values is None:
            self.requests[(device_id, "illegal_address")] += 1
            return ExcCodes.ILLEGAL_ADDRESS
        self.requests[(device_id, "ok")] += 1
        return values

    async def async_setValues(self, device_id: int, func_code: int, address: int, values) -> ExcCodes | None:
        unit = self._unit(device_id)
        if unit.fault is not None:
            return ExcCodes(unit.fault[1])
        function = FUNCTION_OF_CODE.get(func_code)
        table = unit.tables.get(function)
        addresses = range(address, address + len(values))
        if table is None or not values or any((function, a) not in unit.writable for a in addresses):
            self.requests[(device_id, "write_refused")] += 1
            return ExcCodes.ILLEGAL_FUNCTION       # a meter's measurements are read-only
        for a, value in zip(addresses, values):
            word = bool(value) if function.is_bit else int(value)
            table.words[a - table.start] = word
            unit.written[(function, a)] = word
        self.requests[(device_id, "write")] += 1
        if self.on_write is not None:
            self.on_write(device_id)
        return None
