"""Command ``write`` of the Modbus source against the project's pymodbus simulator (and a plain
pymodbus server): FC5/FC6/FC16 on the wire, read-back, refusals that write nothing, device
failures, and writes that share the link with running polls."""

from __future__ import annotations

import asyncio
import time

import pytest

from device_profiles.schema import RegisterFunction
import edge_agent.sources.modbus as modbus
from hinode.contract import Command, CommandStatus
from simulators.modbus import ModbusSimulator
from tests.edge.sources.conftest import free_port

pytestmark = pytest.mark.timeout(60)

SETPOINTS = """\
id: setpoints
protocol: modbus
vendor: test
model: meter with setpoints of every shape
source: test
registers:
  - {metric: power_total, address: 0, type: float32, unit: W}
  - {metric: export_limit, address: 2, type: float32, unit: kW, writable: true, min: -500, max: 500}
  - {metric: energy_budget, address: 4, type: uint32, scale: 0.01, word_order: little, unit: kWh, writable: true, min: 0}
  - {metric: mode, address: 6, type: uint16, writable: true}
  - {metric: relay, address: 0, type: bits, function: coil, writable: true}
"""


def write(target: str, metric, value, **extra) -> Command:
    params = {"metric": metric, "value": value, **extra}
    return Command.model_construct(v=1, id=f"c{time.monotonic_ns()}", site="plant", agent="edge-1", target=target,
                                   name="write", params=params, issued_ts=0, expires_ts=0, issued_by="test")


def make_config(port: int, devices: list[dict], **section) -> modbus.Config:
    data = {"type": "modbus", "name": "hall", "host": "127.0.0.1", "port": port, "poll_interval_s": 0.1,
            "timeout_s": 0.3, "retries": 0, "backoff": {"initial_s": 0.2, "max_s": 0.5}, "devices": devices,
            **section}
    return modbus.Config.model_validate(data)


def spy_writes(sim: ModbusSimulator) -> list[tuple[int, int, int, list]]:
    """(unit, function code, address, values) of every write request the simulator handled."""
    calls: list = []
    original = sim.context.async_setValues

    async def recording(device_id, func_code, address, values):
        calls.append((device_id, func_code, address, list(values)))
        return await original(device_id, func_code, address, values)

    sim.context.async_setValues = recording
    return calls


def latest(run, device: str) -> dict:
    return {r.metric: r.value for r in run.of(device)[-1].readings}


async def test_fc6_write_reaches_the_simulator_reads_back_and_survives_its_refreshes(source_tools):
    async with ModbusSimulator(meters=2, port=0, interval=0.05) as sim:
        writes = spy_writes(sim)
        config = make_config(sim.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"},
                                        {"id": "m2", "unit": 2, "profile": "hinode-sim-meter"}])
        context = source_tools.context()
        async with source_tools.run(modbus.Source(config, context)) as run:
            await run.wait_for(lambda: run.of("m1") and run.of("m2"), 5, "first polls")
            assert latest(run, "m1")["power_limit"] == 1000          # the simulator starts setpoints at max
            outcome = await run.source.handle_command(write("m1", "power_limit", 250), "m1")
            assert outcome.status is CommandStatus.DONE, outcome.message
            assert outcome.data == {"value": 250}
            assert "power_limit" in outcome.message and "read back 250" in outcome.message
            assert writes == [(1, 6, 26, [250])]                     # one register: FC6
            assert sim.values(1)["power_limit"] == 250 and sim.values(2)["power_limit"] == 1000
            assert sim.context.units[1].tables[RegisterFunction.HOLDING].words[26] == 250
            refreshed = sim.refresh_count
            await run.wait_for(lambda: sim.refresh_count >= refreshed + 3 and len(run.of("m1")) >= 5, 5, "refreshes")
            await run.wait_for(lambda: latest(run, "m1")["power_limit"] == 250, 5, "the written value polled")
            assert sim.values(1)["power_limit"] == 250                 # the value model did not overwrite it
            assert latest(run, "m2")["power_limit"] == 1000
    assert sim.request_counts(1)["write"] == 1
    assert not [key for key in context.errors if key[1].startswith("command")]


