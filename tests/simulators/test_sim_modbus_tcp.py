"""Modbus TCP simulator read by a real pymodbus client and decoded with the profile."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from device_profiles.codec import decode_register
from device_profiles.schema import load_profile
from simulators.modbus import ModbusSimulator
from tests.support.waiting import wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
PROFILE = load_profile("hinode-sim-meter")


async def read_meter(client, unit: int, profile=PROFILE) -> dict:
    end = max(r.address + r.count for r in profile.registers)
    response = await client.read_holding_registers(0, count=end, device_id=unit)
    assert not response.isError(), response
    return {r.metric: decode_register(r, response.registers[r.address:r.address + r.count]) for r in profile.registers}


async def connect(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
    assert await client.connect()
    return client


async def test_client_decodes_exactly_what_values_reports():
    async with ModbusSimulator(meters=5, port=0, interval=60) as sim:
        assert sim.port > 0
        client = await connect(sim.port)
        try:
            readings = {unit: await read_meter(client, unit) for unit in sim.units}
        finally:
            client.close()
    for unit, read in readings.items():
        assert read == sim.values(unit)
        # float32 on the wire keeps the physics within float32 rounding
        for n in (1, 2, 3):
            assert read[f"power_l{n}"] == pytest.approx(
                read[f"voltage_l{n}"] * read[f"current_l{n}"] * read["power_factor"], rel=1e-5)
        assert 220 < read["voltage_l1"] < 240
        hundredths = read["energy_import"] * 100                             # uint32 in 0.01 kWh
        assert abs(hundredths - round(hundredths)) < 1e-6
    assert readings[1] != readings[2]


async def test_faults_hit_one_unit_while_the_others_answer():
    async with ModbusSimulator(meters=5, port=0, interval=60) as sim:
        client = await connect(sim.port)
        try:
            sim.set_fault(3, "timeout")
            sim.set_fault(4, "exception:2")
            sim.set_fault(5, "exception:4")
            assert sim.fault(3) == "timeout" and sim.fault(4) == "exception:2" and sim.fault(1) is None
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(0, count=26, device_id=3)
            assert await read_meter(client, 1) == sim.values(1)
            exc2 = await client.read_holding_registers(0, count=26, device_id=4)
            exc4 = await client.read_holding_registers(0, count=26, device_id=5)
            assert exc2.isError() and exc2.exception_code == 2
            assert exc4.isError() and exc4.exception_code == 4
            assert await read_meter(client, 2) == sim.values(2)
            sim.set_fault(3, None)
            assert await read_meter(client, 3) == sim.values(3)
            assert sim.request_counts(3) == {"timeout": 1, "ok": 1}
            assert sim.request_counts(4) == {"exception_2": 1}
        finally:
            client.close()


async def test_bad_addresses_unknown_units_and_writes():
    async with ModbusSimulator(meters=2, port=0, interval=60) as sim:
        client = await connect(sim.port)
        try:
            past_end = await client.read_holding_registers(20, count=10, device_id=1)
            assert past_end.isError() and past_end.exception_code == 2
            no_inputs = await client.read_input_registers(0, count=2, device_id=1)
            assert no_inputs.isError() and no_inputs.exception_code == 2
            write = await client.write_register(0, 1, device_id=1)
            assert write.isError() and write.exception_code == 1
            with pytest.raises(ModbusIOException):          # no such unit on the line: silence
                await client.read_holding_registers(0, count=2, device_id=9)
            assert await read_meter(client, 2) == sim.values(2)
        finally:
            client.close()
        with pytest.raises(ValueError, match="timeout"):
            sim.set_fault(1, "slow")
        with pytest.raises(ValueError, match="not a Modbus exception code"):
            sim.set_fault(1, "exception:99")
        with pytest.raises(ValueError, match="unit 7 is not simulated"):
            sim.set_fault(7, "timeout")


async def test_values_refresh_every_interval_and_energy_only_grows():
    async with ModbusSimulator(meters=2, port=0, interval=0.2) as sim:
        client = await connect(sim.port)
        try:
            first = await read_meter(client, 1)
            refreshed = sim.refresh_count
            await wait_until_async(lambda: sim.refresh_count >= refreshed + 2, "two more refreshes", timeout=5)
            second = await read_meter(client, 1)
        finally:
            client.close()
    assert second != first
    assert second["energy_import"] >= first["energy_import"]


async def test_drop_connections_closes_client_sockets_and_clients_can_come_back():
    async with ModbusSimulator(meters=1, port=0, interval=60) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        # MBAP: transaction 1, protocol 0, length 6, unit 1, FC3 address 0 count 2
        writer.write(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 2))
        answer = await asyncio.wait_for(reader.read(256), 2)
        assert answer[7] == 3 and answer[8] == 4
        assert sim.drop_connections() == 1
        assert await asyncio.wait_for(reader.read(256), 2) == b""      # server closed the socket
        writer.close()
        client = await connect(sim.port)
        try:
            assert await read_meter(client, 1) == sim.values(1)
        finally:
            client.close()


MIXED_PROFILE = """\
id: test-mixed-meter
protocol: modbus
kind: meter
vendor: test
model: integer meter with input registers, a string and coils
source: written for the simulator tests
defaults: {function: input, byte_order: big, word_order: little}
registers:
  - {metric: voltage_l1, address: 100, type: uint16, scale: 0.1, unit: V}
  - {metric: power_total, address: 101, type: int32, unit: W}
  - {metric: power_factor, address: 103, type: int16, scale: 0.001}
  - {metric: energy_import, address: 110, type: uint64, scale: 0.001, unit: kWh}
  - {metric: serial_number, address: 120, type: string, length: 4, function: holding}
  - {metric: status_running, address: 5, type: bits, function: coil}
  - {metric: temperature, address: 130, type: float32}
  - {metric: voltage_l1_l2, address: 104, type: int16, scale: 0.1}
