"""SunSpec mode read back raw: marker, model chain, model 203, 103, 113 and 802 points, "not implemented"
values, and the PV site (inverter + grid meter) with the EV power it is told over UDP."""

from __future__ import annotations

import asyncio
import math
import re
import struct
import subprocess
import sys

import pytest
from pymodbus.client import AsyncModbusTcpClient

from simulators.ev_feed import EvPowerFeed, send_ev_power
from simulators.modbus import ModbusSimulator
from simulators.modbus.sunspec_site import PvSiteSimulator, SunSpecSimulator
from simulators.pv import SimClock, parse_start
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

# Offsets inside model 203 after its ID and L registers, from sunspec/models model_203.json.
A, APH_A, A_SF = 0, 1, 4
PHV_A, PHV_B, PHV_C, PPV, V_SF = 6, 7, 8, 9, 13
HZ, HZ_SF = 14, 15
W, W_A, W_SF = 16, 17, 20
VAR, VAR_SF = 26, 30
PF, PF_SF = 31, 35
TOT_WH_EXP, TOT_WH_IMP, TOT_WH_IMP_A, TOT_WH_SF = 36, 44, 46, 52
TOT_VAH_SF, TOT_VARH_SF, EVT = 69, 102, 103


def int16(word: int) -> int:
    return word - 0x10000 if word >= 0x8000 else word


def text(words: list[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\x00").decode()


async def read_block(client, address: int, count: int, unit: int) -> list[int]:
    words: list[int] = []
    while count > 0:
        n = min(count, 125)
        response = await client.read_holding_registers(address, count=n, device_id=unit)
        assert not response.isError(), response
        words += response.registers
        address, count = address + n, count - n
    return words


async def walk_models(client, base: int, unit: int) -> list[tuple[int, int, int]]:
    """(model id, length, address of first point) until the end model, like a SunSpec client."""
    assert await read_block(client, base, 2, unit) == [0x5375, 0x6E53]       # "SunS"
    models, address = [], base + 2
    while True:
        model_id, length = await read_block(client, address, 2, unit)
        models.append((model_id, length, address + 2))
        if model_id == 0xFFFF:
            return models
        address += 2 + length


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_sunspec_chain_at_each_base_address(base):
    async with ModbusSimulator(meters=3, port=0, interval=60, sunspec=True, sunspec_base=base) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.5, retries=0)
        await client.connect()
        try:
            models = await walk_models(client, base, unit=2)
            common = await read_block(client, models[0][2], 66, unit=2)
            other_base = 40000 if base != 40000 else 0
            probe = await client.read_holding_registers(other_base, count=2, device_id=2)
        finally:
            client.close()
    assert [(m, length) for m, length, _ in models] == [(1, 66), (203, 105), (0xFFFF, 0)]
    assert models[0][2] == base + 4 and models[1][2] == base + 4 + 66 + 2
    assert text(common[0:16]) == "hinode"                 # Mn
    assert text(common[48:64]) == "HSM-00002"              # SN
    assert common[64] == 2                                 # DA = unit id
    assert common[65] == 0x8000                            # Pad
    assert probe.isError() and probe.exception_code == 2   # nothing outside the SunSpec block


async def test_model_203_points_scale_factors_and_not_implemented_values():
    async with ModbusSimulator(meters=2, port=0, interval=60, sunspec=True) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.5, retries=0)
        await client.connect()
        try:
            models = await walk_models(client, 40000, unit=1)
            meter = await read_block(client, models[1][2], 105, unit=1)
        finally:
            client.close()
        expected = sim.values(1)
        points = sim.sunspec_points(1)

    def scaled(offset: int, sf_offset: int) -> float:
        sf = int16(meter[sf_offset])
        return round(int16(meter[offset]) * 10.0 ** sf, 6)

    assert int16(meter[V_SF]) == -1 and int16(meter[A_SF]) == -1 and int16(meter[HZ_SF]) == -2
    assert scaled(PHV_A, V_SF) == pytest.approx(expected["voltage_l1"])
    assert scaled(PHV_C, V_SF) == pytest.approx(expected["voltage_l3"])
    assert 225 < scaled(PHV_B, V_SF) < 235
    assert 390 < scaled(PPV, V_SF) < 407                   # line-to-line = sqrt(3) x 230
    assert scaled(APH_A, A_SF) == pytest.approx(expected["current_l1"])
    assert scaled(A, A_SF) == pytest.approx(sum(expected[f"current_l{n}"] for n in (1, 2, 3)), abs=0.25)
    assert scaled(W, W_SF) == pytest.approx(expected["power_total"])
    assert scaled(W_A, W_SF) == pytest.approx(expected["power_l1"])
    assert scaled(HZ, HZ_SF) == pytest.approx(expected["frequency"])
    assert scaled(PF, PF_SF) / 100 == pytest.approx(expected["power_factor"])      # model 203 PF is in percent
    imported_wh = (meter[TOT_WH_IMP] << 16 | meter[TOT_WH_IMP + 1]) * 10.0 ** int16(meter[TOT_WH_SF])
    assert imported_wh / 1000 == pytest.approx(expected["energy_import"])
    assert imported_wh > 0
    # Not implemented: reactive power (int16 and sunssf 0x8000), export and per-phase energies (acc32 0).
    assert meter[VAR] == 0x8000 and meter[VAR_SF] == 0x8000
    assert meter[TOT_VAH_SF] == 0x8000 and meter[TOT_VARH_SF] == 0x8000
    assert meter[TOT_WH_EXP:TOT_WH_EXP + 2] == [0, 0] and meter[TOT_WH_IMP_A:TOT_WH_IMP_A + 2] == [0, 0]
    assert meter[EVT:EVT + 2] == [0, 0]
    assert points["VAR"] is None and points["TotWhExp"] is None and points["TotWhImpPhA"] is None
    assert points["PhVphA"] == expected["voltage_l1"]


