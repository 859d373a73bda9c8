"""``type: modbus``: meters described by a register-map profile, over TCP, RTU or RTU-over-TCP."""

from __future__ import annotations

from edge_agent.sources.base import CommandOutcome, SourceContext
from edge_agent.sources.modbus.commands import ModbusCommands, Target
from edge_agent.sources.modbus.config import Config
from edge_agent.sources.modbus.link import group_by_endpoint
from edge_agent.sources.modbus.poller import ProfilePoller
from edge_agent.sources.modbus.runner import PollingSource
from hinode.contract import Command


class ModbusSource(PollingSource):
    type_name = "modbus"

    def __init__(self, config: Config, context: SourceContext):
        super().__init__(config, context)
        targets: dict[str, Target] = {}
        for endpoint, devices in group_by_endpoint(config, config.devices).items():
            pollers = []
            for device in devices:
                profile = device.loaded_profile(context.profile_dirs)
                context.register(device.id, profile.kind)
                context.describe(device.id, profile.id, profile.metric_infos())
                targets[device.id] = Target(device.id, device.unit, profile)
                pollers.append(ProfilePoller(device.id, device.unit, profile, config.device_interval(device),
                                             config.read_limit(profile), config.gap(profile), context))
            self.groups[endpoint] = pollers
        self._commands = ModbusCommands(context, targets, self.link_of)

    async def handle_command(self, command: Command, device: str | None) -> CommandOutcome:
        """``write`` with params ``{metric, value}`` on one device (see README.md, "Commands: write")."""
        return await self._commands.handle(command, device)
