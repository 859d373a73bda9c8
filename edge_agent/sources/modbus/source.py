"""``type: modbus``: meters described by a register-map profile, over TCP, RTU or RTU-over-TCP."""

from __future__ import annotations

from edge_agent.sources.base import SourceContext
from edge_agent.sources.modbus.config import Config
from edge_agent.sources.modbus.link import group_by_endpoint
from edge_agent.sources.modbus.poller import ProfilePoller
from edge_agent.sources.modbus.runner import PollingSource


class ModbusSource(PollingSource):
    type_name = "modbus"

    def __init__(self, config: Config, context: SourceContext):
        super().__init__(config, context)
        for endpoint, devices in group_by_endpoint(config, config.devices).items():
            pollers = []
            for device in devices:
                profile = device.loaded_profile(context.profile_dirs)
                context.register(device.id, profile.kind)
                pollers.append(ProfilePoller(device.id, device.unit, profile, config.device_interval(device),
                                             config.read_limit(profile), config.gap(profile), context))
            self.groups[endpoint] = pollers