# ---------------------------------------------------------------- inverter, battery and the PV site
# Offsets after ID and L, from sunspec/models model_103.json, model_113.json and model_802.json.
INV_W, INV_W_SF, INV_VAR, INV_VAR_SF, INV_WH, INV_WH_SF, INV_TMP_CAB, INV_TMP_SF, INV_ST = 12, 13, 18, 19, 22, 24, 31, 35, 36
FLT_W, FLT_WH, FLT_TMP_SNK, FLT_ST = 20, 30, 40, 46
BAT_SOC, BAT_CHA_ST, BAT_W, BAT_SOC_SF, BAT_W_SF = 9, 14, 45, 54, 61


def float32(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">2H", *words))[0]


def frozen_at(moment: str) -> SimClock:
    return SimClock(parse_start(moment), time_scale=1e-9)        # simulated time stands (almost) still


async def read_models(port: int, unit: int, base: int = 40000) -> dict[int, list[int]]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    await client.connect()
    try:
        chain = await walk_models(client, base, unit)
        return {m: await read_block(client, address, length, unit) for m, length, address in chain if m != 0xFFFF}
    finally:
        client.close()


async def test_int_inverter_and_battery_models_from_the_official_layouts():
    async with SunSpecSimulator(meters=1, models=(103, 802), kwp=100, cloudiness=0.0, port=0, interval=60,
                                clock=frozen_at("2025-03-20T12:00")) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.5, retries=0)
        await client.connect()
        try:
            chain = await walk_models(client, 40000, unit=1)
        finally:
            client.close()
        models = await read_models(sim.port, 1)
        inverter, battery = sim.sunspec_model_points(1, 103), sim.sunspec_model_points(1, 802)
        served = sim.values(1)
    assert [(m, length) for m, length, _ in chain] == [(1, 66), (103, 50), (802, 62), (0xFFFF, 0)]
    body = models[103]
    watts = int16(body[INV_W]) * 10.0 ** int16(body[INV_W_SF])
    assert 70_000 < watts < 95_000 and watts == inverter["W"] == served["power_total"]      # ~0.85 kW/kWp at noon
    assert body[INV_VAR] == 0x8000 and body[INV_VAR_SF] == 0x8000 and inverter["VAr"] is None
    energy_kwh = (body[INV_WH] << 16 | body[INV_WH + 1]) * 10.0 ** int16(body[INV_WH_SF]) / 1000
    assert energy_kwh == pytest.approx(served["energy_export"]) and energy_kwh > 100 * 3.3 * 300   # ~1 year of yield
    assert 0 < int16(body[INV_TMP_CAB]) * 10.0 ** int16(body[INV_TMP_SF]) < 60
    assert body[INV_ST] == 4                                                # MPPT
    bat = models[802]
    assert bat[BAT_CHA_ST] == 4 and int16(bat[BAT_W]) < 0                  # charging at noon
    assert bat[BAT_SOC] * 10.0 ** int16(bat[BAT_SOC_SF]) == battery["SoC"] == pytest.approx(20 + 70 * 2 / 5)


async def test_float_inverter_model_113_and_not_implemented_nan():
    async with SunSpecSimulator(meters=1, models=(113,), kwp=20, cloudiness=0.0, port=0, interval=60,
                                clock=frozen_at("2025-03-20T12:00")) as sim:
        body = (await read_models(sim.port, 1))[113]
        served = sim.values(1)
    assert float32(body[FLT_W:FLT_W + 2]) == pytest.approx(served["power_total"]) and served["power_total"] > 14_000
    assert float32(body[FLT_WH:FLT_WH + 2]) / 1000 == pytest.approx(served["energy_export"], rel=1e-6)
    assert math.isnan(float32(body[FLT_TMP_SNK:FLT_TMP_SNK + 2]))
    assert body[FLT_ST] == 4


