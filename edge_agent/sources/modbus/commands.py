"""Commands of the Modbus source. ``write`` sets one writable register or coil of a device.

Validation happens before anything goes on the wire and answers ``rejected`` with the
reason (unknown metric, not writable, not a number, outside min/max, not representable
in the register's type). The write then goes over the link the device is polled on,
holding the link's lock, so it never interleaves with a poll. The register is read back
under the same lock and compared word for word with what was written.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from device_profiles.codec import EncodeError, decode_register, encode_write
from device_profiles.schema import ModbusProfile, Register
from edge_agent.sources.base import CommandOutcome, SourceContext
from edge_agent.sources.modbus.link import DeviceError, LinkDown, ModbusLink
from hinode.contract import Command

SUPPORTED = ("write",)
WRITE_PARAMS = ("metric", "value")
SOURCE_KEY = "_source"          # where a command without a known device is counted
# A command kept by the broker while the agent was down arrives right after the agent
# starts, usually before the endpoint has (re)connected: wait for the link this long
# (the agent gives a command 30 s by default) before answering failed.
CONNECT_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    device: str
    unit: int
    profile: ModbusProfile


@dataclass(frozen=True, slots=True)
class WritePlan:
    register: Register
    requested: int | float | bool
    words: list[int]            # registers to write, or [0]/[1] for a coil


class Rejected(Exception):
    """A command that must not be executed; the message says why."""


def plan_write(profile: ModbusProfile, params: dict) -> WritePlan:
    """Check a write's params against the profile; Rejected names what is wrong."""
    unknown = sorted(set(params) - set(WRITE_PARAMS))
    missing = [name for name in WRITE_PARAMS if name not in params]
    if unknown or missing:
        problems = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        raise Rejected(f"write takes params metric and value ({'; '.join(problems)})")
    metric, value = params["metric"], params["value"]
    register = next((r for r in profile.registers if r.metric == metric), None)
    writable = [r.metric for r in profile.registers if r.writable]
    if register is None:
        raise Rejected(f"metric {metric!r} is not in profile {profile.id} (writable: {', '.join(writable) or 'none'})")
    if not register.writable:
        raise Rejected(f"metric {metric!r} is not writable in profile {profile.id} "
                       f"(writable: {', '.join(writable) or 'none'})")
    try:
        words = encode_write(register, value)
    except EncodeError as exc:
        raise Rejected(str(exc)) from None
    return WritePlan(register, value, words)


def _read_back_value(register: Register, values: list):
    if register.function.is_bit:
        return bool(values[0])
    return decode_register(register, [int(v) for v in values])


class ModbusCommands:
    """Executes commands for the devices of one source; never raises."""

    def __init__(self, context: SourceContext, targets: dict[str, Target], link_of: dict[str, ModbusLink],
                 connect_wait_s: float = CONNECT_WAIT_S):
        self.context = context
        self.targets = targets
        self.link_of = link_of          # filled when the source connects
        self.connect_wait_s = connect_wait_s

    def _rejected(self, device: str | None, message: str) -> CommandOutcome:
        self.context.count_error(device or SOURCE_KEY, "command_rejected")
        return CommandOutcome.rejected(message)

    def _failed(self, device: str, message: str) -> CommandOutcome:
        self.context.count_error(device, "command_failed")
        self.context.log.warning("%s: device %s: command failed: %s", self.context.source_name, device, message)
        return CommandOutcome.failed(message)

    async def handle(self, command: Command, device: str | None) -> CommandOutcome:
        if command.name not in SUPPORTED:
            return self._rejected(device, f"unknown command {command.name!r}; the modbus source supports: "
                                          f"{', '.join(SUPPORTED)}")
        if device is None:
            return self._rejected(None, f"target a device: write sets a register of one device, "
                                        f"not of source {self.context.source_name}")
        target = self.targets.get(device)
        if target is None:
            return self._rejected(None, f"device {device!r} is not a device of source {self.context.source_name}")
        try:
            plan = plan_write(target.profile, command.params)
        except Rejected as exc:
            return self._rejected(device, str(exc))
        try:
            return await self._write(target, plan)
        except Exception as exc:        # a library surprise must become an outcome, not a dead command
            self.context.log.exception("%s: device %s: unexpected error in a write", self.context.source_name, device)
            return self._failed(device, f"internal error: {exc!r}"[:400])

    async def _link_up(self, device: str) -> ModbusLink | None:
        # Polled, not event-driven: this runs only while the endpoint is down, and the
        # endpoint task owns the connection (it reconnects with its own back-off).
        deadline = time.monotonic() + self.connect_wait_s
        while True:
            link = self.link_of.get(device)
            if link is not None and link.connected:
                return link
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)

    async def _write(self, target: Target, plan: WritePlan) -> CommandOutcome:
        register, device = plan.register, target.device
        link = await self._link_up(device)
        where = f"{register.function} {register.address}+{register.count} on unit {target.unit}"
        if link is None:
            endpoint = self.link_of[device].endpoint if device in self.link_of else "the device (source not started)"
            return self._failed(device, f"not connected to {endpoint} within {self.connect_wait_s:g} s")
        async with link.lock:
            if not link.connected:
                return self._failed(device, f"connection to {link.endpoint} lost before the write")
            try:
                await link.write(register.function, register.address, plan.words, target.unit)
            except (DeviceError, LinkDown) as exc:
                return self._failed(device, f"write {register.metric} = {plan.requested!r} failed: {exc}")
            try:
                back = await link.read(register.function, register.address, register.count, target.unit)
            except (DeviceError, LinkDown) as exc:
                return self._failed(device, f"wrote {register.metric} = {plan.requested!r} ({where}) "
                                            f"but could not read it back: {exc}")
        value = _read_back_value(register, back)
        written = [1 if v else 0 for v in back] if register.function.is_bit else list(back)
        if written != plan.words:
            return self._failed(device, f"wrote {register.metric} = {plan.requested!r} ({where}) "
                                        f"but read back {value!r}")
        return CommandOutcome.done(f"wrote {register.metric} = {plan.requested!r} ({where}), read back {value!r}",
                                   value=value)
