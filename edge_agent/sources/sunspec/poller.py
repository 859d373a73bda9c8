"""Polling one SunSpec device: discover its map once per connection, then read the models we decode."""

from __future__ import annotations

from edge_agent.sources.base import DeviceBatch, SourceContext, reading
from edge_agent.sources.modbus.link import DeviceError, DeviceException, ModbusLink
from edge_agent.sources.sunspec.definitions import COMMON, DEFAULT_MODELS, model_table
from edge_agent.sources.sunspec.discovery import DeviceMap, ModelBlock, discover, read_span
from edge_agent.sources.sunspec.models import decode_identity, decode_model, describe_model
from hinode.contract import DeviceKind, MetricInfo


def metric_names(blocks: list[ModelBlock]) -> list[dict[str, str]]:
    """Per block, point name -> metric; a name an earlier model of the device took gets ``_<model id>``."""
    taken: set[str] = set()
    out = []
    for block in blocks:
        names = {}
        for point in model_table(block.id).reported:
            metric, n = point.metric, 1
            if metric in taken:
                metric = f"{point.metric}_{block.id}"
            while metric in taken:
                n += 1
                metric = f"{point.metric}_{block.id}_{n}"
            taken.add(metric)
            names[point.name] = metric
        out.append(names)
    return out


class SunSpecPoller:
    def __init__(self, device: str, unit: int, base_address: int | None, interval_s: float,
                 context: SourceContext, models: list[int] | None = None):
        self.device = device
        self.unit = unit
        self.base_address = base_address
        self.interval_s = interval_s
        self.context = context
        self.wanted = frozenset(models) if models else DEFAULT_MODELS
        self.restricted = models is not None
        self.map: DeviceMap | None = None
        self.blocks: list[ModelBlock] = []
        self.names: list[dict[str, str]] = []
        self.identity: dict[str, str] = {}
        self._identity_pending = False
        self.profile = "sunspec"

    def on_reconnect(self) -> None:
        self.map = None           # the device may have been replaced while we were away

    async def _discover(self, link: ModbusLink) -> None:
        device_map = await discover(link, self.unit, self.base_address)
        common = device_map.models[0]
        words = await read_span(link, self.unit, common.address, min(common.length, model_table(COMMON).length))
        blocks = [m for m in device_map.models if m.id in self.wanted]
        if not blocks:
            wanted = f"the configured models {sorted(self.wanted)}" if self.restricted else "a supported model"
            raise DeviceError(f"unit {self.unit} has none of {wanted}; its models are {device_map.ids}",
                              code="no_supported_model")
        missing = self.wanted - {m.id for m in blocks}
        if self.restricted and missing:
            self.context.log.warning("%s: device %s: configured models %s are not in its map %s",
                                     self.context.source_name, self.device, sorted(missing), device_map.ids)
        self.identity = decode_identity(words)
        self.map, self.blocks, self.names = device_map, blocks, metric_names(blocks)
        self.profile = "sunspec-" + "-".join(str(m.id) for m in blocks)
        self._identity_pending = True
        self.context.log.info("%s: device %s: SunSpec at %d, models %s, reading %s, %s", self.context.source_name,
                              self.device, device_map.base, device_map.ids, [m.id for m in blocks],
                              ", ".join(f"{k}={v!r}" for k, v in self.identity.items()))

    async def poll(self, link: ModbusLink, ts: int) -> DeviceBatch:
        if self.map is None:
            await self._discover(link)
        bodies = []
        try:
            for block in self.blocks:
                bodies.append(await read_span(link, self.unit, block.address, block.length))
        except DeviceException:
            self.map = None       # the map moved (firmware update, other device): find it again
            raise
        readings = []
        for block, names, words in zip(self.blocks, self.names, bodies):
            readings += decode_model(model_table(block.id), words, ts, names)
        if self._identity_pending:
            # The catalog lists what this device reports, with the scale factors it uses.
            reported = {r.metric for r in readings}
            metrics = [MetricInfo(metric=m) for m in self.identity]
            for block, names, words in zip(self.blocks, self.names, bodies):
                metrics += describe_model(model_table(block.id), words, reported, names)
            self.context.describe(self.device, self.profile, metrics)
            readings = [reading(ts, metric, value) for metric, value in self.identity.items()] + readings
            self._identity_pending = False
        return DeviceBatch(device=self.device, kind=DeviceKind.METER, profile=self.profile, readings=readings)