async def test_the_grid_meter_of_the_pv_site_adds_the_ev_power_it_is_told():
    feed = EvPowerFeed(port=0)
    async with PvSiteSimulator(kwp=250, site_load_kw=400, cloudiness=0.0, port=0, interval=0.05, ev_feed=feed,
                               clock=frozen_at("2025-03-20T11:40")) as sim:
        meter_before = (await read_models(sim.port, 2))[203]
        snapshot = sim.snapshot
        send_ev_power(22_000, feed.port)

        async def grid_w() -> float:
            body = (await read_models(sim.port, 2))[203]
            return int16(body[W]) * 10.0 ** int16(body[W_SF])

        before = int16(meter_before[W]) * 10.0 ** int16(meter_before[W_SF])
        deadline = asyncio.get_running_loop().time() + 5
        while (after := await grid_w()) < before + 20_000:
            assert asyncio.get_running_loop().time() < deadline, f"grid power stayed at {after} W"
            await asyncio.sleep(0.05)
        inverter = (await read_models(sim.port, 1))[103]
    assert before == pytest.approx(snapshot.load_w - snapshot.pv_w, abs=100)            # W_SF 2: 100 W steps
    assert after == pytest.approx(before + 22_000, abs=200)
    assert int16(inverter[INV_W]) * 10.0 ** int16(inverter[INV_W_SF]) == pytest.approx(snapshot.pv_w, abs=100)
    assert sim.describe().startswith("PV site simulator (Hitachi, 250 kWp, factory 400 kW): unit 1 PV inverter")


def test_the_cli_serves_the_pv_site_and_listens_for_ev_power(tmp_path):
    command = [sys.executable, "-m", "simulators", "modbus", "--pv-site", "--port", "0", "--ev-port", "0",
               "--start", "2025-03-20T11:40", "--time-scale", "0.001", "--cloudiness", "0", "--interval", "0.05",
               "--float-inverter"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"TCP 127\.0\.0\.1:(\d+).*EV power over UDP 127\.0\.0\.1:(\d+)", line)
        assert match, line + process.stderr.read() if process.poll() is not None else line
        port, ev_port = int(match.group(1)), int(match.group(2))
        assert "unit 1 PV inverter (SunSpec 1 + 113), unit 2 grid meter (1 + 203)" in line

        async def read() -> tuple[float, float]:
            inverter = (await read_models(port, 1))[113]
            meter = (await read_models(port, 2))[203]
            return float32(inverter[FLT_W:FLT_W + 2]), int16(meter[W]) * 10.0 ** int16(meter[W_SF])

        pv, grid = asyncio.run(read())
        assert pv > 150_000                                           # 250 kWp at the equinox noon
        send_ev_power(50_000, ev_port)
        wait_until(lambda: asyncio.run(read())[1] >= grid + 49_000, "the chargers' 50 kW on the grid meter", 10)
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_sunspec_models_option_errors_name_the_option():
    result = subprocess.run([sys.executable, "-m", "simulators", "modbus", "--sunspec-models", "1,120"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--sunspec-models: SunSpec models must be some of 101" in result.stderr


def test_the_cli_options_build_the_sunspec_simulators():
    from simulators.__main__ import build_parser, make_simulator

    def make(*argv: str):
        return make_simulator(build_parser().parse_args(["modbus", *argv]))

    units = make("--sunspec-models", "1,113,802", "--meters", "3", "--pv-kwp", "30", "--battery-kwh", "60",
                 "--timeout-unit", "2")
    assert isinstance(units, SunSpecSimulator) and not isinstance(units, PvSiteSimulator)
    assert units.unit_models == {1: (113, 802), 2: (113, 802), 3: (113, 802)}
    assert (units.kwp, units.battery_kwh, units.fault(2)) == (30.0, 60.0, "timeout")
    assert make("--sunspec-models", "203").unit_models == {u: (203,) for u in range(1, 21)}
    site = make("--pv-site", "--float-inverter", "--site-load-kw", "150", "--start", "2025-06-21T05:00",
                "--time-scale", "60", "--sunspec-base", "50000")
    assert isinstance(site, PvSiteSimulator) and site.unit_models == {1: (113,), 2: (203,)}
    assert (site.site.kwp, site.site.site_load_kw, site.base, site.ev_feed) == (250.0, 150.0, 50000, None)
    assert site.bank.clock() == pytest.approx(parse_start("2025-06-21T05:00"), abs=60)
    plain = make("--sunspec")
    assert type(plain) is ModbusSimulator and plain.sunspec           # the meters' SunSpec mode is unchanged
