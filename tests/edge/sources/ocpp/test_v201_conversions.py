"""OCPP 2.0.1 conversions without a peer: samples, registers, limits in the station's unit, keys."""

from __future__ import annotations

import pytest
from ocpp.exceptions import FormatViolationError

from edge_agent.sources.ocpp.model import Limit, RateUnit, Sample
from edge_agent.sources.ocpp.v201_device_model import parse_key
from edge_agent.sources.ocpp.v201_requests import id_token, in_supported_unit
from edge_agent.sources.ocpp.v201_samples import energy_register_wh, samples_from, timestamp_ms

T = "2026-11-29T08:00:00Z"
T_MS = 1_795_939_200_000


def test_timestamps_with_zone_offset_fraction_or_none():
    assert timestamp_ms(T) == T_MS
    assert timestamp_ms("2026-11-29T09:00:00.250+01:00") == T_MS + 250
    assert timestamp_ms("2026-11-29T08:00:00") == T_MS         # no zone: UTC
    with pytest.raises(FormatViolationError):
        timestamp_ms("29.11.2026 08:00")


def test_units_default_by_measurand_and_multipliers_fold_into_the_value():
    samples = samples_from([{"timestamp": T, "sampled_value": [
        {"value": 1234},
        {"value": 7, "measurand": "Power.Active.Import", "unit_of_measure": {"multiplier": 3}},
        {"value": 16, "measurand": "Current.Offered"},
        {"value": 49.98, "measurand": "Frequency"},
        {"value": 5, "measurand": "Energy.Reactive.Import.Register"},
        {"value": 123456, "unit_of_measure": {"unit": "kWh", "multiplier": -3}},
    ]}])
    assert [(s.measurand, s.value, s.unit) for s in samples] == [
        ("Energy.Active.Import.Register", 1234.0, "Wh"),
        ("Power.Active.Import", 7000.0, "W"),
        ("Current.Offered", 16.0, "A"),
        ("Frequency", 49.98, "Hz"),
        ("Energy.Reactive.Import.Register", 5.0, "varh"),
        ("Energy.Active.Import.Register", 123.456, "kWh"),
    ]


def test_register_prefers_the_context_then_the_order_and_skips_phases_and_the_ev():
    def register(ts, value, unit="Wh", context="", phase="", location=""):
        return Sample(ts, "Energy.Active.Import.Register", value, unit, phase, context, location)

    samples = [register(3, 3.0, "kWh"), register(1, 1000.0), register(2, 2000.0, context="Transaction.Begin"),
               register(0, 9.0, phase="L1"), register(0, 8.0, location="EV"),
               Sample(0, "Power.Active.Import", 5.0, "W")]
    assert energy_register_wh(samples, "Transaction.Begin", latest=False) == 2000.0
    assert energy_register_wh(samples, "Transaction.End", latest=True) == 3000.0
    assert energy_register_wh(samples, "Transaction.End", latest=False) == 1000.0
    assert energy_register_wh(samples[3:], "Transaction.Begin", latest=False) is None


@pytest.mark.parametrize("limit, supported, expected", [
    (Limit(16.29, RateUnit.AMPS), (RateUnit.AMPS,), (16.2, RateUnit.AMPS)),
    (Limit(7400.9, RateUnit.WATTS), (RateUnit.AMPS, RateUnit.WATTS), (7400.0, RateUnit.WATTS)),
    (Limit(6, RateUnit.AMPS), (RateUnit.WATTS,), (4140.0, RateUnit.WATTS)),             # 3 phases assumed
    (Limit(6, RateUnit.AMPS, phases=1), (RateUnit.WATTS,), (1380.0, RateUnit.WATTS)),
    (Limit(1380, RateUnit.WATTS, phases=1), (RateUnit.AMPS,), (6.0, RateUnit.AMPS)),
    (Limit(0, RateUnit.AMPS), (RateUnit.AMPS,), (0.0, RateUnit.AMPS)),
])
def test_limits_in_the_unit_the_station_takes(limit, supported, expected):
    assert in_supported_unit(limit, supported) == expected


def test_rfid_uids_are_iso14443_tokens_other_tags_central():
    assert id_token("04A1B2C3").type == "ISO14443"
    assert id_token("04a1b2c3d4e5f6").type == "ISO14443"
    assert id_token("employee-17").type == "Central"
    assert id_token("04A1B2C").type == "Central"


def test_configuration_keys():
    assert str(parse_key("OCPPCommCtrlr.HeartbeatInterval")) == "OCPPCommCtrlr.HeartbeatInterval"
    key = parse_key("SmartChargingCtrlr.Entries.ChargingProfiles")
    assert (key.component, key.variable, key.instance) == ("SmartChargingCtrlr", "Entries", "ChargingProfiles")
    for bad in ("HeartbeatInterval", "A..B", "A.B.C.D", ""):
        with pytest.raises(ValueError, match="Component.Variable"):
            parse_key(bad)
