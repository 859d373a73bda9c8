"""Glucose Measurement (0x2A18), Glucose Measurement Context (0x2A34) and the Record Access
Control Point (0x2A52) through which stored glucose records are pulled."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from edge_agent.sources.ble import gatt_ids
from edge_agent.sources.ble.decode_common import BAD_TIME, MG_DL_PER_KG_L, MG_DL_PER_MOL_L, Reader, bit_names, \
    check_reserved_flags, vital
from edge_agent.sources.ble.ieee11073 import Number
from edge_agent.sources.ble.measurement import DecodeError, Measurement
from hinode.vitals import TEXT_FIELDS, Category

GLUCOSE_SAMPLES = {1: "capillary_whole_blood", 2: "capillary_plasma", 3: "venous_whole_blood", 4: "venous_plasma",
                   5: "arterial_whole_blood", 6: "arterial_plasma", 7: "undetermined_whole_blood",
                   8: "undetermined_plasma", 9: "isf", 10: "control_solution"}
GLUCOSE_LOCATIONS = {1: "finger", 2: "alternate_site", 3: "earlobe", 4: "control_solution"}   # 15 = not available
GLUCOSE_STATUS_BITS = {
    0: "battery_low", 1: "sensor_malfunction", 2: "sample_size_insufficient", 3: "strip_insertion_error",
    4: "strip_type_incorrect", 5: "result_too_high", 6: "result_too_low", 7: "sensor_temperature_too_high",
    8: "sensor_temperature_too_low", 9: "sensor_read_interrupted", 10: "general_device_fault", 11: "time_fault",
}
MEALS = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS = {1: "self", 2: "health_care_professional", 3: "lab_test"}
HEALTH = {1: "minor_health_issues", 2: "major_health_issues", 3: "during_menses", 4: "under_stress",
          5: "no_health_issues"}
CARBOHYDRATES = {1: "breakfast", 2: "lunch", 3: "dinner", 4: "snack", 5: "drink", 6: "supper", 7: "brunch"}
MEDICATIONS = {1: "rapid_acting_insulin", 2: "short_acting_insulin", 3: "intermediate_acting_insulin",
               4: "long_acting_insulin", 5: "pre_mixed_insulin"}


def decode_glucose(data: bytes) -> Measurement:
    """flags u8; sequence u16; base Date Time; [time offset s16 min]; [concentration SFLOAT + type/location u8];
    [sensor status u16]. Concentration kg/L (flag b2 = 0) or mol/L, converted to mg/dL.

    ``device_time`` is base time + offset. A record without a concentration has no values.
    """
    r = Reader(data, "glucose measurement")
    flags = r.uint(1, "flags")
    check_reserved_flags(flags, 0x1F, r.what)
    sequence = r.uint(2, "sequence number")
    device_time, bad_time = r.date_time("base time")
    if flags & 0x01:
        offset = r.sint(2, "time offset")
        if device_time is not None:
            try:
                device_time = device_time + timedelta(minutes=offset)
            except OverflowError:
                device_time, bad_time = None, True
    values = []
    text: dict[str, str] = {}
    if flags & 0x02:
        factor = MG_DL_PER_MOL_L if flags & 0x04 else MG_DL_PER_KG_L
        values.append(vital("glucose", r.sfloat("concentration"), factor))
        type_location = r.uint(1, "type and sample location")
        if (sample := GLUCOSE_SAMPLES.get(type_location & 0x0F)) is not None:
            text["glucose_sample"] = sample
        if (location := GLUCOSE_LOCATIONS.get(type_location >> 4)) is not None:
            text["glucose_location"] = location
    status = bit_names(r.uint(2, "sensor status annunciation"), GLUCOSE_STATUS_BITS) if flags & 0x08 else []
    if bad_time:
        status.append(BAD_TIME)
    return Measurement(Category.GLUCOSE, gatt_ids.GLUCOSE_MEASUREMENT, tuple(values), device_time, tuple(status),
                       text, sequence=sequence)


def glucose_context_follows(data: bytes) -> bool:
    """Whether a glucose measurement announces a 0x2A34 context with the same sequence number."""
    return len(data) >= 1 and bool(data[0] & 0x10)


@dataclass(frozen=True)
class GlucoseContext:
    sequence: int
    meal: str | None = None
    tester: str | None = None
    health: str | None = None
    carbohydrate: str | None = None
    carbohydrate_g: float | None = None          # the device sends kg; grams read better
    exercise_duration_s: int | None = None       # 65535 = overrun
    exercise_intensity_pct: int | None = None
    medication: str | None = None
    medication_mg: float | None = None           # from kg (flag b5 = 0)
    medication_ml: float | None = None           # from litres (flag b5 = 1)
    hba1c_pct: float | None = None

    def text(self) -> dict[str, str]:
        """The stored text fields (hinode.vitals.TEXT_FIELDS) this context gives a measurement."""
        out = {"glucose_meal": self.meal} if self.meal else {}
        return {k: v for k, v in out.items() if k in TEXT_FIELDS}


def _number(n: Number, factor: float = 1.0) -> float | None:
    return None if n.value is None else round(n.value * factor, 6)


def decode_glucose_context_full(data: bytes) -> GlucoseContext:
    """flags u8; sequence u16; [extended flags u8]; [carbohydrate id u8 + SFLOAT kg]; [meal u8];
    [tester (low nibble) / health (high nibble) u8]; [exercise duration u16 s + intensity u8 %];
    [medication id u8 + SFLOAT kg or L]; [HbA1c SFLOAT %]. Unknown codes are left out.

    Tester in the low nibble, health in the high one (as Nordic's parser). The amounts follow the
    Glucose Service 1.0 units (carbohydrate kg, medication kg or litres); some parsers (Nordic's)
    read them as g and mg/ml. Only the meal is stored (hinode.vitals.TEXT_FIELDS), so the rest is
    informative.
    """
    r = Reader(data, "glucose measurement context")
    flags = r.uint(1, "flags")
    sequence = r.uint(2, "sequence number")
    values: dict[str, object] = {}
    if flags & 0x80:
        r.uint(1, "extended flags")
    if flags & 0x01:
        values["carbohydrate"] = CARBOHYDRATES.get(r.uint(1, "carbohydrate id"))
        values["carbohydrate_g"] = _number(r.sfloat("carbohydrate"), 1000.0)
    if flags & 0x02:
        values["meal"] = MEALS.get(r.uint(1, "meal"))
    if flags & 0x04:
        tester_health = r.uint(1, "tester and health")
        values["tester"] = TESTERS.get(tester_health & 0x0F)
        values["health"] = HEALTH.get(tester_health >> 4)
    if flags & 0x08:
        values["exercise_duration_s"] = r.uint(2, "exercise duration")
        values["exercise_intensity_pct"] = r.uint(1, "exercise intensity")
    if flags & 0x10:
        values["medication"] = MEDICATIONS.get(r.uint(1, "medication id"))
        amount = r.sfloat("medication")
        if flags & 0x20:
            values["medication_ml"] = _number(amount, 1000.0)
        else:
            values["medication_mg"] = _number(amount, 1_000_000.0)
    if flags & 0x40:
        values["hba1c_pct"] = _number(r.sfloat("HbA1c"))
    return GlucoseContext(sequence, **values)


def decode_glucose_context(data: bytes) -> tuple[int, dict[str, str]]:
    """(sequence, text fields for the measurement with that sequence, e.g. {"glucose_meal": "fasting"})."""
    context = decode_glucose_context_full(data)
    return context.sequence, context.text()


def with_context(m: Measurement, text: dict[str, str]) -> Measurement:
    """The measurement with the context's text fields added."""
    return dataclasses.replace(m, text={**m.text, **text})


# ------------------------------------------------------------------ RACP

RACP_REPORT_RECORDS = 0x01
RACP_DELETE_RECORDS = 0x02
RACP_ABORT = 0x03
RACP_REPORT_NUMBER = 0x04
RACP_NUMBER_RESPONSE = 0x05
RACP_RESPONSE_CODE = 0x06

RACP_OPERATOR_ALL = 0x01
RACP_OPERATOR_GREATER_OR_EQUAL = 0x03
RACP_FILTER_SEQUENCE = 0x01

RACP_RESPONSES = {1: "success", 2: "op_code_not_supported", 3: "invalid_operator", 4: "operator_not_supported",
                  5: "invalid_operand", 6: "no_records_found", 7: "abort_unsuccessful", 8: "procedure_not_completed",
                  9: "operand_not_supported"}


@dataclass(frozen=True)
class RacpResponse:
    op_code: int                          # 0x05 number of records, 0x06 response code
    request_op_code: int | None = None    # for 0x06: the request it answers
    response_code: int | None = None
    response: str | None = None           # name of response_code: success, no_records_found, ...
    number_of_records: int | None = None  # for 0x05

    @property
    def done(self) -> bool:
        """The procedure ended (records sent, none found, or an error): no more records follow."""
        return self.op_code in (RACP_RESPONSE_CODE, RACP_NUMBER_RESPONSE)

    @property
    def ok(self) -> bool:
        return self.op_code == RACP_NUMBER_RESPONSE or self.response in ("success", "no_records_found")


@dataclass(frozen=True)
class RacpRequest:
    op_code: int
    operator: int
    min_sequence: int | None = None       # for operator >= (filter: sequence number)


def decode_racp(data: bytes) -> RacpResponse:
    """A RACP indication from the device: ``05 00 <count>`` or ``06 00 <request op> <code>``.

    The count is u16 for glucose meters; u8 and u32 are taken too (other profiles' RACP, as
    Nordic's parser does). A response's operator must be 0 (null).
    """
    r = Reader(data, "record access control point")
    op_code = r.uint(1, "op code")
    operator = r.uint(1, "operator")
    if op_code in (RACP_NUMBER_RESPONSE, RACP_RESPONSE_CODE) and operator != 0:
        raise DecodeError("bad_value", f"record access control point: a response's operator is 0 (got {operator})")
    if op_code == RACP_NUMBER_RESPONSE:
        if r.remaining not in (1, 2, 4):
            raise DecodeError("too_short" if r.remaining == 0 else "bad_value",
                              f"record access control point: a count of {r.remaining} bytes (expected 1, 2 or 4)")
        return RacpResponse(op_code, number_of_records=r.uint(r.remaining, "number of records"))
    if op_code == RACP_RESPONSE_CODE:
        request, code = r.uint(1, "request op code"), r.uint(1, "response code")
        return RacpResponse(op_code, request, code, RACP_RESPONSES.get(code, f"reserved_{code}"))
    raise DecodeError("bad_value", f"record access control point: op code 0x{op_code:02X} is not a response")


def decode_racp_request(data: bytes) -> RacpRequest:
    """A RACP request as a device receives it (for the virtual glucometer)."""
    r = Reader(data, "record access control point request")
    op_code, operator = r.uint(1, "op code"), r.uint(1, "operator")
    if operator == RACP_OPERATOR_GREATER_OR_EQUAL:
        if r.uint(1, "filter type") != RACP_FILTER_SEQUENCE:
            raise DecodeError("bad_value", "record access control point request: only sequence filters are supported")
        return RacpRequest(op_code, operator, r.uint(2, "sequence"))
    return RacpRequest(op_code, operator)


def encode_racp_report(after_sequence: int | None) -> bytes:
    """Report stored records: all (``01 01``) or those with a sequence number above ``after_sequence``
    (``01 03 01 <u16 after_sequence + 1>``: the operator is ">="). After 65535 nothing can be asked
    for by sequence: all records are asked for (the caller drops those it already has)."""
    return _encode_racp(RACP_REPORT_RECORDS, after_sequence)


def encode_racp_report_number(after_sequence: int | None) -> bytes:
    """Report the number of stored records (all, or above ``after_sequence``)."""
    return _encode_racp(RACP_REPORT_NUMBER, after_sequence)


def encode_racp_abort() -> bytes:
    return bytes([RACP_ABORT, 0x00])


def _encode_racp(op_code: int, after_sequence: int | None) -> bytes:
    if after_sequence is None or after_sequence >= 0xFFFF:
        return bytes([op_code, RACP_OPERATOR_ALL])
    if after_sequence < 0:
        raise ValueError(f"after_sequence must be a sequence number 0..65535 (got {after_sequence})")
    return bytes([op_code, RACP_OPERATOR_GREATER_OR_EQUAL, RACP_FILTER_SEQUENCE]) + \
        (after_sequence + 1).to_bytes(2, "little")
