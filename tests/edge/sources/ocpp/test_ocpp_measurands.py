"""Samples → readings: names and units of the README table, numbers checked by hand."""

from __future__ import annotations

import pytest

from edge_agent.sources.base import now_ms

from edge_agent.sources.ocpp.measurands import catalog, energy_wh, power_w, to_reading, to_readings
from edge_agent.sources.ocpp.model import Sample
from edge_agent.sources.ocpp.v16 import parse_ts, samples_of

TS = 1_780_000_000_000


def one(measurand: str, value: float, unit: str = "", phase: str = "", location: str = ""):
    r = to_reading(Sample(ts_ms=TS, measurand=measurand, value=value, unit=unit, phase=phase, location=location))
    return r.metric, r.value, r.unit


@pytest.mark.parametrize("sample, expected", [
    (("Energy.Active.Import.Register", 12_345.0, "Wh"), ("energy_import", 12.345, "kWh")),
    (("Energy.Active.Import.Register", 12.5, "kWh"), ("energy_import", 12.5, "kWh")),
    (("Energy.Active.Import.Register", 800.0), ("energy_import", 0.8, "kWh")),             # Wh is the default
    (("", 1_500.0), ("energy_import", 1.5, "kWh")),                                        # so is the measurand
    (("Energy.Active.Export.Register", 2_000.0, "Wh"), ("energy_export", 2.0, "kWh")),
    (("Power.Active.Import", 7_360.0, "W"), ("power_total", 7360.0, "W")),
    (("Power.Active.Import", 2_453.3, "W", "L2"), ("power_l2", 2453.3, "W")),
    (("Power.Active.Import", 3.7, "kW", "L1-N"), ("power_l1", 3700.0, "W")),
    (("Power.Active.Export", 500.0, "W"), ("power_export", 500.0, "W")),
    (("Power.Offered", 11_000.0, "W"), ("power_offered", 11000.0, "W")),
    (("Current.Import", 15.9, "A"), ("current", 15.9, "A")),
    (("Current.Import", 16.1, "A", "L3"), ("current_l3", 16.1, "A")),
    (("Current.Import", 0.2, "A", "N"), ("current_n", 0.2, "A")),
    (("Current.Offered", 16.0, "A"), ("current_offered", 16.0, "A")),
    (("Voltage", 231.2, "V", "L1-N"), ("voltage_l1", 231.2, "V")),
    (("Voltage", 229.0, "V", "L1"), ("voltage_l1", 229.0, "V")),
    (("Voltage", 400.1, "V", "L1-L2"), ("voltage_l1_l2", 400.1, "V")),
    (("Voltage", 230.0, "V"), ("voltage", 230.0, "V")),
    (("Frequency", 49.98), ("frequency", 49.98, "Hz")),
    (("Power.Factor", 0.97), ("power_factor", 0.97, "")),
    (("SoC", 63.0, "Percent"), ("soc", 63.0, "%")),
    (("Temperature", 35.0, "Celsius"), ("temperature", 35.0, "°C")),
    (("Temperature", 95.0, "Fahrenheit"), ("temperature", 35.0, "°C")),                  # (95 - 32) x 5/9
    (("Temperature", 308.15, "K"), ("temperature", 35.0, "°C")),
    (("Energy.Active.Import.Interval", 250.0, "Wh"), ("energy_active_import_interval", 0.25, "kWh")),
    (("Power.Reactive.Import", 1_200.0, "var", "L1"), ("power_reactive_import_l1", 1200.0, "var")),
    (("Energy.Reactive.Import.Register", 3_000.0), ("energy_reactive_import_register", 3.0, "kvarh")),
    (("RPM", 10.0), ("rpm", 10.0, "")),
])
def test_sample_to_reading(sample, expected):
    name, value, unit = one(*sample)
    assert (name, unit) == expected[::2] and value == pytest.approx(expected[1], abs=1e-9)


def test_v16_string_values_become_samples():
    items = [{"timestamp": "2026-05-28T20:26:40.000Z", "sampled_value": [
        {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "not a number", "measurand": "Voltage"},
        {"value": "abc==", "format": "SignedData"},
        {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A", "context": "Sample.Periodic"}]}]
    samples = samples_of(items)
    assert [(s.measurand, s.value, s.phase) for s in samples] == [
        ("Energy.Active.Import.Register", 1234.5, ""), ("Current.Import", 16.0, "L1")]
    assert samples[0].ts_ms == 1_780_000_000_000 and samples[1].context == "Sample.Periodic"


def test_outlet_wins_over_ev_and_totals_from_phases():
    samples = [Sample(TS, "Power.Active.Import", 1_000.0, "W", "L1"),
               Sample(TS, "Power.Active.Import", 2_000.0, "W", "L2"),
               Sample(TS, "Power.Active.Import", 1.5, "kW", "L3"),
               Sample(TS, "SoC", 50.0, "Percent", location="EV"),
               Sample(TS, "Energy.Active.Import.Register", 2.0, "kWh"),
               Sample(TS, "Temperature", 30.0, "Celsius", location="Outlet"),
               Sample(TS, "Temperature", 40.0, "Celsius", location="Body")]
    assert power_w(samples) == 4_500.0                      # 1000 + 2000 + 1500 W
    assert energy_wh(samples) == 2_000.0
    temperature = [r for r in to_readings(samples) if r.metric == "temperature"]
    assert [r.value for r in temperature] == [30.0]
    assert power_w([Sample(TS, "Power.Active.Import", 7.2, "kW")]) == 7_200.0


def test_catalog_units_and_counters():
    metrics = {m.metric: m for m in catalog(["Energy.Active.Import.Register", "Power.Active.Import", "Current.Import",
                                             "Voltage", "SoC", "Energy.Active.Export.Register"])}
    assert metrics["energy_import"].counter and metrics["energy_export"].counter
    assert metrics["energy_import"].unit == "kWh" and metrics["power_l3"].unit == "W"
    assert metrics["current_l2"].unit == "A" and metrics["voltage_l1"].unit == "V" and metrics["soc"].unit == "%"
    assert not metrics["power_total"].counter and metrics["mode"].writable


def test_timestamps_parse_and_implausible_clocks_fall_back_to_arrival():
    assert parse_ts("2026-05-28T20:26:40Z") == 1_780_000_000_000
    assert parse_ts("2026-05-28T22:26:40.250+02:00") == 1_780_000_000_250
    assert parse_ts("2026-05-28T20:26:40") == 1_780_000_000_000          # no zone: UTC
    before = now_ms()
    for text in (None, "", "yesterday", "1970-01-01T00:00:05Z", "2099-01-01T00:00:00Z"):
        assert before <= parse_ts(text) <= now_ms()
