"""Bytes of the Bluetooth health characteristics, as a device sends them (the decoders' partner).

The virtual devices use these; tests round-trip them through ``edge_agent.sources.ble.decoders``.
Values are given in the canonical units unless ``unit`` says otherwise; ``time`` is the device
clock's naive datetime (``None``: no time stamp; glucose always has a base time, all zeros =
unknown). ``special`` is one of ``nan``, ``nres``, ``+inf``, ``-inf``, ``reserved``: the
IEEE-11073 special value replaces the number(s) named below. ``decimals`` is the precision sent.

- ``encode_blood_pressure(systolic, diastolic, mean_arterial, *, unit="mmHg"|"kPa", time=None, pulse=None,
  user_id=None, status=(), special=None, decimals=0)``: ``special`` replaces the three pressures;
  ``status`` takes the decoder's names (body_movement, cuff_too_loose, irregular_pulse, improper_position,
  pulse_above_range, pulse_below_range).
- ``encode_temperature(value, *, unit="Cel"|"degF", time=None, site=None, special=None, decimals=2,
  float_format="ieee11073"|"ieee754")``: ``site`` armpit, body, ear, finger, gi_tract, mouth, rectum, toe, tympanum.
- ``encode_plx_spot_check(spo2, pulse, *, time=None, measurement_status=(), device_status=(), pai=None,
  clock_not_set=False, special=None, decimals=0)`` and ``encode_plx_continuous(spo2, pulse, *, fast=None,
  slow=None, measurement_status=(), device_status=(), pai=None, special=None, decimals=0)``: ``special``
  replaces SpO2 and pulse rate.
- ``encode_weight_feature(*, weight_resolution_kg=None, height_resolution_m=None, timestamp=False,
  multiple_users=False, bmi=False)`` and ``encode_weight(kg, *, time=None, user_id=None, bmi=None, height_m=None,
  resolution_kg=0.005, resolution_m=0.001, imperial=False, special=None)``: ``special`` (any) sends 0xFFFF,
  "measurement unsuccessful". ``imperial`` sends lb/in with the matching imperial steps.
- ``encode_glucose(sequence, time, mg_dl, *, unit="kg/L"|"mol/L", sample=None, location=None, time_offset_min=None,
  status=(), context_follows=False, special=None, decimals=None)``: ``mg_dl=None`` (and no special) sends a
  record without a concentration.
- ``encode_glucose_context(sequence, *, meal=None, tester=None, health=None, carbohydrate=None,
  carbohydrate_g=None, exercise_duration_s=None, exercise_intensity_pct=None, medication=None,
  medication_mg=None, medication_ml=None, hba1c_pct=None)``.
- ``encode_racp_number(count)``, ``encode_racp_response(request_op_code, response_code)``.
- ``encode_heart_rate(bpm, *, contact=None, energy_kj=None, rr_intervals_s=(), wide=None)``: ``contact``
  None = sensor contact not supported, True/False = supported and (not) detected.
- ``encode_date_time(time)`` and ``encode_current_time(now)`` (the gateway's write, here for symmetry).
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from edge_agent.sources.ble.decode_body import HEIGHT_STEPS, TEMPERATURE_SITES, WEIGHT_STEPS
from edge_agent.sources.ble.decode_cardio import BP_PULSE_RANGE, BP_STATUS_BITS, PLX_DEVICE_STATUS_BITS, \
    PLX_MEASUREMENT_STATUS_BITS
from edge_agent.sources.ble.decode_common import KG_PER_LB, MG_DL_PER_KG_L, MG_DL_PER_MOL_L, MMHG_PER_KPA
from edge_agent.sources.ble.decode_glucose import CARBOHYDRATES, GLUCOSE_LOCATIONS, GLUCOSE_SAMPLES, \
    GLUCOSE_STATUS_BITS, HEALTH, MEALS, MEDICATIONS, RACP_NUMBER_RESPONSE, RACP_RESPONSE_CODE, TESTERS
from edge_agent.sources.ble.decode_time import encode_current_time
from edge_agent.sources.ble.ieee11073 import float_bytes, ieee754_bytes, sfloat_bytes

__all__ = [
    "encode_blood_pressure", "encode_current_time", "encode_date_time", "encode_glucose", "encode_glucose_context",
    "encode_heart_rate", "encode_plx_continuous", "encode_plx_spot_check", "encode_racp_number",
    "encode_racp_response", "encode_temperature", "encode_weight", "encode_weight_feature",
]


def _code(names: dict[int, str], name: str, what: str) -> int:
    for code, known in names.items():
        if known == name:
            return code
    raise ValueError(f"{what}: unknown {name!r} (expected one of {sorted(names.values())})")


def _bits(names: Iterable[str], table: dict[int, str], what: str) -> int:
    return sum(1 << _code(table, name, what) for name in names)


def encode_date_time(time: datetime | None) -> bytes:
    """7 bytes: year u16, month, day, hours, minutes, seconds; None = all zeros (unknown)."""
    if time is None:
        return bytes(7)
    return time.year.to_bytes(2, "little") + bytes([time.month, time.day, time.hour, time.minute, time.second])


def encode_blood_pressure(systolic: float | None, diastolic: float | None, mean_arterial: float | None, *,
                          unit: str = "mmHg", time: datetime | None = None, pulse: float | None = None,
                          user_id: int | None = None, status: Iterable[str] = (), special: str | None = None,
                          decimals: int = 0) -> bytes:
    if unit not in ("mmHg", "kPa"):
        raise ValueError(f"unit: expected mmHg or kPa (got {unit!r})")
    kpa = unit == "kPa"
    status = tuple(status)
    flags = (0x01 if kpa else 0) | (0x02 if time else 0) | (0x04 if pulse is not None else 0) \
        | (0x08 if user_id is not None else 0) | (0x10 if status else 0)
    out = bytearray([flags])
    for value in (systolic, diastolic, mean_arterial):
        out += sfloat_bytes(value, decimals, special if special or value is None else None)
    if time:
        out += encode_date_time(time)
    if pulse is not None:
        out += sfloat_bytes(pulse)
    if user_id is not None:
        out.append(user_id)
    if status:
        ranges = [n for n in status if n in BP_PULSE_RANGE.values()]
        bits = _bits([n for n in status if n not in ranges], BP_STATUS_BITS, "status")
        for name in ranges:
            bits |= _code(BP_PULSE_RANGE, name, "status") << 3
        out += bits.to_bytes(2, "little")
    return bytes(out)


def kpa(mmhg: float) -> float:
    """mmHg -> kPa with one decimal, as a kPa cuff would show it."""
    return round(mmhg / MMHG_PER_KPA, 1)


def encode_temperature(value: float | None, *, unit: str = "Cel", time: datetime | None = None,
                       site: str | None = None, special: str | None = None, decimals: int = 2,
                       float_format: str = "ieee11073") -> bytes:
    if unit not in ("Cel", "degF"):
        raise ValueError(f"unit: expected Cel or degF (got {unit!r})")
    flags = (0x01 if unit == "degF" else 0) | (0x02 if time else 0) | (0x04 if site else 0)
    out = bytearray([flags])
    if float_format == "ieee754":
        out += ieee754_bytes(value, special)
    else:
        out += float_bytes(value, decimals, special)
    if time:
        out += encode_date_time(time)
    if site:
        out.append(_code(TEMPERATURE_SITES, site, "site"))
    return bytes(out)


def _plx_status(measurement_status: Iterable[str], device_status: Iterable[str]) -> tuple[bytes, bytes]:
    measurement = tuple(measurement_status)
    device = tuple(device_status)
    return (_bits(measurement, PLX_MEASUREMENT_STATUS_BITS, "measurement_status").to_bytes(2, "little")
            if measurement else b"",
            _bits(device, PLX_DEVICE_STATUS_BITS, "device_status").to_bytes(3, "little") if device else b"")


def encode_plx_spot_check(spo2: float | None, pulse: float | None, *, time: datetime | None = None,
                          measurement_status: Iterable[str] = (), device_status: Iterable[str] = (),
                          pai: float | None = None, clock_not_set: bool = False, special: str | None = None,
                          decimals: int = 0) -> bytes:
    measurement, device = _plx_status(measurement_status, device_status)
    flags = (0x01 if time else 0) | (0x02 if measurement else 0) | (0x04 if device else 0) \
        | (0x08 if pai is not None else 0) | (0x10 if clock_not_set else 0)
    out = bytearray([flags]) + sfloat_bytes(spo2, decimals, special) + sfloat_bytes(pulse, decimals, special)
    if time:
        out += encode_date_time(time)
    out += measurement + device
    if pai is not None:
        out += sfloat_bytes(pai, 1)
    return bytes(out)


def encode_plx_continuous(spo2: float | None, pulse: float | None, *, fast: tuple[float, float] | None = None,
                          slow: tuple[float, float] | None = None, measurement_status: Iterable[str] = (),
                          device_status: Iterable[str] = (), pai: float | None = None, special: str | None = None,
                          decimals: int = 0) -> bytes:
    measurement, device = _plx_status(measurement_status, device_status)
    flags = (0x01 if fast else 0) | (0x02 if slow else 0) | (0x04 if measurement else 0) \
        | (0x08 if device else 0) | (0x10 if pai is not None else 0)
    out = bytearray([flags]) + sfloat_bytes(spo2, decimals, special) + sfloat_bytes(pulse, decimals, special)
    for pair in (fast, slow):
        if pair:
            out += sfloat_bytes(pair[0], decimals) + sfloat_bytes(pair[1], decimals)
    out += measurement + device
    if pai is not None:
        out += sfloat_bytes(pai, 1)
    return bytes(out)


def _step_code(steps: dict[int, tuple[float, float]], step: float | None, what: str) -> int:
    if step is None:
        return 0
    for code, (si, _imperial) in steps.items():
        if code and abs(si - step) < 1e-9:
            return code
    raise ValueError(f"{what}: {step} is not a resolution the spec defines "
                     f"({sorted({si for si, _ in steps.values()})})")


def encode_weight_feature(*, weight_resolution_kg: float | None = None, height_resolution_m: float | None = None,
                          timestamp: bool = False, multiple_users: bool = False, bmi: bool = False) -> bytes:
    """0x2A9E, 4 bytes; a resolution of None = "not specified" (the decoder then uses 5 g / 1 mm)."""
    bits = (1 if timestamp else 0) | (2 if multiple_users else 0) | (4 if bmi else 0) \
        | _step_code(WEIGHT_STEPS, weight_resolution_kg, "weight_resolution_kg") << 3 \
        | _step_code(HEIGHT_STEPS, height_resolution_m, "height_resolution_m") << 7
    return bits.to_bytes(4, "little")


def _steps(value: float, step: float, what: str) -> int:
    raw = round(value / step)
    if not 0 <= raw < 0xFFFF:
        raise ValueError(f"{what}: {value} does not fit in 16 bits of {step}")
    return raw


def encode_weight(kg: float | None, *, time: datetime | None = None, user_id: int | None = None,
                  bmi: float | None = None, height_m: float | None = None, resolution_kg: float = 0.005,
                  resolution_m: float = 0.001, imperial: bool = False, special: str | None = None) -> bytes:
    """Give the resolutions the scale announces in 0x2A9E (imperial: their lb/in twins are used)."""
    unsuccessful = special is not None or kg is None
    has_bmi = not unsuccessful and bmi is not None and height_m is not None
    flags = (0x01 if imperial else 0) | (0x02 if time and not unsuccessful else 0) \
        | (0x04 if user_id is not None and not unsuccessful else 0) | (0x08 if has_bmi else 0)
    out = bytearray([flags])
    if unsuccessful:          # the spec: no optional field after an unsuccessful measurement
        return bytes(out + (0xFFFF).to_bytes(2, "little"))
    weight_step = WEIGHT_STEPS[_step_code(WEIGHT_STEPS, resolution_kg, "resolution_kg")]
    height_step = HEIGHT_STEPS[_step_code(HEIGHT_STEPS, resolution_m, "resolution_m")]
    if imperial:
        out += _steps(kg / KG_PER_LB, weight_step[1], "weight").to_bytes(2, "little")
    else:
        out += _steps(kg, weight_step[0], "weight").to_bytes(2, "little")
    if time:
        out += encode_date_time(time)
    if user_id is not None:
        out.append(user_id)
    if has_bmi:
        out += _steps(bmi, 0.1, "bmi").to_bytes(2, "little")
        height = _steps(height_m * 100 / 2.54, height_step[1], "height") if imperial else \
            _steps(height_m, height_step[0], "height")
        out += height.to_bytes(2, "little")
    return bytes(out)


def encode_glucose(sequence: int, time: datetime | None, mg_dl: float | None, *, unit: str = "kg/L",
                   sample: str | None = None, location: str | None = None, time_offset_min: int | None = None,
                   status: Iterable[str] = (), context_follows: bool = False, special: str | None = None,
                   decimals: int | None = None) -> bytes:
    """``unit`` is what goes on the air: kg/L (mg/dL x 1e-5, 5 decimals by default) or mol/L
    (mmol/L x 1e-3, 4 decimals = 0.1 mmol/L by default)."""
    if unit not in ("kg/L", "mol/L"):
        raise ValueError(f"unit: expected kg/L or mol/L (got {unit!r})")
    status = tuple(status)
    concentration = mg_dl is not None or special is not None
    flags = (0x01 if time_offset_min is not None else 0) | (0x02 if concentration else 0) \
        | (0x04 if unit == "mol/L" else 0) | (0x08 if status else 0) | (0x10 if context_follows else 0)
    out = bytearray([flags]) + sequence.to_bytes(2, "little") + encode_date_time(time)
    if time_offset_min is not None:
        out += time_offset_min.to_bytes(2, "little", signed=True)
    if concentration:
        if unit == "kg/L":
            value = None if mg_dl is None else mg_dl / MG_DL_PER_KG_L
            out += sfloat_bytes(value, 5 if decimals is None else decimals, special)
        else:
            value = None if mg_dl is None else mg_dl / MG_DL_PER_MOL_L
            out += sfloat_bytes(value, 4 if decimals is None else decimals, special)
        sample_code = _code(GLUCOSE_SAMPLES, sample, "sample") if sample else 0
        location_code = _code(GLUCOSE_LOCATIONS, location, "location") if location else 0xF
        out.append(location_code << 4 | sample_code)
    if status:
        out += _bits(status, GLUCOSE_STATUS_BITS, "status").to_bytes(2, "little")
    return bytes(out)


def encode_glucose_context(sequence: int, *, meal: str | None = None, tester: str | None = None,
                           health: str | None = None, carbohydrate: str | None = None,
                           carbohydrate_g: float | None = None, exercise_duration_s: int | None = None,
                           exercise_intensity_pct: int | None = None, medication: str | None = None,
                           medication_mg: float | None = None, medication_ml: float | None = None,
                           hba1c_pct: float | None = None) -> bytes:
    has_medication = medication is not None and (medication_mg is not None or medication_ml is not None)
    flags = (0x01 if carbohydrate else 0) | (0x02 if meal else 0) | (0x04 if tester or health else 0) \
        | (0x08 if exercise_duration_s is not None else 0) | (0x10 if has_medication else 0) \
        | (0x20 if has_medication and medication_ml is not None else 0) | (0x40 if hba1c_pct is not None else 0)
    out = bytearray([flags]) + sequence.to_bytes(2, "little")
    if carbohydrate:
        out.append(_code(CARBOHYDRATES, carbohydrate, "carbohydrate"))
        out += sfloat_bytes((carbohydrate_g or 0) / 1000.0, 3)
    if meal:
        out.append(_code(MEALS, meal, "meal"))
    if tester or health:
        tester_code = _code(TESTERS, tester, "tester") if tester else 0xF
        health_code = _code(HEALTH, health, "health") if health else 0xF
        out.append(health_code << 4 | tester_code)
    if exercise_duration_s is not None:
        out += exercise_duration_s.to_bytes(2, "little") + bytes([exercise_intensity_pct or 0])
    if has_medication:
        out.append(_code(MEDICATIONS, medication, "medication"))
        if medication_ml is not None:
            out += sfloat_bytes(medication_ml / 1000.0, 4)        # litres, 0.1 ml steps
        else:
            out += sfloat_bytes(medication_mg / 1_000_000.0, 6)   # kg, 1 mg steps
    if hba1c_pct is not None:
        out += sfloat_bytes(hba1c_pct, 1)
    return bytes(out)


def encode_racp_number(count: int) -> bytes:
    """``05 00 <u16 count>``: the answer to "report number of stored records"."""
    return bytes([RACP_NUMBER_RESPONSE, 0x00]) + count.to_bytes(2, "little")


def encode_racp_response(request_op_code: int, response_code: int) -> bytes:
    """``06 00 <request op> <code>``: 1 success, 2 op code not supported, 3 invalid operator, 4 operator not
    supported, 5 invalid operand, 6 no records found, 7 abort unsuccessful, 8 procedure not completed."""
    return bytes([RACP_RESPONSE_CODE, 0x00, request_op_code & 0xFF, response_code & 0xFF])


def encode_heart_rate(bpm: int, *, contact: bool | None = None, energy_kj: int | None = None,
                      rr_intervals_s: Iterable[float] = (), wide: bool | None = None) -> bytes:
    rr = [round(s * 1024) for s in rr_intervals_s]
    wide = bpm > 255 if wide is None else wide
    flags = (0x01 if wide else 0) | ({None: 0, False: 0x04, True: 0x06}[contact]) \
        | (0x08 if energy_kj is not None else 0) | (0x10 if rr else 0)
    out = bytearray([flags]) + int(bpm).to_bytes(2 if wide else 1, "little")
    if energy_kj is not None:
        out += int(energy_kj).to_bytes(2, "little")
    for interval in rr:
        out += interval.to_bytes(2, "little")
    return bytes(out)