"""


async def test_any_profile_is_served_with_its_own_types_and_functions(tmp_path):
    path = tmp_path / "test-mixed-meter.yaml"
    path.write_text(MIXED_PROFILE)
    profile = load_profile(str(path))
    async with ModbusSimulator(meters=2, port=0, profile=str(path), interval=60) as sim:
        client = await connect(sim.port)
        try:
            inputs = await client.read_input_registers(100, count=32, device_id=2)       # 100 .. 131
            holding = await client.read_holding_registers(120, count=4, device_id=2)
            coils = await client.read_coils(5, count=1, device_id=2)
        finally:
            client.close()
    assert not (inputs.isError() or holding.isError() or coils.isError())
    served = sim.values(2)
    regs = {r.metric: r for r in profile.registers}
    for metric in ("voltage_l1", "power_total", "power_factor", "energy_import", "temperature", "voltage_l1_l2"):
        r = regs[metric]
        assert decode_register(r, inputs.registers[r.address - 100:r.address - 100 + r.count]) == served[metric]
    assert decode_register(regs["serial_number"], holding.registers) == served["serial_number"] == "SIM-002"
    assert coils.bits[0] == served["status_running"]
    meter = sim.bank.values(2)
    assert served["voltage_l1"] == pytest.approx(meter["voltage_l1"], abs=0.05)     # 0.1 V steps
    assert served["power_total"] == round(meter["power_total"])
    assert served["energy_import"] == pytest.approx(meter["energy_import"], abs=0.0005)
    assert 390 < served["voltage_l1_l2"] < 407                                  # derived: line-to-line
    assert 0 <= served["temperature"] <= 1000                                    # metric the model lacks


def test_constructor_rejects_what_it_cannot_serve():
    with pytest.raises(ValueError, match="not a Modbus one"):
        ModbusSimulator(meters=2, profile="hinode-sim-meter-opcua")
    with pytest.raises(ValueError, match="meters must be 1..247"):
        ModbusSimulator(meters=0)
    with pytest.raises(ValueError, match="sunspec_base"):
        ModbusSimulator(meters=1, sunspec=True, sunspec_base=123)
