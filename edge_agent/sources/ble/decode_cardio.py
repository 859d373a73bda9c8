"""Blood Pressure Measurement (0x2A35), Heart Rate Measurement (0x2A37) and the Pulse Oximeter's
PLX Spot-Check (0x2A5E) and PLX Continuous (0x2A5F) measurements."""

from __future__ import annotations

from edge_agent.sources.ble import gatt_ids
from edge_agent.sources.ble.decode_common import BAD_TIME, MMHG_PER_KPA, Reader, bit_names, check_reserved_flags, \
    known_user, vital
from edge_agent.sources.ble.ieee11073 import Number
from edge_agent.sources.ble.measurement import Measurement, VitalValue
from hinode.vitals import Category

BP_STATUS_BITS = {0: "body_movement", 1: "cuff_too_loose", 2: "irregular_pulse", 5: "improper_position"}
BP_PULSE_RANGE = {1: "pulse_above_range", 2: "pulse_below_range"}   # bits 3-4

PLX_MEASUREMENT_STATUS_BITS = {
    5: "measurement_ongoing", 6: "early_estimated_data", 7: "validated_data", 8: "fully_qualified_data",
    9: "data_from_storage", 10: "data_for_demonstration", 11: "data_for_testing", 12: "calibration_ongoing",
    13: "measurement_unavailable", 14: "questionable_measurement", 15: "invalid_measurement",
}
PLX_DEVICE_STATUS_BITS = {
    0: "extended_display_update_ongoing", 1: "equipment_malfunction", 2: "signal_processing_irregularity",
    3: "inadequate_signal", 4: "poor_signal", 5: "low_perfusion", 6: "erratic_signal", 7: "nonpulsatile_signal",
    8: "questionable_pulse", 9: "signal_analysis_ongoing", 10: "sensor_interference", 11: "sensor_unconnected",
    12: "unknown_sensor_connected", 13: "sensor_displaced", 14: "sensor_malfunctioning", 15: "sensor_disconnected",
}
PLX_CLOCK_NOT_SET = "device_clock_not_set"
HR_NO_CONTACT = "no_sensor_contact"


def decode_blood_pressure(data: bytes) -> Measurement:
    """flags u8; systolic, diastolic, MAP SFLOAT (mmHg or kPa); [Date Time]; [pulse SFLOAT]; [user u8]; [status u16]."""
    r = Reader(data, "blood pressure measurement")
    flags = r.uint(1, "flags")
    check_reserved_flags(flags, 0x1F, r.what)
    factor = MMHG_PER_KPA if flags & 0x01 else 1.0
    values = [vital(metric, r.sfloat(metric), factor) for metric in ("systolic", "diastolic", "mean_arterial")]
    status: list[str] = []
    device_time, bad_time = None, False
    if flags & 0x02:
        device_time, bad_time = r.date_time("time stamp")
    if flags & 0x04:
        values.append(vital("pulse", r.sfloat("pulse rate")))
    user_id = known_user(r.uint(1, "user id")) if flags & 0x08 else None
    if flags & 0x10:
        bits = r.uint(2, "measurement status")
        status = bit_names(bits, BP_STATUS_BITS)
        if (pulse_range := BP_PULSE_RANGE.get(bits >> 3 & 0x3)) is not None:
            status.append(pulse_range)
    if bad_time:
        status.append(BAD_TIME)
    return Measurement(Category.BLOOD_PRESSURE, gatt_ids.BLOOD_PRESSURE_MEASUREMENT, tuple(values), device_time,
                       tuple(status), user_id=user_id)


def decode_heart_rate(data: bytes) -> Measurement:
    """flags u8; HR u8 or u16; [energy expended u16 kJ]; [RR-interval u16 1/1024 s ...].

    Several RR intervals in one notification become their mean (``rr_interval``); a lone byte
    left after the RR intervals is ignored like any trailing byte.
    """
    r = Reader(data, "heart rate measurement")
    flags = r.uint(1, "flags")
    check_reserved_flags(flags, 0x1F, r.what)
    rate = r.uint(2 if flags & 0x01 else 1, "heart rate")
    values = [VitalValue("heart_rate", float(rate), decimals=0)]
    status = [HR_NO_CONTACT] if flags & 0x06 == 0x04 else []
    if flags & 0x08:
        values.append(VitalValue("energy_expended", float(r.uint(2, "energy expended")), decimals=0))
    if flags & 0x10:
        intervals = [r.uint(2, "rr interval") for _ in range(max(1, r.remaining // 2))]
        values.append(VitalValue("rr_interval", round(sum(intervals) / len(intervals) / 1024.0, 5), decimals=3))
    return Measurement(Category.HEART_RATE, gatt_ids.HEART_RATE_MEASUREMENT, tuple(values), status=tuple(status))


def _plx_status(r: Reader, measurement_status: bool, device_status: bool) -> list[str]:
    names: list[str] = []
    if measurement_status:
        names += bit_names(r.uint(2, "measurement status"), PLX_MEASUREMENT_STATUS_BITS)
    if device_status:
        names += bit_names(r.uint(3, "device and sensor status"), PLX_DEVICE_STATUS_BITS)
    return names


def _plx_values(spo2: Number, pulse: Number) -> list[VitalValue]:
    return [vital("spo2", spo2), vital("spo2_pulse", pulse)]


def decode_plx_spot_check(data: bytes) -> Measurement:
    """flags u8; SpO2, PR SFLOAT; [Date Time]; [measurement status u16]; [device/sensor status u24]; [PAI SFLOAT].

    Flag bit 4 (device clock not set): the time stamp is dropped and ``device_clock_not_set`` is a status.
    """
    r = Reader(data, "PLX spot-check measurement")
    flags = r.uint(1, "flags")
    check_reserved_flags(flags, 0x1F, r.what)
    values = _plx_values(r.sfloat("SpO2"), r.sfloat("pulse rate"))
    status: list[str] = []
    device_time = None
    if flags & 0x01:
        device_time, bad = r.date_time("time stamp")
        if bad:
            status.append(BAD_TIME)
    status += _plx_status(r, bool(flags & 0x02), bool(flags & 0x04))
    if flags & 0x08:
        values.append(vital("perfusion_index", r.sfloat("pulse amplitude index")))
    if flags & 0x10:
        device_time = None
        status.append(PLX_CLOCK_NOT_SET)
    return Measurement(Category.SPO2, gatt_ids.PLX_SPOT_CHECK_MEASUREMENT, tuple(values), device_time, tuple(status))


def decode_plx_continuous(data: bytes) -> Measurement:
    """flags u8; SpO2, PR SFLOAT (normal); [fast pair]; [slow pair]; [status u16]; [device/sensor status u24]; [PAI].

    The fast and slow averages are read past (the vocabulary has one SpO2 and one pulse rate).
    """
    r = Reader(data, "PLX continuous measurement")
    flags = r.uint(1, "flags")
    check_reserved_flags(flags, 0x1F, r.what)
    values = _plx_values(r.sfloat("SpO2"), r.sfloat("pulse rate"))
    if flags & 0x01:
        r.take(4, "SpO2PR-fast")
    if flags & 0x02:
        r.take(4, "SpO2PR-slow")
    status = _plx_status(r, bool(flags & 0x04), bool(flags & 0x08))
    if flags & 0x10:
        values.append(vital("perfusion_index", r.sfloat("pulse amplitude index")))
    return Measurement(Category.SPO2, gatt_ids.PLX_CONTINUOUS_MEASUREMENT, tuple(values), status=tuple(status))
