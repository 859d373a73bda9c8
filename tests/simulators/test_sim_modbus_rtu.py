"""Modbus RTU over the pseudo-terminal null modem, read by a real pymodbus serial client."""

from __future__ import annotations

import os

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from device_profiles.codec import decode_register
from device_profiles.schema import load_profile
from simulators.modbus import ModbusSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
PROFILE = load_profile("hinode-sim-meter")


async def read_meter(client, unit: int) -> dict:
    end = max(r.address + r.count for r in PROFILE.registers)
    response = await client.read_holding_registers(0, count=end, device_id=unit)
    assert not response.isError(), response
    return {r.metric: decode_register(r, response.registers[r.address:r.address + r.count]) for r in PROFILE.registers}


async def open_client(port: str) -> AsyncModbusSerialClient:
    client = AsyncModbusSerialClient(port, baudrate=19200, timeout=0.3, retries=0)
    assert await client.connect()
    return client


async def test_rtu_units_on_one_line_with_a_silent_unit():
    async with ModbusSimulator(meters=3, rtu=True, interval=60) as sim:
        assert sim.client_port and sim.client_port.startswith("/dev/pts/")
        assert os.path.exists(sim.client_port)
        assert sim.port is None
        client = await open_client(sim.client_port)
        try:
            for unit in sim.units:
                assert await read_meter(client, unit) == sim.values(unit)
            sim.set_fault(2, "timeout")
            sim.set_fault(3, "exception:4")
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(0, count=26, device_id=2)
            answer = await client.read_holding_registers(0, count=26, device_id=3)
            assert answer.isError() and answer.exception_code == 4
            assert await read_meter(client, 1) == sim.values(1)      # the line recovers after the silence
        finally:
            client.close()
        # A client that closes and reopens the port (agent restart) talks again.
        client = await open_client(sim.client_port)
        try:
            assert await read_meter(client, 1) == sim.values(1)
        finally:
            client.close()
        assert sim.drop_connections() == 0          # nothing to drop on a serial line