async def test_fc16_for_two_register_setpoints_and_fc5_for_a_coil(tmp_path, source_tools):
    path = tmp_path / "setpoints.yaml"
    path.write_text(SETPOINTS)
    async with ModbusSimulator(meters=1, port=0, interval=0.05, profile=str(path)) as sim:
        writes = spy_writes(sim)
        config = make_config(sim.port, [{"id": "s1", "unit": 1, "profile": str(path)}])
        async with source_tools.run(modbus.Source(config, source_tools.context())) as run:
            await run.wait_for(lambda: run.of("s1"), 5, "a first poll")
            handle = run.source.handle_command
            outcomes = [await handle(write("s1", "export_limit", -12.5), "s1"),
                        await handle(write("s1", "energy_budget", 1234.56), "s1"),
                        await handle(write("s1", "relay", True), "s1")]
            assert [o.status for o in outcomes] == [CommandStatus.DONE] * 3, [o.message for o in outcomes]
            assert [o.data["value"] for o in outcomes] == [-12.5, pytest.approx(1234.56), True]
            # float32 -12.5 = 0xC148_0000 high word first; 123456 = 0x0001_E240 low word first
            assert writes == [(1, 16, 2, [0xC148, 0x0000]), (1, 16, 4, [0xE240, 0x0001]), (1, 5, 0, [True])]
            served = sim.values(1)
            assert served["export_limit"] == -12.5 and served["energy_budget"] == pytest.approx(1234.56)
            assert served["relay"] is True
            await run.wait_for(lambda: latest(run, "s1")["relay"] is True
                               and latest(run, "s1")["export_limit"] == -12.5, 5, "polled setpoints")


REFUSED = [
    ("power_total", 5.0, "metric 'power_total' is not writable in profile hinode-sim-meter (writable: power_limit)"),
    ("power_limit", 1200, "value 1200 above max 1000 of power_limit"),
    ("power_limit", -1, "value -1 below min 0 of power_limit"),
    ("power_limit", 12.5, "value 12.5 is not a whole number for uint16 (raw 12.5)"),
    ("power_limit", float("nan"), "value nan is not a finite number for power_limit"),
    ("power_limit", "max", "value 'max' is not a number for power_limit (uint16)"),
    ("power_limit", True, "value True is not a number for power_limit (uint16)"),
    ("power_limt", 5, "metric 'power_limt' is not in profile hinode-sim-meter (writable: power_limit)"),
]


