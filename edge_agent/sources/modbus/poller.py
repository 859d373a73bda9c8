"""Reading one profile-described device: its planned block reads, decoded into one batch.

Decoding is on the hot path (every value of every poll): a block whose values are all
big-endian numbers is decoded with one precompiled ``struct`` call, and readings are
built without pydantic's generic ``model_construct`` (5x cheaper, same object). Anything
else (bits, strings, little-endian words or bytes, a register value out of range) goes
through ``device_profiles.codec.decode_register`` exactly as before.
"""

from __future__ import annotations

import math
import struct

from device_profiles.codec import DecodeError, decode_register
from device_profiles.schema import DataType, ModbusProfile, Order
from edge_agent.sources.base import DeviceBatch, SourceContext
from edge_agent.sources.modbus.link import ModbusLink
from edge_agent.sources.modbus.planner import ReadBlock, plan_reads
from hinode.contract import Quality, Reading

_STRUCT_CODE = {
    DataType.INT16: "h", DataType.UINT16: "H", DataType.INT32: "i", DataType.UINT32: "I",
    DataType.INT64: "q", DataType.UINT64: "Q", DataType.FLOAT32: "f", DataType.FLOAT64: "d",
}
_READING_FIELDS = frozenset(Reading.model_fields)
_new, _set = object.__new__, object.__setattr__


def fast_reading(ts: int, metric: str, value, unit: str, quality: Quality) -> Reading:
    """The same Reading as ``Reading.model_construct(...)`` with every field given, built directly."""
    obj = _new(Reading)
    _set(obj, "__dict__", {"ts": ts, "metric": metric, "value": value, "unit": unit, "quality": quality})
    _set(obj, "__pydantic_fields_set__", set(_READING_FIELDS))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


class BlockDecoder:
    """One ``struct`` for a whole block of big-endian numeric registers; None if it does not apply."""

    def __init__(self, block: ReadBlock):
        self.words = struct.Struct(f">{block.count}H")
        fmt, position = [">"], 0
        self.post = []          # (metric, unit, scale, offset, is_float) per slot, in block order
        for slot in block.slots:
            register = slot.register
            fmt.append("x" * (2 * (slot.offset - position)) + _STRUCT_CODE[register.type])
            position = slot.offset + slot.count
            plain = register.scale == 1.0 and register.offset == 0.0
            self.post.append((register.metric, register.unit, None if plain else (register.scale, register.offset),
                              register.type in (DataType.FLOAT32, DataType.FLOAT64)))
        fmt.append("x" * (2 * (block.count - position)))
        self.values = struct.Struct("".join(fmt))

    @staticmethod
    def applies(block: ReadBlock) -> bool:
        position = 0
        for slot in block.slots:
            register = slot.register
            if (block.function.is_bit or register.type not in _STRUCT_CODE or register.bit is not None
                    or (register.byte_order or Order.BIG) is not Order.BIG
                    or (register.word_order or Order.BIG) is not Order.BIG or slot.offset < position):
                return False
            position = slot.offset + slot.count
        return True

    def decode(self, words: list[int], ts: int, out: list[Reading]) -> bool:
        """Append the block's readings to ``out``; False (nothing appended) if a word is out of range."""
        try:
            raw = self.values.unpack(self.words.pack(*words))
        except struct.error:
            return False
        good, bad, isfinite = Quality.GOOD, Quality.BAD, math.isfinite
        for (metric, unit, scaling, is_float), value in zip(self.post, raw):
            if is_float and not isfinite(value):
                out.append(fast_reading(ts, metric, None, unit, bad))
                continue
            if scaling is not None:
                value = value * scaling[0] + scaling[1]
            out.append(fast_reading(ts, metric, value, unit, good))
        return True


class ProfilePoller:
    def __init__(self, device: str, unit: int, profile: ModbusProfile, interval_s: float,
                 max_registers: int, max_gap: int, context: SourceContext):
        self.device = device
        self.unit = unit
        self.profile = profile
        self.interval_s = interval_s
        self.context = context
        self.blocks: list[ReadBlock] = plan_reads(profile.registers, max_registers, max_gap)
        self.decoders = [BlockDecoder(block) if BlockDecoder.applies(block) else None for block in self.blocks]
        self._decode_failures_logged: set[str] = set()

    def on_reconnect(self) -> None:
        pass

    async def poll(self, link: ModbusLink, ts: int) -> DeviceBatch:
        # Read every block first: a batch holds values of this poll only, or nothing.
        values = [await link.read(block.function, block.address, block.count, self.unit) for block in self.blocks]
        readings: list[Reading] = []
        for block, decoder, words in zip(self.blocks, self.decoders, values):
            if decoder is not None and decoder.decode(words, ts, readings):
                continue
            for slot in block.slots:
                register = slot.register
                raw = words[slot.offset:slot.offset + slot.count]
                if block.function.is_bit:
                    raw = [1 if raw[0] else 0]
                try:
                    value = decode_register(register, raw)
                except (DecodeError, ValueError, struct.error) as exc:
                    self._decode_failed(register.metric, exc)
                    value = None
                quality = Quality.GOOD if value is not None else Quality.BAD
                readings.append(fast_reading(ts, register.metric, value, register.unit, quality))
        return DeviceBatch(device=self.device, kind=self.profile.kind, profile=self.profile.id, readings=readings)

    def _decode_failed(self, metric: str, exc: Exception) -> None:
        self.context.count_error(self.device, "decode")
        if metric not in self._decode_failures_logged:
            self._decode_failures_logged.add(metric)
            self.context.log.warning("%s: device %s: cannot decode %s: %s", self.context.source_name,
                                     self.device, metric, exc)
