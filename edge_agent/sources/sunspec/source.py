"""``type: sunspec``: SunSpec meters, inverters and storage found by discovery instead of a profile."""

from __future__ import annotations

from edge_agent.sources.base import SourceContext
from edge_agent.sources.modbus.link import group_by_endpoint
from edge_agent.sources.modbus.runner import PollingSource
from edge_agent.sources.sunspec.config import Config
from edge_agent.sources.sunspec.definitions import COMMON, DEFAULT_MODELS, model_table
from edge_agent.sources.sunspec.poller import SunSpecPoller
from hinode.contract import DeviceKind


class SunSpecSource(PollingSource):
    type_name = "sunspec"

    def __init__(self, config: Config, context: SourceContext):
        super().__init__(config, context)
        for model_id in {COMMON} | DEFAULT_MODELS | {m for d in config.devices for m in d.models or ()}:
            model_table(model_id)       # a definition we cannot table fails here, not at the first poll
        for endpoint, devices in group_by_endpoint(config, config.devices).items():
            pollers = []
            for device in devices:
                context.register(device.id, DeviceKind.METER)
                pollers.append(SunSpecPoller(device.id, device.unit, device.base_address,
                                             config.device_interval(device), context, device.models))
            self.groups[endpoint] = pollers