async def test_invalid_writes_are_rejected_with_the_reason_and_write_nothing(tmp_path, source_tools):
    async with ModbusSimulator(meters=1, port=0, interval=60) as sim:
        writes = spy_writes(sim)
        config = make_config(sim.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"}])
        context = source_tools.context()
        async with source_tools.run(modbus.Source(config, context)) as run:
            await run.wait_for(lambda: run.of("m1"), 5, "a first poll")
            before = sim.values(1)
            handle = run.source.handle_command
            for metric, value, message in REFUSED:
                outcome = await handle(write("m1", metric, value), "m1")
                assert (outcome.status, outcome.message) == (CommandStatus.REJECTED, message), metric
            odd = [(write("m1", "power_limit", 5, unit=3), "m1", "write takes params metric and value (unknown ['unit'])"),
                   (write("m1", None, None).model_copy(update={"params": {"value": 5}}), "m1",
                    "write takes params metric and value (missing ['metric'])"),
                   (write("m1", "power_limit", 5).model_copy(update={"name": "reset"}), "m1",
                    "unknown command 'reset'; the modbus source supports: write"),
                   (write("hall", "power_limit", 5), None, "target a device: write sets a register of one device, "
                                                          "not of source test"),
                   (write("m7", "power_limit", 5), "m7", "device 'm7' is not a device of source test")]
            for command, device, message in odd:
                outcome = await handle(command, device)
                assert (outcome.status, outcome.message) == (CommandStatus.REJECTED, message)
            assert sim.values(1) == before
    assert writes == [] and "write" not in sim.request_counts(1) and "write_refused" not in sim.request_counts(1)
    assert context.errors[("m1", "command_rejected")] == len(REFUSED) + 3
    assert context.errors[("_source", "command_rejected")] == 2


async def test_out_of_range_for_the_register_type_is_rejected(tmp_path, source_tools):
    path = tmp_path / "setpoints.yaml"
    path.write_text(SETPOINTS)
    async with ModbusSimulator(meters=1, port=0, interval=60, profile=str(path)) as sim:
        writes = spy_writes(sim)
        config = make_config(sim.port, [{"id": "s1", "unit": 1, "profile": str(path)}])
        async with source_tools.run(modbus.Source(config, source_tools.context())) as run:
            await run.wait_for(lambda: run.of("s1"), 5, "a first poll")
            handle = run.source.handle_command
            cases = [("mode", 70000, "value 70000 out of range for uint16"),
                     ("energy_budget", 0.005, "value 0.005 is not a whole number of steps of 0.01 for uint32"),
                     ("energy_budget", 50_000_000.0, "value 50000000 out of range for uint32 "
                                                     "(raw 5000000000, range 0..4294967295)"),
                     ("relay", 2, "value 2 is not a boolean (true/false or 1/0) for relay")]
            for metric, value, message in cases:
                outcome = await handle(write("s1", metric, value), "s1")
                assert outcome.status is CommandStatus.REJECTED and outcome.message.startswith(message), \
                    outcome.message
    assert writes == []


async def test_a_silent_unit_or_an_exception_fails_the_write(source_tools):
    async with ModbusSimulator(meters=2, port=0, interval=60) as sim:
        config = make_config(sim.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"},
                                        {"id": "m2", "unit": 2, "profile": "hinode-sim-meter"},
                                        {"id": "ghost", "unit": 9, "profile": "hinode-sim-meter"}])
        context = source_tools.context()
        async with source_tools.run(modbus.Source(config, context)) as run:
            await run.wait_for(lambda: run.of("m1") and context.errors[("ghost", "timeout")], 5, "first polls")
            silent = await run.source.handle_command(write("ghost", "power_limit", 10), "ghost")
            assert silent.status is CommandStatus.FAILED
            assert "no response from unit 9" in silent.message and "writing holding 26+1 (FC6)" in silent.message
            sim.set_fault(2, "exception:4")
            refused = await run.source.handle_command(write("m2", "power_limit", 10), "m2")
            assert refused.status is CommandStatus.FAILED
            assert "exception 4 (device failure) writing holding 26+1" in refused.message
            polled = len(run.of("m1"))
            await run.wait_for(lambda: len(run.of("m1")) >= polled + 3, 5, "m1 still polled")
    assert context.errors[("ghost", "command_failed")] == 1 and context.errors[("m2", "command_failed")] == 1


async def test_a_write_waits_for_the_link_when_it_arrives_before_the_connection(source_tools):
    # What an agent sees after a restart: the broker hands over a kept command at once,
    # while the endpoint is still (re)connecting.
    port = free_port()
    config = make_config(port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"}])
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: context.errors[("m1", "connect")] >= 1, 5, "a refused connection")
        pending = asyncio.create_task(run.source.handle_command(write("m1", "power_limit", 420), "m1"))
        await asyncio.sleep(0)           # one loop turn (no time passes): the command task starts and waits
        assert not pending.done()
        async with ModbusSimulator(meters=1, port=port, interval=0.05) as sim:
            outcome = await asyncio.wait_for(pending, 5)
            assert outcome.status is CommandStatus.DONE and outcome.data == {"value": 420}, outcome.message
            assert sim.values(1)["power_limit"] == 420


