"""The SunSpec source against the project's own simulators: the PV site (103 + 203) and a unit with 113, 701, 802.

What the source reports must be what the simulator says a correct client decodes.
"""

from __future__ import annotations

import pytest

import edge_agent.sources.sunspec as sunspec
from simulators.modbus.sunspec_site import PvSiteSimulator, SunSpecSimulator
from simulators.pv import SimClock, parse_start
from tests.edge.sources.test_sunspec_source import make_config, metrics

pytestmark = pytest.mark.timeout(60)


def frozen_at(moment: str) -> SimClock:
    return SimClock(parse_start(moment), time_scale=1e-9)


async def test_the_pv_site_inverter_and_grid_meter_as_the_source_reads_them(source_tools):
    async with PvSiteSimulator(kwp=250, site_load_kw=400, cloudiness=0.0, port=0, interval=60,
                               ev_power_w=lambda: 11_000.0, clock=frozen_at("2025-03-20T11:40")) as sim:
        config = make_config(sim.port, [{"id": "pv-inverter", "unit": 1}, {"id": "grid-meter", "unit": 2}])
        context = source_tools.context()
        async with source_tools.run(sunspec.Source(config, context)) as run:
            await run.wait_for(lambda: len(run.of("pv-inverter")) >= 2 and len(run.of("grid-meter")) >= 2, 10, "both")
        inverter_served, meter_served, site = sim.values(1), sim.values(2), sim.snapshot

    inverter = metrics(run.of("pv-inverter")[-1])
    assert run.of("pv-inverter")[0].profile == "sunspec-103"
    for name in ("power_total", "energy_export", "dc_power", "frequency", "temperature_cabinet", "voltage_l1",
                 "current_l2"):
        assert inverter[name] == pytest.approx(inverter_served[name]), name
    assert inverter["inverter_state"] == "MPPT" and inverter["power_factor"] == 1.0
    assert "reactive_power_total" not in inverter                     # VAr not implemented by the simulator
    assert metrics(run.of("pv-inverter")[0])["model"] == "SIM-PV-INVERTER"

    meter = metrics(run.of("grid-meter")[-1])
    assert run.of("grid-meter")[0].profile == "sunspec-203"
    assert meter["power_total"] == pytest.approx(meter_served["power_total"])
    assert meter["power_total"] == pytest.approx(site.load_w + 11_000 - site.pv_w, abs=100)
    assert meter["energy_import"] == pytest.approx(meter_served["energy_import"])
    assert meter["energy_export"] == pytest.approx(meter_served["energy_export"])
    units = {m.metric: m for m in context.catalog["pv-inverter"][1]}
    assert units["energy_export"].counter and units["dc_power"].unit == "W"


async def test_a_float_inverter_with_der_measurements_and_a_battery(source_tools):
    async with SunSpecSimulator(meters=1, models=(113, 701, 802), kwp=80, battery_kwh=200, cloudiness=0.0, port=0,
                                interval=60, clock=frozen_at("2025-06-21T17:30")) as sim:
        config = make_config(sim.port, [{"id": "hybrid", "unit": 1}])
        context = source_tools.context()
        async with source_tools.run(sunspec.Source(config, context)) as run:
            await run.wait_for(lambda: len(run.of("hybrid")) >= 2, 10, "hybrid inverter")
        served, der = sim.values(1), sim.sunspec_model_points(1, 701)

    batch = run.of("hybrid")[-1]
    got = metrics(batch)
    assert batch.profile == "sunspec-113-701-802"
    assert got["power_total"] == pytest.approx(served["power_total"], rel=1e-6)      # float32 (113)
    # model 701 measures the same AC side; its names that 113 already took get the model id
    assert got["power_total_701"] == der["W"] == pytest.approx(served["power_total"], abs=10)
    assert got["energy_export_701"] == pytest.approx(der["TotWhInj"] / 1000)
    assert got["inverter_state_701"] == "RUNNING" and got["grid_connection"] == "CONNECTED"
    assert got["ac_type"] == "THREE_PHASE" and got["voltage_ll_avg"] == pytest.approx(der["LLV"])
    # 17:30: the sun is low and the battery discharges (positive power, as model 701 counts generation)
    assert got["battery_charge_state"] == "DISCHARGING" and got["battery_power"] == served["battery_power"] > 0
    assert got["soc"] == pytest.approx(90 - 70 * 0.5 / 5) and 0 < got["power_total"] < 20_000
    infos = {m.metric: m for m in context.catalog["hybrid"][1]}
    assert infos["energy_export_701"].counter and infos["energy_export_701"].rollover == pytest.approx(2 ** 64 / 1000)
    assert infos["frequency_701"].unit == "Hz" and infos["soc"].unit == "%"
