"""Register codec: Modbus registers <-> values, for every profile data type and order.

Edge sources decode with it, simulators encode with it, so both read the same
profile the same way. Registers are 16-bit unsigned ints as pymodbus returns them.
``encode_register`` saturates like a meter's register would (the simulators' use);
``encode_write`` is the strict inverse a write command uses: it refuses instead.
"""

from __future__ import annotations

import math
import struct
import sys

from device_profiles.schema import DataType, Order, Register

_STRUCT = {
    DataType.INT16: "h", DataType.UINT16: "H", DataType.INT32: "i", DataType.UINT32: "I",
    DataType.INT64: "q", DataType.UINT64: "Q", DataType.FLOAT32: "f", DataType.FLOAT64: "d",
}


class DecodeError(ValueError):
    pass


class EncodeError(ValueError):
    """A value a write must not send; the message names the value and what is wrong with it."""


def _to_bytes(registers: list[int], byte_order: Order, word_order: Order) -> bytes:
    """Registers in wire order -> big-endian bytes of the whole value."""
    words = registers if word_order is Order.BIG else list(reversed(registers))
    out = bytearray()
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise DecodeError(f"register value {word} is not 16-bit")
        hi, lo = word >> 8, word & 0xFF
        out += bytes((hi, lo)) if byte_order is Order.BIG else bytes((lo, hi))
    return bytes(out)


def _from_bytes(data: bytes, byte_order: Order, word_order: Order) -> list[int]:
    words = []
    for i in range(0, len(data), 2):
        hi, lo = data[i], data[i + 1]
        words.append((hi << 8 | lo) if byte_order is Order.BIG else (lo << 8 | hi))
    return words if word_order is Order.BIG else list(reversed(words))


def decode_raw(registers: list[int], dtype: DataType, byte_order: Order = Order.BIG,
               word_order: Order = Order.BIG, bit: int | None = None) -> int | float | str | bool:
    """The unscaled value held by ``registers`` (exactly the value's register count)."""
    if dtype is DataType.BITS:
        if bit is None:
            return bool(registers[0])
        return bool((registers[0] >> bit) & 1)
    data = _to_bytes(registers, byte_order, word_order)
    if dtype is DataType.STRING:
        return data.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    fmt = _STRUCT[dtype]
    if struct.calcsize(fmt) != len(data):
        raise DecodeError(f"{dtype} needs {struct.calcsize(fmt) // 2} registers, got {len(registers)}")
    return struct.unpack(">" + fmt, data)[0]


def encode_raw(value: int | float | str | bool, dtype: DataType, byte_order: Order = Order.BIG,
               word_order: Order = Order.BIG, length: int | None = None) -> list[int]:
    """Registers that hold the unscaled ``value`` (inverse of decode_raw)."""
    if dtype is DataType.BITS:
        return [1 if value else 0]
    if dtype is DataType.STRING:
        size = 2 * (length or 1)
        data = str(value).encode("ascii")[:size].ljust(size, b"\x00")
    else:
        fmt = _STRUCT[dtype]
        if fmt in "fd":
            data = struct.pack(">" + fmt, float(value))
        else:
            data = struct.pack(">" + fmt, int(value))
    return _from_bytes(data, byte_order, word_order)


def decode_register(register: Register, registers: list[int]) -> int | float | str | bool | None:
    """Scaled value of one profile register, or None for NaN/inf floats."""
    raw = decode_raw(registers, register.type, register.byte_order or Order.BIG,
                     register.word_order or Order.BIG, register.bit)
    if isinstance(raw, (str, bool)):
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    if register.scale == 1.0 and register.offset == 0.0:
        return raw
    return raw * register.scale + register.offset


_INT_RANGE = {
    DataType.INT16: (-2**15, 2**15 - 1), DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-2**31, 2**31 - 1), DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-2**63, 2**63 - 1), DataType.UINT64: (0, 2**64 - 1),
}