async def test_a_write_fails_when_the_link_stays_down(source_tools):
    port = free_port()
    config = make_config(port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"}])
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        run.source._commands.connect_wait_s = 0.3         # the default waits 10 s
        outcome = await run.source.handle_command(write("m1", "power_limit", 420), "m1")
    assert outcome.status is CommandStatus.FAILED
    assert outcome.message == f"not connected to 127.0.0.1:{port} (tcp) within 0.3 s"
    assert context.errors[("m1", "command_failed")] == 1


async def test_a_read_back_that_differs_fails_the_write(modbus_server, source_tools):
    # A plain pymodbus server whose reads always serve the peer's memory: the write is
    # acknowledged, but the register reads back the old value, as with a device that
    # ignores a setpoint it does not accept.
    memory = modbus_server.UnitMemory(holding={i: 0 for i in range(27)})
    memory.holding[26] = 700
    peer = await modbus_server({1: memory})
    config = make_config(peer.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"}])
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: run.of("m1"), 5, "a first poll")
        outcome = await run.source.handle_command(write("m1", "power_limit", 300), "m1")
    assert outcome.status is CommandStatus.FAILED
    assert outcome.message.startswith("wrote power_limit = 300 (holding 26+1 on unit 1) but read back 700")
    assert peer.requests[(1, 6)] == 1 and context.errors[("m1", "command_failed")] == 1


async def test_writes_share_the_link_with_running_polls_without_disturbing_them(source_tools):
    async with ModbusSimulator(meters=2, port=0, interval=0.05) as sim:
        config = make_config(sim.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"},
                                        {"id": "m2", "unit": 2, "profile": "hinode-sim-meter"}],
                             poll_interval_s=0.02)
        context = source_tools.context()
        async with source_tools.run(modbus.Source(config, context)) as run:
            await run.wait_for(lambda: run.of("m1") and run.of("m2"), 5, "first polls")
            polled = len(run.batches)
            handle = run.source.handle_command
            values = list(range(100, 130))
            outcomes = []
            for chunk in (values[:10], values[10:20], values[20:]):      # ten commands in flight at once
                outcomes += await asyncio.gather(*(handle(write(f"m{1 + v % 2}", "power_limit", v), f"m{1 + v % 2}")
                                                   for v in chunk))
            assert [o.status for o in outcomes] == [CommandStatus.DONE] * len(values), \
                [o.message for o in outcomes if o.status is not CommandStatus.DONE]
            assert [o.data["value"] for o in outcomes] == values
            await run.wait_for(lambda: len(run.batches) >= polled + 20, 5, "polls keep arriving")
        assert len(run.source.links) == 1                 # both devices, polls and writes on one connection
    assert sim.values(1)["power_limit"] == 128 and sim.values(2)["power_limit"] == 129
    assert sim.request_counts(1)["write"] == sim.request_counts(2)["write"] == 15
    for batch in run.batches:
        assert len(batch.readings) == 14 and all(r.quality == "good" for r in batch.readings)
    problems = {code for (_device, code) in context.errors} - {"overrun"}
    assert not problems, context.errors


async def test_a_write_over_rtu_goes_through_pymodbus_on_the_polled_line(source_tools):
    async with ModbusSimulator(meters=2, interval=0.05, rtu=True) as sim:
        writes = spy_writes(sim)
        config = modbus.Config.model_validate({
            "type": "modbus", "name": "rs485", "transport": "rtu",
            "serial": {"port": sim.client_port, "baudrate": 19200}, "poll_interval_s": 0.1, "timeout_s": 0.3,
            "retries": 0, "devices": [{"id": "bus1", "unit": 1, "profile": "hinode-sim-meter"},
                                      {"id": "bus2", "unit": 2, "profile": "hinode-sim-meter"}]})
        async with source_tools.run(modbus.Source(config, source_tools.context())) as run:
            await run.wait_for(lambda: run.of("bus1") and run.of("bus2"), 10, "first polls")
            outcome = await run.source.handle_command(write("bus2", "power_limit", 42), "bus2")
            assert outcome.status is CommandStatus.DONE and outcome.data == {"value": 42}, outcome.message
            await run.wait_for(lambda: latest(run, "bus2")["power_limit"] == 42, 5, "the written value polled")
    assert writes == [(2, 6, 26, [42])] and sim.values(2)["power_limit"] == 42
