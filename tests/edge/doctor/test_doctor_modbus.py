"""``doctor modbus`` against the real Modbus simulator: TCP, RTU over a pseudo-terminal, SunSpec."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
import yaml

from edge_agent.config import load_site_config
from edge_agent.doctor import modbus
from edge_agent.doctor.cli import build_parser
from edge_agent.doctor.report import Report
from simulators.modbus.server import ModbusSimulator

pytestmark = pytest.mark.timeout(60)
TIMEOUT, PAUSE = 0.2, 0.02


def doctor_args(*extra: str):
    return build_parser().parse_args(["modbus", "--timeout", str(TIMEOUT), "--pause-ms", str(PAUSE * 1000), *extra])


async def doctor(*extra: str) -> Report:
    report = Report()
    await modbus.run(doctor_args(*extra), report)
    return report


def messages(report: Report, level: str) -> list[str]:
    return [f.message for f in report.findings if f.level == level]


def served_requests(sim: ModbusSimulator) -> int:
    return sum(sim.context.requests.values())


async def test_tcp_gateway_with_three_meters_finds_them_and_suggests_the_profile():
    async with ModbusSimulator(meters=3, port=0) as sim:
        report = await doctor("--host", "127.0.0.1", "--port", str(sim.port), "--units", "1-6")
    assert not report.failed
    assert messages(report, "ok")[0].startswith(f"127.0.0.1:{sim.port}: 3 of 6 unit ids answered")
    for unit in (1, 2, 3):
        assert any(m.startswith(f"unit {unit}: profile hinode-sim-meter (100%") for m in messages(report, "ok"))
    assert report.details["modbus"]["silent_units"] == [4, 5, 6]
    [section] = report.sources
    assert section["type"] == "modbus" and section["transport"] == "tcp" and section["port"] == sim.port
    assert [(d["unit"], d["profile"]) for d in section["devices"]] == [(u, "hinode-sim-meter") for u in (1, 2, 3)]


async def test_absent_units_cost_one_short_timeout_each():
    async with ModbusSimulator(meters=2, port=0) as sim:
        started = time.monotonic()
        report = await doctor("--host", "127.0.0.1", "--port", str(sim.port), "--units", "10-19")
        elapsed = time.monotonic() - started
        assert sim.context.requests[(10, "unknown_unit")] == 1      # asked once, no retries
    assert report.details["modbus"]["silent_units"] == list(range(10, 20))
    assert elapsed < 10 * (TIMEOUT + PAUSE) + 1.0, elapsed
    assert not report.sources


async def test_a_gateway_saying_no_such_target_counts_as_absent():
    async with ModbusSimulator(meters=2, port=0) as sim:
        sim.set_fault(2, "exception:11")          # gateway target device failed to respond
        report = await doctor("--host", "127.0.0.1", "--port", str(sim.port), "--units", "1-2")
    assert report.details["modbus"]["silent_units"] == [2] and not messages(report, "warn")
    assert [d["unit"] for d in report.sources[0]["devices"]] == [1]


async def test_a_unit_answering_with_an_exception_is_reported_not_drafted():
    async with ModbusSimulator(meters=3, port=0) as sim:
        sim.set_fault(2, "exception:4")
        report = await doctor("--host", "127.0.0.1", "--port", str(sim.port), "--units", "1-3")
    [warning] = messages(report, "warn")
    assert warning.startswith("unit 2 answers but refuses reads with exception 4 (server device failure)")
    assert "no profile matches: write one, see device_profiles/README.md" in warning
    assert [d["unit"] for d in report.sources[0]["devices"]] == [1, 3]


async def test_a_meter_no_profile_describes_gets_no_suggestion():
    async with ModbusSimulator(meters=1, port=0, profile="eastron-sdm630") as sim:
        sim_eastron = await doctor("--host", "127.0.0.1", "--port", str(sim.port), "--units", "1")
    assert any(m.startswith("unit 1: profile eastron-sdm630") for m in messages(sim_eastron, "ok"))
    async with ModbusSimulator(meters=1, port=0, profile="carlo-gavazzi-em24") as sim:
        sim.refresh()
        em24 = await doctor("--host", "127.0.0.1", "--port", str(sim.port), "--units", "1")
    assert em24.sources[0]["devices"][0]["profile"] == "carlo-gavazzi-em24"


@pytest.mark.parametrize("base", [40000, 50000])
async def test_sunspec_units_are_discovered_and_drafted_as_a_sunspec_source(base, tmp_path):
    async with ModbusSimulator(meters=2, port=0, sunspec=True, sunspec_base=base) as sim:
        report = await doctor("--host", "127.0.0.1", "--port", str(sim.port), "--units", "1-2")
    assert any(m.startswith(f"unit 1: SunSpec at {base}: hinode SIM-METER-3P") and "models 1, 203" in m
               for m in messages(report, "ok"))
    [section] = report.sources
    assert section["type"] == "sunspec"
    assert section["devices"] == [{"id": "sunspec-1", "unit": 1, "base_address": base},
                                  {"id": "sunspec-2", "unit": 2, "base_address": base}]
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(report.draft_site("plant", "edge-1")))
    config = load_site_config(path)
    assert config.source_configs[0].devices[1].base_address == base


async def test_rtu_line_scan_finds_the_baud_rate_the_meters_use(line_settings_matter):
    async with ModbusSimulator(meters=2, rtu=True, baudrate=19200) as sim:
        report = await doctor("--serial", sim.client_port, "--baud", "9600,19200", "--parity", "N",
                              "--units", "1-4", "--give-up-after", "2")
    tried = report.details["modbus"]["tried"]
    assert [t["setting"] for t in tried] == [{"baudrate": 9600, "parity": "N"}, {"baudrate": 19200, "parity": "N"}]
    assert tried[0]["silent_units"] == [1, 2] and not tried[0]["units"]     # gave up after 2 silent units
    assert [u["unit"] for u in tried[1]["units"]] == [1, 2]
    assert line_settings_matter[0].bytes_dropped > 0                          # 9600 really was not heard
    [section] = report.sources
    assert section["transport"] == "rtu"
    assert section["serial"] == {"port": sim.client_port, "baudrate": 19200, "parity": "N"}
    assert [d["profile"] for d in section["devices"]] == ["hinode-sim-meter"] * 2


async def test_rtu_line_where_nothing_answers_fails_clearly(line_settings_matter):
    async with ModbusSimulator(meters=1, rtu=True, baudrate=38400) as sim:
        report = await doctor("--serial", sim.client_port, "--baud", "9600,4800", "--parity", "N",
                              "--units", "1-9", "--give-up-after", "3")
    assert report.failed and "no unit answered at any of baud [9600, 4800] x parity ['N']" in messages(report, "fail")[0]
    assert [len(t["silent_units"]) for t in report.details["modbus"]["tried"]] == [3, 3]


async def test_a_missing_serial_port_is_a_clear_failure(tmp_path):
    report = await doctor("--serial", str(tmp_path / "ttyUSB9"), "--baud", "9600", "--parity", "N", "--units", "1")
    assert report.failed and messages(report, "fail") == [
        f"cannot open {tmp_path / 'ttyUSB9'}: does it exist, and is the user in group dialout?"]


async def test_the_scan_never_floods_the_bus():
    pause = 0.05
    async with ModbusSimulator(meters=3, port=0) as sim:
        before, started = served_requests(sim), time.monotonic()
        report = Report()
        await modbus.run(build_parser().parse_args(["modbus", "--host", "127.0.0.1", "--port", str(sim.port),
                                                   "--units", "1-3", "--pause-ms", "50"]), report)
        elapsed, served = time.monotonic() - started, served_requests(sim) - before
    assert served >= 15                       # the scan did real work
    assert served / elapsed <= 1 / pause, f"{served} requests in {elapsed:.2f}s"
    assert report.details["modbus"]["requests"] >= served


async def test_the_cli_writes_a_draft_that_passes_check_config(tmp_path):
    draft = tmp_path / "site.yaml"
    async with ModbusSimulator(meters=2, port=0) as sim:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_agent", "doctor", "modbus", "--host", "127.0.0.1", "--port", str(sim.port),
            "--units", "1-3", "--timeout", "0.2", "--site", "factory-7", "--agent", "line-a", "--draft", str(draft),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert f"draft written to {draft} (passes check-config)" in out.decode()
    check = await asyncio.create_subprocess_exec(sys.executable, "-m", "edge_agent", "check-config", str(draft),
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await check.communicate()
    assert check.returncode == 0, err.decode()
    assert "OK: site factory-7, agent line-a, 1 sources, 2 devices" in out.decode()


async def test_host_or_serial_is_required():
    report = await doctor("--units", "1")
    assert report.failed and "give either --host" in messages(report, "fail")[0]


def test_unit_ranges_are_parsed_and_checked():
    assert modbus.parse_units("1-3,7,2") == [1, 2, 3, 7]
    with pytest.raises(ValueError, match="ids must be 1..247"):
        modbus.parse_units("0-5")
    with pytest.raises(ValueError, match="expected ids or ranges"):
        modbus.parse_units("a-b")