def encode_register(register: Register, value: int | float | str | bool) -> list[int]:
    """Registers a device would hold so that ``decode_register`` gives ``value`` back.

    Integers saturate at their type's bounds, as a device's register would: a float near
    2**63 rounds to just past the int64 range.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and register.type not in (DataType.STRING, DataType.BITS):
        raw = (value - register.offset) / register.scale if register.scale else value
        if register.type in _INT_RANGE:
            low, high = _INT_RANGE[register.type]
            raw = min(max(round(raw), low), high)
        value = raw
    return encode_raw(value, register.type, register.byte_order or Order.BIG,
                      register.word_order or Order.BIG, register.length)


def _show(value) -> str:
    """A value for an error message: 100 not 100.0, and never a 400-digit wall."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _raw_integer(register: Register, value: int | float) -> int:
    """The register's raw integer for ``value`` (inverse scale/offset); EncodeError if there is none."""
    dtype = register.type
    if register.scale == 1.0 and register.offset == 0.0 and (isinstance(value, int) or value.is_integer()):
        raw = int(value)                  # exact, also beyond 2**53
    else:
        exact = (value - register.offset) / register.scale
        raw = round(exact)
        # Tolerate only the rounding this arithmetic can add (12.34 / 0.01 is 1233.9999999999998),
        # so that 12345678.905 in steps of 0.01 is refused rather than rounded.
        noise = 16 * sys.float_info.epsilon * (abs(value) + abs(register.offset)) / abs(register.scale)
        if abs(exact - raw) > noise + 1e-9:
            step = "" if register.scale == 1.0 else f" of steps of {_show(register.scale)}"
            step += f" from {_show(register.offset)}" if register.offset else ""
            raise EncodeError(f"value {_show(value)} is not a whole number{step} for {dtype} (raw {exact!r})")
    low, high = _INT_RANGE[dtype]
    if not low <= raw <= high:
        scaled = "" if register.scale == 1.0 and register.offset == 0.0 else f" (raw {_show(raw)}, range {low}..{high})"
        raise EncodeError(f"value {_show(value)} out of range for {dtype}{scaled}")
    return raw


def encode_write(register: Register, value: int | float | bool) -> list[int]:
    """Words (or ``[0]``/``[1]`` for a bit) that make the device hold exactly ``value``.

    The strict inverse of ``decode_register`` for a write: refuses (EncodeError) a value
    that is not finite, lies outside the profile's min/max, is not integral after inverse
    scaling for an integer type, or does not fit the type; never rounds to the nearest
    step or saturates. A float type stores the nearest float32/float64.
    """
    metric = register.metric
    if register.type is DataType.BITS:
        if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
            return [1 if value else 0]
        raise EncodeError(f"value {_show(value)} is not a boolean (true/false or 1/0) for {metric}")
    if register.type is DataType.STRING:
        raise EncodeError(f"{metric} is a string register; writes take numbers")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EncodeError(f"value {_show(value)} is not a number for {metric} ({register.type})")
    if isinstance(value, float) and not math.isfinite(value):
        raise EncodeError(f"value {_show(value)} is not a finite number for {metric}")
    if register.min is not None and value < register.min:
        raise EncodeError(f"value {_show(value)} below min {_show(register.min)} of {metric}")
    if register.max is not None and value > register.max:
        raise EncodeError(f"value {_show(value)} above max {_show(register.max)} of {metric}")
    byte_order, word_order = register.byte_order or Order.BIG, register.word_order or Order.BIG
    try:
        if register.type in _INT_RANGE:
            raw = _raw_integer(register, value)
        else:
            raw = (value - register.offset) / register.scale if register.scale else math.nan
            if not math.isfinite(raw):
                raise OverflowError
        return encode_raw(raw, register.type, byte_order, word_order)
    except OverflowError:                 # beyond float32, or an int too large for any float
        raise EncodeError(f"value {_show(value)} out of range for {register.type}") from None
