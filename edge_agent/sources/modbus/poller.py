"""Reading one profile-described device: its planned block reads, decoded into one batch."""

from __future__ import annotations

import struct

from device_profiles.codec import DecodeError, decode_register
from device_profiles.schema import ModbusProfile
from edge_agent.sources.base import DeviceBatch, SourceContext, reading
from edge_agent.sources.modbus.link import ModbusLink
from edge_agent.sources.modbus.planner import ReadBlock, plan_reads
from hinode.contract import Quality


class ProfilePoller:
    def __init__(self, device: str, unit: int, profile: ModbusProfile, interval_s: float,
                 max_registers: int, max_gap: int, context: SourceContext):
        self.device = device
        self.unit = unit
        self.profile = profile
        self.interval_s = interval_s
        self.context = context
        self.blocks: list[ReadBlock] = plan_reads(profile.registers, max_registers, max_gap)
        self._decode_failures_logged: set[str] = set()

    def on_reconnect(self) -> None:
        pass

    async def poll(self, link: ModbusLink, ts: int) -> DeviceBatch:
        # Read every block first: a batch holds values of this poll only, or nothing.
        values = [await link.read(block.function, block.address, block.count, self.unit) for block in self.blocks]
        readings = []
        for block, words in zip(self.blocks, values):
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
                readings.append(reading(ts, register.metric, value, register.unit, quality))
        return DeviceBatch(device=self.device, kind=self.profile.kind, profile=self.profile.id, readings=readings)

    def _decode_failed(self, metric: str, exc: Exception) -> None:
        self.context.count_error(self.device, "decode")
        if metric not in self._decode_failures_logged:
            self._decode_failures_logged.add(metric)
            self.context.log.warning("%s: device %s: cannot decode %s: %s", self.context.source_name,
                                     self.device, metric, exc)
