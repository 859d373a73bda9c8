"""Polling one SunSpec meter: discover its map once per connection, then read its meter model."""

from __future__ import annotations

from edge_agent.sources.base import DeviceBatch, SourceContext, reading
from edge_agent.sources.modbus.link import DeviceError, DeviceException, ModbusLink
from edge_agent.sources.sunspec.discovery import DeviceMap, ModelBlock, discover, read_span
from edge_agent.sources.sunspec.models import decode_identity, decode_meter, describe_meter, tables
from hinode.contract import DeviceKind, MetricInfo


class SunSpecPoller:
    def __init__(self, device: str, unit: int, base_address: int | None, interval_s: float,
                 context: SourceContext):
        self.device = device
        self.unit = unit
        self.base_address = base_address
        self.interval_s = interval_s
        self.context = context
        self.map: DeviceMap | None = None
        self.meter: ModelBlock | None = None
        self.identity: dict[str, str] = {}
        self._identity_pending = False
        self.profile = "sunspec"

    def on_reconnect(self) -> None:
        self.map = None           # the device may have been replaced while we were away

    async def _discover(self, link: ModbusLink) -> None:
        common_table, meter_tables = tables()
        device_map = await discover(link, self.unit, self.base_address)
        common = device_map.models[0]
        words = await read_span(link, self.unit, common.address, min(common.length, common_table.length))
        meters = [m for m in device_map.models if m.id in meter_tables]
        if not meters:
            raise DeviceError(f"no meter model (201-204) on unit {self.unit}; models {device_map.ids}",
                              code="no_meter_model")
        if len(meters) > 1:
            self.context.log.warning("%s: device %s has meter models %s; reading the first only",
                                     self.context.source_name, self.device, [m.id for m in meters])
        self.identity = decode_identity(common_table, words)
        self.map, self.meter = device_map, meters[0]
        self.profile = f"sunspec-{self.meter.id}"
        self._identity_pending = True
        self.context.log.info("%s: device %s: SunSpec at %d, models %s, %s", self.context.source_name,
                              self.device, device_map.base, device_map.ids,
                              ", ".join(f"{k}={v!r}" for k, v in self.identity.items()))

    async def poll(self, link: ModbusLink, ts: int) -> DeviceBatch:
        if self.map is None:
            await self._discover(link)
        _, meter_tables = tables()
        try:
            words = await read_span(link, self.unit, self.meter.address, self.meter.length)
        except DeviceException:
            self.map = None       # the map moved (firmware update, other device): find it again
            raise
        readings = decode_meter(meter_tables[self.meter.id], words, ts)
        if self._identity_pending:
            # The catalog lists what this device reports, with the scale factors it uses.
            metrics = describe_meter(meter_tables[self.meter.id], words, {r.metric for r in readings})
            self.context.describe(self.device, self.profile, [MetricInfo(metric=m) for m in self.identity] + metrics)
            readings = [reading(ts, metric, value) for metric, value in self.identity.items()] + readings
            self._identity_pending = False
        return DeviceBatch(device=self.device, kind=DeviceKind.METER, profile=self.profile, readings=readings)
