"""Register tables of one unit, built from a Modbus device profile.

A :class:`RegisterTable` is one contiguous block of one register function (holding,
input, coil or discrete). :class:`ProfileLayout` turns metric values into fresh tables
with :func:`device_profiles.codec.encode_register`, once per refresh, and also returns
the values exactly as a correct client decodes them (float32 rounding, integer
scaling), so tests can compare what an edge agent read with what was served.

Writable registers (setpoints) are not measurements: they start at the profile's ``max``
(else ``min``, else 0; coils off) and then hold what a client wrote, which ``build``
lays over every refresh.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from device_profiles.codec import decode_register, encode_register
from device_profiles.schema import DataType, ModbusProfile, Register, RegisterFunction
from simulators.load import smooth_noise

# Modbus function code -> register function it reads or writes.
FUNCTION_OF_CODE = {
    1: RegisterFunction.COIL, 5: RegisterFunction.COIL, 15: RegisterFunction.COIL,
    2: RegisterFunction.DISCRETE,
    3: RegisterFunction.HOLDING, 6: RegisterFunction.HOLDING, 16: RegisterFunction.HOLDING,
    22: RegisterFunction.HOLDING, 23: RegisterFunction.HOLDING,
    4: RegisterFunction.INPUT,
}

_INT_RANGE = {
    DataType.INT16: (-(1 << 15), (1 << 15) - 1), DataType.UINT16: (0, (1 << 16) - 1),
    DataType.INT32: (-(1 << 31), (1 << 31) - 1), DataType.UINT32: (0, (1 << 32) - 1),
    DataType.INT64: (-(1 << 63), (1 << 63) - 1), DataType.UINT64: (0, (1 << 64) - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(slots=True)
class RegisterTable:
    """Words (or bits, for coils/discrete inputs) served from ``start`` on."""

    start: int
    words: list

    def read(self, address: int, count: int) -> list | None:
        offset = address - self.start
        if offset < 0 or count < 1 or offset + count > len(self.words):
            return None
        return self.words[offset:offset + count]


Tables = dict[RegisterFunction, RegisterTable]
Written = dict[tuple[RegisterFunction, int], int | bool]      # (function, address) -> word or bit a client wrote


def fit_to_register(register: Register, value: float) -> float:
    """Clamp ``value`` to what the register's type can hold after scaling (a saturating meter)."""
    if register.type in _INT_RANGE:
        lo, hi = _INT_RANGE[register.type]
        scale = register.scale or 1.0
        a, b = lo * scale + register.offset, hi * scale + register.offset
        return min(max(value, min(a, b)), max(a, b))
    if register.type is DataType.FLOAT32 and math.isfinite(value):
        return min(max(value, -_FLOAT32_MAX), _FLOAT32_MAX)
    return value


def initial_setpoint(register: Register):
    if register.type is DataType.BITS:
        return False
    for start in (register.max, register.min):
        if start is not None:
            return start
    return 0.0


def generic_value(register: Register, unit: int, t: float, seed: int = 0):
    """A plausible, slowly changing value for a metric the load model does not know."""
    if register.type is DataType.BITS:
        return (int(t // 30) + unit) % 2 == 0
    if register.type is DataType.STRING:
        return f"SIM-{unit:03d}"[: 2 * (register.length or 1)]
    frac = (1 + smooth_noise(seed, unit, zlib.crc32(register.metric.encode()), t, 10.0)) / 2
    if register.type in _INT_RANGE:
        lo, hi = _INT_RANGE[register.type]
        raw = round(max(lo, 0) + frac * (min(hi, 1000) - max(lo, 0)))
    else:
        raw = frac * 1000
    return raw * register.scale + register.offset


class ProfileLayout:
    """Where each metric of a profile lives, and how to fill the tables for one unit."""

    def __init__(self, profile: ModbusProfile) -> None:
        self.profile = profile
        self._extent: dict[RegisterFunction, tuple[int, int]] = {}
        for reg in profile.registers:
            start, end = reg.address, reg.address + reg.count
            lo, hi = self._extent.get(reg.function, (start, end))
            self._extent[reg.function] = (min(lo, start), max(hi, end))
        self.writable = frozenset((reg.function, reg.address + i)
                                  for reg in profile.registers if reg.writable
                                  for i in range(1 if reg.function.is_bit else reg.count))

    @property
    def functions(self) -> list[RegisterFunction]:
        return list(self._extent)

    def build(self, values: dict[str, object], unit: int, t: float, seed: int = 0,
              written: Written | None = None) -> tuple[Tables, dict[str, object]]:
        """Fresh tables holding ``values`` (others filled generically, ``written`` on top) and the served values."""
        tables: Tables = {}
        for function, (start, end) in self._extent.items():
            fill = False if function.is_bit else 0
            tables[function] = RegisterTable(start, [fill] * (end - start))
        for reg in self.profile.registers:
            value = initial_setpoint(reg) if reg.writable else values.get(reg.metric)
            if value is None:
                value = generic_value(reg, unit, t, seed)
            table = tables[reg.function]
            offset = reg.address - table.start
            if reg.function.is_bit:
                table.words[offset] = bool(value)
            elif reg.type is DataType.BITS and reg.bit is not None:
                mask = 1 << reg.bit
                table.words[offset] = (table.words[offset] | mask) if value else (table.words[offset] & ~mask)
            else:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = fit_to_register(reg, value)
                table.words[offset:offset + reg.count] = encode_register(reg, value)
        for (function, address), word in (written or {}).items():
            table = tables[function]
            table.words[address - table.start] = word
        return tables, self.decode(tables)

    def decode(self, tables: Tables) -> dict[str, object]:
        """Metric -> value as a correct client decodes ``tables``."""
        served: dict[str, object] = {}
        for reg in self.profile.registers:
            words = tables[reg.function].read(reg.address, reg.count)
            served[reg.metric] = decode_register(reg, [int(w) for w in words])
        return served
