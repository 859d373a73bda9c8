"""``python -m simulators`` as a user runs it: one line of output, serves, exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "simulators", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"simulator printed nothing; stderr: {proc.stderr.read()}")
    return proc, line


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_modbus_cli_serves_faulty_units_and_exits_cleanly_on_sigterm():
    proc, line = start("modbus", "--port", "0", "--meters", "4", "--interval", "0.5",
                       "--timeout-unit", "2", "--exception-unit", "3:4")
    try:
        match = re.search(r"TCP 127\.0\.0\.1:(\d+)", line)
        assert match, line
        assert "4 meters (unit ids 1..4)" in line and "profile hinode-sim-meter" in line

        async def read_units():
            client = AsyncModbusTcpClient("127.0.0.1", port=int(match.group(1)), timeout=0.3, retries=0)
            await client.connect()
            try:
                ok = await client.read_holding_registers(0, count=26, device_id=1)
                with pytest.raises(ModbusIOException):
                    await client.read_holding_registers(0, count=26, device_id=2)
                exc = await client.read_holding_registers(0, count=26, device_id=3)
                return ok, exc
            finally:
                client.close()

        ok, exc = asyncio.run(read_units())
        assert not ok.isError() and len(ok.registers) == 26
        assert exc.isError() and exc.exception_code == 4
    finally:
        code = stop(proc)
    assert code == 0, proc.stderr.read()


def test_opcua_cli_serves_and_exits_cleanly_on_ctrl_c():
    proc, line = start("opcua", "--port", "0", "--meters", "2")
    try:
        match = re.search(r"(opc\.tcp://127\.0\.0\.1:\d+/hinode/)", line)
        assert match, line

        async def read():
            async with Client(match.group(1), timeout=5) as client:
                ns = await client.get_namespace_index("urn:hinode:simulators:meters")
                return await client.get_node(f"ns={ns};s=Meter02.Frequency").read_value()

        assert 49.9 < asyncio.run(read()) < 50.1
    finally:
        code = stop(proc, signal.SIGINT)
    assert code == 0, proc.stderr.read()


def test_cli_explains_bad_options():
    result = subprocess.run([sys.executable, "-m", "simulators", "modbus", "--meters", "2", "--exception-unit", "5:2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "unit 5 is not simulated (units 1..2)" in result.stderr
    result = subprocess.run([sys.executable, "-m", "simulators", "modbus", "--exception-unit", "4"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "expected UNIT:CODE" in result.stderr
