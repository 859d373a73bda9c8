"""What every characteristic decoder shares: a byte cursor that raises DecodeError, the
7-byte Date Time, the numbers, unit conversion to the canonical units and flag names."""

from __future__ import annotations

import math
from datetime import datetime

from edge_agent.sources.ble.ieee11073 import Number, decode_float, decode_ieee754_float32, decode_sfloat
from edge_agent.sources.ble.measurement import DecodeError, VitalValue

MMHG_PER_KPA = 7.50062
KG_PER_LB = 0.45359237
CM_PER_IN = 2.54
MG_DL_PER_KG_L = 100_000.0
MG_DL_PER_MMOL_L = 18.016
MG_DL_PER_MOL_L = 1000.0 * MG_DL_PER_MMOL_L

UNKNOWN_USER = 0xFF
BAD_TIME = "bad_time"   # a status name: the device sent an impossible date/time (kept as unknown)


class Reader:
    """A cursor over one characteristic value. Every read past the end is ``DecodeError('too_short')``."""

    def __init__(self, data: bytes, what: str):
        self.data = bytes(data)
        self.what = what
        self.pos = 0

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError("too_short", f"{self.what}: {len(self.data)} bytes end before {field} "
                                           f"(needs {n} bytes at offset {self.pos})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int, field: str) -> int:
        return int.from_bytes(self.take(n, field), "little")

    def sint(self, n: int, field: str) -> int:
        return int.from_bytes(self.take(n, field), "little", signed=True)

    def sfloat(self, field: str) -> Number:
        return decode_sfloat(self.uint(2, field))

    def float(self, field: str, ieee754: bool = False) -> Number:
        raw = self.take(4, field)
        return decode_ieee754_float32(raw) if ieee754 else decode_float(int.from_bytes(raw, "little"))

    def date_time(self, field: str = "date time") -> tuple[datetime | None, bool]:
        """(time, bad): year, month or day 0 mean unknown -> (None, False); an impossible date or
        time -> (None, True), for the caller to add ``bad_time`` to the status."""
        raw = self.take(7, field)
        year = int.from_bytes(raw[0:2], "little")
        month, day, hour, minute, second = raw[2], raw[3], raw[4], raw[5], raw[6]
        if year == 0 or month == 0 or day == 0:
            return None, False
        if not 1582 <= year <= 9999:
            return None, True
        try:
            return datetime(year, month, day, hour, minute, second), False
        except ValueError:
            return None, True

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def check_reserved_flags(flags: int, allowed_mask: int, what: str) -> None:
    if flags & ~allowed_mask & 0xFF:
        raise DecodeError("reserved_flags", f"{what}: flags 0x{flags:02X} set reserved bits "
                                            f"0x{flags & ~allowed_mask & 0xFF:02X}; the layout after them is unknown")


def _decimals_for_step(step: float) -> int:
    return max(0, round(-math.log10(step))) if step > 0 else 0


def _exact_decimals(step: float) -> int:
    """Decimals that write the step exactly: 0.005 -> 3, 0.05 -> 2, 0.5 -> 1, 0.2 -> 1."""
    for decimals in range(0, 7):
        if abs(round(step, decimals) - step) < 1e-12:
            return decimals
    return 6


def vital(metric: str, number: Number, factor: float = 1.0, offset: float = 0.0) -> VitalValue:
    """A VitalValue from a device number in the device's unit: canonical = (raw + offset) x factor.

    Conversion keeps the device's precision: the decimals shown are those of the device's step
    in the canonical unit (0.1 kPa = 0.75 mmHg -> 0 decimals), the value keeps two more.
    """
    if number.value is None:
        return VitalValue(metric, None, number.absent)
    if factor == 1.0 and offset == 0.0:
        return VitalValue(metric, number.value, decimals=number.decimals)
    decimals = _decimals_for_step(10.0 ** -(number.decimals or 0) * abs(factor))
    return VitalValue(metric, round((number.value + offset) * factor, decimals + 2), decimals=decimals)


def vital_from_steps(metric: str, raw: int, step: float, factor: float = 1.0) -> VitalValue:
    """A VitalValue from an unsigned count of ``step`` (weight scales): canonical = raw x step x factor."""
    decimals = _exact_decimals(step) if factor == 1.0 else _decimals_for_step(step * factor)
    return VitalValue(metric, round(raw * step * factor, decimals + 2), decimals=decimals)


def bit_names(bits: int, names: dict[int, str]) -> list[str]:
    return [name for bit, name in sorted(names.items()) if bits >> bit & 1]


def known_user(user_id: int) -> int | None:
    """User ids 0..254; 255 is the spec's "unknown user"."""
    return None if user_id == UNKNOWN_USER else user_id
