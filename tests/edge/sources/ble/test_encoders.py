"""The simulators' encoders and the gateway's decoders agree: whatever a virtual device encodes
decodes to the same values (within the resolution sent), times, status names and text."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from edge_agent.sources.ble import decoders
from edge_agent.sources.ble.decode_body import TEMPERATURE_SITES
from edge_agent.sources.ble.decode_cardio import BP_STATUS_BITS, PLX_DEVICE_STATUS_BITS, PLX_MEASUREMENT_STATUS_BITS
from edge_agent.sources.ble.decode_glucose import GLUCOSE_LOCATIONS, GLUCOSE_SAMPLES, GLUCOSE_STATUS_BITS, MEALS
from edge_agent.sources.ble.models import load_model
from simulators.ble import encoders

times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda t: t.replace(microsecond=0))
specials = st.sampled_from(["nan", "nres", "+inf", "-inf"])
ABSENT = {"nan": "not-a-number", "nres": "error", "+inf": "positive-infinity", "-inf": "negative-infinity"}


def values(m) -> dict:
    return {v.metric: v.value for v in m.values}


@settings(max_examples=200, deadline=None)
@given(systolic=st.integers(60, 260), diastolic=st.integers(30, 150), pulse=st.integers(30, 220),
       time=st.none() | times, user=st.none() | st.integers(0, 254),
       status=st.lists(st.sampled_from(sorted(BP_STATUS_BITS.values())), unique=True),
       pulse_range=st.sampled_from([None, "pulse_above_range", "pulse_below_range"]))
def test_blood_pressure(systolic, diastolic, pulse, time, user, status, pulse_range):
    status = [s for s in BP_STATUS_BITS.values() if s in status] + ([pulse_range] if pulse_range else [])
    data = encoders.encode_blood_pressure(systolic, diastolic, 90, time=time, pulse=pulse, user_id=user,
                                          status=status)
    m = decoders.decode(0x2A35, data)
    assert values(m) == {"systolic": systolic, "diastolic": diastolic, "mean_arterial": 90, "pulse": pulse}
    assert (m.device_time, m.user_id, list(m.status)) == (time, user, status)


@settings(max_examples=100, deadline=None)
@given(mmhg=st.integers(60, 260))
def test_blood_pressure_in_kpa_comes_back_in_mmhg(mmhg):
    kpa = encoders.kpa(mmhg)
    m = decoders.decode(0x2A35, encoders.encode_blood_pressure(kpa, kpa, kpa, unit="kPa", decimals=1))
    assert abs(m.value_of("systolic").value - mmhg) <= 0.05 * 7.50062 + 1e-9     # half a 0.1 kPa step


@pytest.mark.parametrize("special", ["nan", "nres", "+inf", "-inf"])
def test_special_values_of_every_encoder(special):
    cases = [
        (0x2A35, encoders.encode_blood_pressure(120, 80, 93, special=special),
         ["systolic", "diastolic", "mean_arterial"]),
        (0x2A1C, encoders.encode_temperature(37.0, special=special), ["body_temp"]),
        (0x2A5E, encoders.encode_plx_spot_check(97, 70, special=special), ["spo2", "spo2_pulse"]),
        (0x2A5F, encoders.encode_plx_continuous(97, 70, special=special), ["spo2", "spo2_pulse"]),
        (0x2A18, encoders.encode_glucose(1, datetime(2026, 11, 29, 8), 100, special=special), ["glucose"]),
    ]
    for characteristic, data, metrics in cases:
        m = decoders.decode(characteristic, data)
        for metric in metrics:
            assert m.value_of(metric).value is None and m.value_of(metric).absent == ABSENT[special]
    weight = decoders.decode(0x2A9D, encoders.encode_weight(70.0, time=datetime(2026, 1, 1), special=special))
    assert weight.value_of("weight").absent == "error" and weight.device_time is None


@settings(max_examples=200, deadline=None)
@given(celsius=st.integers(3400, 4200).map(lambda c: c / 100), time=st.none() | times,
       site=st.none() | st.sampled_from(sorted(TEMPERATURE_SITES.values())), ieee754=st.booleans())
def test_temperature(celsius, time, site, ieee754):
    data = encoders.encode_temperature(celsius, time=time, site=site,
                                       float_format="ieee754" if ieee754 else "ieee11073")
    model = load_model("generic-ieee754-thermometer") if ieee754 else None
    m = decoders.decode(0x2A1C, data, model=model)
    assert m.value_of("body_temp").value == pytest.approx(celsius, abs=1e-6)
    assert (m.device_time, m.text.get("temp_site")) == (time, site)


@settings(max_examples=100, deadline=None)
@given(fahrenheit=st.integers(930, 1080).map(lambda f: f / 10))
def test_temperature_in_fahrenheit(fahrenheit):
    m = decoders.decode(0x2A1C, encoders.encode_temperature(fahrenheit, unit="degF", decimals=1))
    assert m.value_of("body_temp").value == pytest.approx((fahrenheit - 32) * 5 / 9, abs=0.001)


@settings(max_examples=200, deadline=None)
@given(spo2=st.integers(70, 100), pulse=st.integers(30, 220), time=st.none() | times,
       pai=st.none() | st.integers(1, 200).map(lambda p: p / 10),
       measurement=st.lists(st.sampled_from(sorted(PLX_MEASUREMENT_STATUS_BITS.values())), unique=True),
       device=st.lists(st.sampled_from(sorted(PLX_DEVICE_STATUS_BITS.values())), unique=True))
def test_pulse_oximeter(spo2, pulse, time, pai, measurement, device):
    expected_status = [s for s in PLX_MEASUREMENT_STATUS_BITS.values() if s in measurement] + \
        [s for s in PLX_DEVICE_STATUS_BITS.values() if s in device]
    spot = decoders.decode(0x2A5E, encoders.encode_plx_spot_check(
        spo2, pulse, time=time, pai=pai, measurement_status=measurement, device_status=device))
    continuous = decoders.decode(0x2A5F, encoders.encode_plx_continuous(
        spo2, pulse, fast=(spo2, pulse), slow=(spo2, pulse), pai=pai, measurement_status=measurement,
        device_status=device))
    for m in (spot, continuous):
        assert values(m) == {"spo2": spo2, "spo2_pulse": pulse, **({"perfusion_index": pai} if pai else {})}
        assert list(m.status) == expected_status
    assert spot.device_time == time and continuous.device_time is None


@settings(max_examples=200, deadline=None)
@given(kg=st.integers(2000, 20000).map(lambda g: g / 100), time=st.none() | times, user=st.none() | st.integers(0, 254),
       bmi=st.integers(120, 450).map(lambda b: b / 10), height_m=st.integers(1200, 2100).map(lambda h: h / 1000),
       resolution=st.sampled_from([0.005, 0.01, 0.05, 0.1]), imperial=st.booleans())
def test_weight_with_the_scales_feature(kg, time, user, bmi, height_m, resolution, imperial):
    feature = encoders.encode_weight_feature(weight_resolution_kg=resolution, height_resolution_m=0.001,
                                             timestamp=True, bmi=True)
    context = decoders.DecodeContext(weight_resolution=decoders.decode_weight_feature(feature))
    data = encoders.encode_weight(kg, time=time, user_id=user, bmi=bmi, height_m=height_m, resolution_kg=resolution,
                                  imperial=imperial)
    m = decoders.decode(0x2A9D, data, context=context)
    step_kg = context.weight_resolution.weight_lb * 0.45359237 if imperial else resolution
    assert abs(m.value_of("weight").value - kg) <= step_kg / 2 + 1e-6
    assert m.value_of("bmi").value == pytest.approx(bmi)
    assert abs(m.value_of("height").value - height_m * 100) <= (0.254 / 2 if imperial else 0.05) + 1e-6
    assert (m.device_time, m.user_id) == (time, user)


@settings(max_examples=200, deadline=None)
@given(sequence=st.integers(0, 0xFFFF), time=times, mg_dl=st.integers(20, 600), unit=st.sampled_from(["kg/L", "mol/L"]),
       sample=st.sampled_from(sorted(GLUCOSE_SAMPLES.values())),
       location=st.none() | st.sampled_from(sorted(GLUCOSE_LOCATIONS.values())),
       offset=st.none() | st.integers(-600, 600),
       status=st.lists(st.sampled_from(sorted(GLUCOSE_STATUS_BITS.values())), unique=True),
       meal=st.none() | st.sampled_from(sorted(MEALS.values())))
def test_glucose_with_context(sequence, time, mg_dl, unit, sample, location, offset, status, meal):
    data = encoders.encode_glucose(sequence, time, mg_dl, unit=unit, sample=sample, location=location,
                                   time_offset_min=offset, status=status, context_follows=meal is not None)
    m = decoders.decode(0x2A18, data)
    tolerance = 0.05 * 18.016 if unit == "mol/L" else 0.0      # 0.1 mmol/L steps
    assert abs(m.value_of("glucose").value - mg_dl) <= tolerance + 1e-6
    assert m.sequence == sequence and decoders.glucose_context_follows(data) == (meal is not None)
    assert m.device_time == (time if offset is None else time + timedelta(minutes=offset))
    assert list(m.status) == [s for s in GLUCOSE_STATUS_BITS.values() if s in status]
    expected_text = {"glucose_sample": sample, **({"glucose_location": location} if location else {})}
    assert m.text == expected_text
    if meal is not None:
        context_sequence, text = decoders.decode_glucose_context(encoders.encode_glucose_context(sequence, meal=meal))
        assert context_sequence == sequence and decoders.with_context(m, text).text == {**expected_text,
                                                                                          "glucose_meal": meal}


def test_glucose_context_everything_and_racp_answers():
    context = decoders.decode_glucose_context_full(encoders.encode_glucose_context(
        9, meal="bedtime", tester="health_care_professional", health="under_stress", carbohydrate="snack",
        carbohydrate_g=30, exercise_duration_s=1800, exercise_intensity_pct=70, medication="long_acting_insulin",
        medication_mg=12, hba1c_pct=7.1))
    assert (context.sequence, context.meal, context.tester, context.health, context.carbohydrate) == \
        (9, "bedtime", "health_care_professional", "under_stress", "snack")
    assert (context.carbohydrate_g, context.exercise_duration_s, context.exercise_intensity_pct) == (30.0, 1800, 70)
    assert (context.medication, context.medication_mg, context.hba1c_pct) == ("long_acting_insulin", 12.0, 7.1)
    assert decoders.decode_racp(encoders.encode_racp_number(12)).number_of_records == 12
    answer = decoders.decode_racp(encoders.encode_racp_response(0x01, 0x06))
    assert (answer.request_op_code, answer.response, answer.ok, answer.done) == (1, "no_records_found", True, True)


@settings(max_examples=200, deadline=None)
@given(bpm=st.integers(0, 600), contact=st.sampled_from([None, True, False]),
       energy=st.none() | st.integers(0, 0xFFFF), rr=st.lists(st.integers(200, 2000).map(lambda ms: ms / 1000),
                                                              max_size=8))
def test_heart_rate(bpm, contact, energy, rr):
    m = decoders.decode(0x2A37, encoders.encode_heart_rate(bpm, contact=contact, energy_kj=energy, rr_intervals_s=rr))
    assert m.value_of("heart_rate").value == bpm
    assert (m.value_of("energy_expended").value if energy is not None else None) == energy
    if rr:
        assert m.value_of("rr_interval").value == pytest.approx(sum(rr) / len(rr), abs=1e-3)
    assert list(m.status) == (["no_sensor_contact"] if contact is False else [])


@settings(max_examples=100, deadline=None)
@given(now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_current_time(now):
    decoded = decoders.decode_current_time(encoders.encode_current_time(now))
    assert abs((decoded.time - now).total_seconds()) < 1 / 256 and decoded.day_of_week == now.isoweekday()


def test_encoders_refuse_what_the_air_cannot_carry():
    with pytest.raises(ValueError, match="unit"):
        encoders.encode_blood_pressure(120, 80, 93, unit="psi")
    with pytest.raises(ValueError, match="site"):
        encoders.encode_temperature(37.0, site="elbow")
    with pytest.raises(ValueError, match="resolution"):
        encoders.encode_weight_feature(weight_resolution_kg=0.3)
    with pytest.raises(ValueError, match="status"):
        encoders.encode_blood_pressure(120, 80, 93, status=["sneezing"])
