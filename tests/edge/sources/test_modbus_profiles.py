"""Shipped device profiles load, and vendor meters served by a real server read back correctly."""

from __future__ import annotations

import pytest

from device_profiles.codec import encode_register
from device_profiles.schema import ModbusProfile, load_profile, load_profile_file, shipped_profiles
import edge_agent.sources.modbus as modbus
from edge_agent.sources.modbus.planner import plan_reads

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("path", shipped_profiles(), ids=lambda p: p.name)
def test_every_shipped_profile_loads_and_names_its_source(path):
    profile = load_profile_file(path)
    assert len(profile.source) > 10
    if isinstance(profile, ModbusProfile):
        blocks = plan_reads(profile.registers, profile.max_registers_per_read, profile.max_gap)
        assert all(b.count <= profile.max_registers_per_read for b in blocks)


def test_the_vendor_profiles_are_shipped():
    ids = {p.stem for p in shipped_profiles()}
    assert {"eastron-sdm630", "carlo-gavazzi-em24"} <= ids


async def serve_and_read(modbus_server, source_tools, profile_id: str, values: dict[str, float]):
    profile = load_profile(profile_id)
    memory = modbus_server.UnitMemory()
    for register in profile.registers:
        memory.put(register.function.value, register.address, encode_register(register, values.get(register.metric, 0)))
    peer = await modbus_server({1: memory})
    config = modbus.Config.model_validate({
        "type": "modbus", "name": "vendor", "host": "127.0.0.1", "port": peer.port, "poll_interval_s": 0.1,
        "devices": [{"id": "meter1", "unit": 1, "profile": profile_id}]})
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: len(run.batches) >= 2, 5, "two polls")
    assert context.devices["meter1"].online and not context.errors
    batch = run.batches[-1]
    assert batch.profile == profile_id
    return {r.metric: r.value for r in batch.readings}, memory, peer


SDM630_VALUES = {"voltage_l1": 230.5, "voltage_l2": 231.25, "voltage_l3": 229.75, "current_l1": 12.5,
                 "power_l1": 2881.25, "power_total": 8300.0, "power_factor": -0.96875, "frequency": 50.0,
                 "energy_import": 123456.5, "energy_export": 12.25, "voltage_l1_l2": 399.5, "current_neutral": 0.75}


async def test_eastron_sdm630_reads_back_through_the_source(modbus_server, source_tools):
    got, memory, peer = await serve_and_read(modbus_server, source_tools, "eastron-sdm630", SDM630_VALUES)
    for metric, value in SDM630_VALUES.items():
        assert got[metric] == value, metric
    assert len(got) == len(load_profile("eastron-sdm630").registers)
    # The manual: 30001 "Phase 1 line to neutral volts" is input register 0, IEEE float, high word first.
    assert [memory.input[0], memory.input[1]] == [0x4366, 0x8000]                 # 230.5
    assert [memory.input[72], memory.input[73]] == [0x47F1, 0x2040]   # 30073 import kWh
    # The meter refuses reads above 80 registers; the profile keeps every request within that.
    assert max(count for *_, count in peer.request_log) <= 80
    assert {(a, c) for *_, a, c in peer.request_log} == {(0, 80), (200, 6), (224, 2)}


EM24_VALUES = {"voltage_l1": 230.1, "voltage_l2_l3": 400.7, "current_l1": 5.123, "power_l1": -1500.5,
               "power_total": 3456.7, "power_factor": 0.987, "power_factor_l2": -0.5, "phase_sequence": -1,
               "frequency": 49.9, "energy_import": 12345.6, "energy_export": 0.3}


async def test_carlo_gavazzi_em24_reads_back_through_the_source(modbus_server, source_tools):
    got, memory, peer = await serve_and_read(modbus_server, source_tools, "carlo-gavazzi-em24", EM24_VALUES)
    for metric, value in EM24_VALUES.items():
        assert got[metric] == pytest.approx(value, abs=1e-9), metric
    # The protocol: V L1-N at 0000h as INT32 "Volt*10" with the least significant word first.
    assert [memory.holding[0], memory.holding[1]] == [2301, 0]
    assert [memory.holding[0x12], memory.holding[0x13]] == [(-15005) & 0xFFFF, 0xFFFF]   # W L1 = -1500.5 W
    assert memory.holding[0x37] == 499                                                 # Hz*10
    assert {(a, c) for *_, a, c in peer.request_log} == {(0, 66), (0x5C, 4)}
