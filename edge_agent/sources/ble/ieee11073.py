"""IEEE-11073-20601 SFLOAT and FLOAT (the numbers of the Bluetooth health profiles), and the
IEEE-754 float32 some vendors send instead.

SFLOAT is 16 bits: a 4-bit exponent (high nibble) and a 12-bit mantissa, both two's complement;
value = mantissa x 10^exponent. FLOAT is 32 bits: an 8-bit exponent (high byte) and a 24-bit
mantissa. Both travel little-endian. The exponent is the precision: 0xF014 is "2.0" (1 decimal),
0xE0C8 is "2.00" (2 decimals); :class:`Number` keeps it as ``decimals``.

Special values are recognised by the mantissa alone, whatever the exponent (Nordic's parser does
the same; the standard writes them with exponent 0 and reserves those mantissas for them):

    ======== ======== ========== ===================
    SFLOAT   FLOAT    meaning    HL7 PHD code
    ======== ======== ========== ===================
    0x07FF   0x7FFFFF NaN        not-a-number
    0x0800   0x800000 NRes       error
    0x07FE   0x7FFFFE +INF       positive-infinity
    0x0802   0x800002 -INF       negative-infinity
    0x0801   0x800001 reserved   error
    ======== ======== ========== ===================

Not the ``bluetooth-sig`` package: its SFLOAT subtracts a bias of 8 from the exponent instead of
reading it as two's complement (0x0078 = 120 mmHg comes out as 1.2e-06).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

NOT_A_NUMBER = "not-a-number"
POSITIVE_INFINITY = "positive-infinity"
NEGATIVE_INFINITY = "negative-infinity"
ERROR = "error"

# Names used by encoders and the simulators' ``special=`` argument.
SPECIAL_NAMES = {"nan": NOT_A_NUMBER, "nres": ERROR, "+inf": POSITIVE_INFINITY, "-inf": NEGATIVE_INFINITY,
                 "reserved": ERROR}

_SFLOAT_SPECIAL = {0x07FF: NOT_A_NUMBER, 0x0800: ERROR, 0x07FE: POSITIVE_INFINITY, 0x0802: NEGATIVE_INFINITY,
                   0x0801: ERROR}
_FLOAT_SPECIAL = {0x7FFFFF: NOT_A_NUMBER, 0x800000: ERROR, 0x7FFFFE: POSITIVE_INFINITY,
                  0x800002: NEGATIVE_INFINITY, 0x800001: ERROR}
_SFLOAT_ENCODE_SPECIAL = {"nan": 0x07FF, "nres": 0x0800, "+inf": 0x07FE, "-inf": 0x0802, "reserved": 0x0801}
_FLOAT_ENCODE_SPECIAL = {"nan": 0x007FFFFF, "nres": 0x00800000, "+inf": 0x007FFFFE, "-inf": 0x00800002,
                         "reserved": 0x00800001}

SFLOAT_MANTISSA_MAX = 0x07FD     # 2045; 2046 and 2047 are special
SFLOAT_MANTISSA_MIN = -0x07FE    # -2046; -2047 and -2048 are special
FLOAT_MANTISSA_MAX = 0x7FFFFD
FLOAT_MANTISSA_MIN = -0x7FFFFE


@dataclass(frozen=True)
class Number:
    """A decoded number: ``value`` (finite) and ``decimals``, or ``value=None`` and the PHD ``absent`` code."""

    value: float | None
    absent: str | None = None
    decimals: int | None = None


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def _scaled(mantissa: int, exponent: int) -> Number:
    if exponent < 0:
        return Number(mantissa / 10 ** -exponent, decimals=-exponent)
    return Number(float(mantissa * 10 ** exponent), decimals=0)


def decode_sfloat(raw: int) -> Number:
    """``raw`` is the 16-bit value as read little-endian."""
    mantissa_bits = raw & 0x0FFF
    if mantissa_bits in _SFLOAT_SPECIAL:
        return Number(None, _SFLOAT_SPECIAL[mantissa_bits])
    return _scaled(_signed(mantissa_bits, 12), _signed(raw >> 12 & 0xF, 4))


def decode_float(raw: int) -> Number:
    """``raw`` is the 32-bit value as read little-endian."""
    mantissa_bits = raw & 0xFFFFFF
    if mantissa_bits in _FLOAT_SPECIAL:
        return Number(None, _FLOAT_SPECIAL[mantissa_bits])
    return _scaled(_signed(mantissa_bits, 24), _signed(raw >> 24 & 0xFF, 8))


def decode_ieee754_float32(data: bytes) -> Number:
    """A little-endian IEEE-754 float32 (some vendors' thermometers). NaN/inf map to the PHD codes;
    the value is the shortest decimal that reads back as the same float32 (37.6, not 37.59999847)."""
    (value,) = struct.unpack("<f", data)
    if math.isnan(value):
        return Number(None, NOT_A_NUMBER)
    if math.isinf(value):
        return Number(None, POSITIVE_INFINITY if value > 0 else NEGATIVE_INFINITY)
    for digits in range(1, 10):     # 9 significant digits always read back
        text = f"{value:.{digits}g}"
        try:
            if struct.pack("<f", float(text)) == bytes(data):
                break
        except OverflowError:       # rounding near the float32 maximum went past it: take more digits
            continue
    mantissa_text = text.split("e")[0]
    exponent = int(text.split("e")[1]) if "e" in text else 0
    decimals = max(0, (len(mantissa_text.split(".")[1]) if "." in mantissa_text else 0) - exponent)
    return Number(float(text), decimals=decimals)


# ------------------------------------------------------------------ encoding (simulators, tests)

def _mantissa_exponent(value: float, decimals: int, low: int, high: int, exp_low: int,
                       exp_high: int) -> tuple[int, int]:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not finite; give special= instead")
    exponent = -decimals
    mantissa = round(value * 10 ** decimals)
    while not low <= mantissa <= high and exponent < exp_high:     # too big: lose precision
        exponent += 1
        mantissa = round(value / 10 ** exponent) if exponent > 0 else round(value * 10 ** -exponent)
    if not (low <= mantissa <= high and exp_low <= exponent <= exp_high):
        raise ValueError(f"{value!r} with {decimals} decimals does not fit")
    return mantissa, exponent


def encode_sfloat(value: float | None, decimals: int = 0, special: str | None = None) -> int:
    """The 16-bit raw value of ``value`` with ``decimals`` (or of a special: nan, nres, +inf, -inf, reserved)."""
    if special is not None or value is None:
        return _SFLOAT_ENCODE_SPECIAL[special or "nan"]
    mantissa, exponent = _mantissa_exponent(value, decimals, SFLOAT_MANTISSA_MIN, SFLOAT_MANTISSA_MAX, -8, 7)
    return (exponent & 0xF) << 12 | (mantissa & 0x0FFF)


def encode_float(value: float | None, decimals: int = 0, special: str | None = None) -> int:
    """The 32-bit raw value of ``value`` with ``decimals`` (or of a special)."""
    if special is not None or value is None:
        return _FLOAT_ENCODE_SPECIAL[special or "nan"]
    mantissa, exponent = _mantissa_exponent(value, decimals, FLOAT_MANTISSA_MIN, FLOAT_MANTISSA_MAX, -128, 127)
    return (exponent & 0xFF) << 24 | (mantissa & 0xFFFFFF)


def sfloat_bytes(value: float | None, decimals: int = 0, special: str | None = None) -> bytes:
    return encode_sfloat(value, decimals, special).to_bytes(2, "little")


def float_bytes(value: float | None, decimals: int = 0, special: str | None = None) -> bytes:
    return encode_float(value, decimals, special).to_bytes(4, "little")


def ieee754_bytes(value: float | None, special: str | None = None) -> bytes:
    if special is not None or value is None:
        value = {"+inf": math.inf, "-inf": -math.inf}.get(special or "nan", math.nan)
    return struct.pack("<f", value)
