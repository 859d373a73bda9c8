"""Modbus RTU on a serial line: a pymodbus serial server and our source on linked pseudo-terminals."""

from __future__ import annotations

import pytest
from pymodbus import FramerType

from device_profiles.codec import encode_register
from device_profiles.schema import load_profile
import edge_agent.sources.modbus as modbus

pytestmark = pytest.mark.timeout(60)

SIM = load_profile("hinode-sim-meter")


def memory_with(UnitMemory, power_total: float):
    memory = UnitMemory()
    for i, register in enumerate(SIM.registers):
        value = power_total if register.metric == "power_total" else 200.0 + i
        memory.put("holding", register.address, encode_register(register, value))
    return memory


async def test_two_units_on_one_serial_line_are_polled_in_turn(linked_ptys, modbus_server, source_tools):
    linked_ptys.start()
    UnitMemory = modbus_server.UnitMemory
    peer = await modbus_server({1: memory_with(UnitMemory, 1111.0), 2: memory_with(UnitMemory, 2222.0),
                                3: memory_with(UnitMemory, 3333.0)},
                               framer=FramerType.RTU, serial_port=linked_ptys.b_path)
    peer.silent.add(3)                         # a unit on the bus that has died
    config = modbus.Config.model_validate({
        "type": "modbus", "name": "rs485", "transport": "rtu",
        "serial": {"port": linked_ptys.a_path, "baudrate": 19200, "parity": "N", "stopbits": 1, "bytesize": 8},
        "poll_interval_s": 0.2, "timeout_s": 0.3, "retries": 0, "pause_between_requests_ms": 10,
        "backoff": {"initial_s": 1, "max_s": 4},
        "devices": [{"id": "bus1", "unit": 1, "profile": "hinode-sim-meter"},
                    {"id": "bus2", "unit": 2, "profile": "hinode-sim-meter"},
                    {"id": "bus3", "unit": 3, "profile": "hinode-sim-meter"}]})
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: len(run.of("bus1")) >= 5 and len(run.of("bus2")) >= 5, 10, "both units")
        assert run.source.links[0].nodelay() is None          # a serial port, not a socket
    assert len(run.source.links) == 1
    for device, power in (("bus1", 1111.0), ("bus2", 2222.0)):
        values = {r.metric: r.value for r in run.of(device)[-1].readings}
        assert values["power_total"] == power and values["voltage_l1"] == 200.0
    assert not run.of("bus3") and context.errors[("bus3", "timeout")] >= 1
    assert "no response from unit 3" in context.devices["bus3"].error
    assert context.devices["bus1"].online and context.devices["bus2"].online
    # one request at a time on the bus: the server never saw two requests closer than the pause
    times = [t for t, *_ in peer.request_log]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.009
    assert linked_ptys.relayed > 0


async def test_a_missing_serial_port_is_a_counted_connect_error(tmp_path, source_tools):
    import asyncio
    config = modbus.Config.model_validate({
        "type": "modbus", "name": "rs485", "transport": "rtu", "serial": {"port": str(tmp_path / "ttyUSB9")},
        "backoff": {"initial_s": 0.1, "max_s": 0.2},
        "devices": [{"id": "bus1", "unit": 1, "profile": "hinode-sim-meter"}]})
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: context.errors[("bus1", "connect")] >= 3, 5, "connect errors")
        await asyncio.sleep(0)           # one loop turn (no time passes): a batch already queued reaches run
    assert not run.batches
    assert not context.devices["bus1"].online and "cannot connect to" in context.devices["bus1"].error
