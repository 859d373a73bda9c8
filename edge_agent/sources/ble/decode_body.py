"""Temperature Measurement (0x2A1C), Weight Measurement (0x2A9D) and Weight Scale Feature (0x2A9E)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.sources.ble import gatt_ids
from edge_agent.sources.ble.decode_common import BAD_TIME, CM_PER_IN, KG_PER_LB, Reader, check_reserved_flags, \
    known_user, vital, vital_from_steps
from edge_agent.sources.ble.measurement import DecodeError, Measurement, VitalValue
from hinode.vitals import Category

TEMPERATURE_SITES = {1: "armpit", 2: "body", 3: "ear", 4: "finger", 5: "gi_tract", 6: "mouth", 7: "rectum",
                     8: "toe", 9: "tympanum"}

# Weight Scale Feature resolution codes -> step (SI kg, imperial lb) and (SI m, imperial in).
WEIGHT_STEPS = {0: (0.005, 0.01), 1: (0.5, 1.0), 2: (0.2, 0.5), 3: (0.1, 0.2), 4: (0.05, 0.1), 5: (0.02, 0.05),
                6: (0.01, 0.02), 7: (0.005, 0.01)}
HEIGHT_STEPS = {0: (0.001, 0.1), 1: (0.01, 1.0), 2: (0.005, 0.5), 3: (0.001, 0.1)}
WEIGHT_UNSUCCESSFUL = 0xFFFF


@dataclass(frozen=True)
class WeightResolution:
    """What the Weight Scale Feature (0x2A9E) says; the defaults are the spec's "not specified"."""

    weight_kg: float = 0.005       # step of the raw weight in SI units
    weight_lb: float = 0.01        # ... in imperial units
    height_m: float = 0.001
    height_in: float = 0.1
    timestamp_supported: bool = False
    multiple_users: bool = False
    bmi_supported: bool = False


def decode_weight_feature(data: bytes) -> WeightResolution:
    """u32: b0 time stamp, b1 multiple users, b2 BMI, b3-6 weight resolution, b7-9 height resolution."""
    r = Reader(data, "weight scale feature")
    bits = r.uint(4, "features")
    weight_code, height_code = bits >> 3 & 0xF, bits >> 7 & 0x7
    if weight_code not in WEIGHT_STEPS or height_code not in HEIGHT_STEPS:
        raise DecodeError("bad_value", f"weight scale feature: reserved resolution code "
                                       f"(weight {weight_code}, height {height_code})")
    (weight_kg, weight_lb), (height_m, height_in) = WEIGHT_STEPS[weight_code], HEIGHT_STEPS[height_code]
    return WeightResolution(weight_kg, weight_lb, height_m, height_in, bool(bits & 1), bool(bits & 2),
                            bool(bits & 4))


def decode_temperature(data: bytes, *, ieee754: bool = False) -> Measurement:
    """flags u8; temperature FLOAT (or IEEE-754 float32 for ``ieee754`` models); [Date Time]; [type u8].

    A temperature type code outside 1-9 is left out (no ``temp_site``), not an error.
    """
    r = Reader(data, "temperature measurement")
    flags = r.uint(1, "flags")
    check_reserved_flags(flags, 0x07, r.what)
    number = r.float("temperature", ieee754)
    value = vital("body_temp", number, 5 / 9, -32.0) if flags & 0x01 else vital("body_temp", number)
    status: list[str] = []
    device_time = None
    if flags & 0x02:
        device_time, bad = r.date_time("time stamp")
        if bad:
            status.append(BAD_TIME)
    text = {}
    if flags & 0x04 and (site := TEMPERATURE_SITES.get(r.uint(1, "temperature type"))) is not None:
        text["temp_site"] = site
    return Measurement(Category.TEMPERATURE, gatt_ids.TEMPERATURE_MEASUREMENT, (value,), device_time,
                       tuple(status), text)


def decode_weight(data: bytes, resolution: WeightResolution | None = None) -> Measurement:
    """flags u8; weight u16; [Date Time]; [user u8]; [BMI u16 x0.1, height u16].

    Steps come from the Weight Scale Feature (``resolution``), else the spec's defaults (5 g, 1 mm).
    Weight 0xFFFF is "measurement unsuccessful": a weight with absent code ``error``.
    """
    res = resolution or WeightResolution()
    r = Reader(data, "weight measurement")
    flags = r.uint(1, "flags")
    check_reserved_flags(flags, 0x0F, r.what)
    imperial = bool(flags & 0x01)
    raw_weight = r.uint(2, "weight")
    if raw_weight == WEIGHT_UNSUCCESSFUL:
        values = [VitalValue("weight", None, "error")]
    elif imperial:
        values = [vital_from_steps("weight", raw_weight, res.weight_lb, KG_PER_LB)]
    else:
        values = [vital_from_steps("weight", raw_weight, res.weight_kg)]
    status: list[str] = []
    device_time = None
    if flags & 0x02:
        device_time, bad = r.date_time("time stamp")
        if bad:
            status.append(BAD_TIME)
    user_id = known_user(r.uint(1, "user id")) if flags & 0x04 else None
    if flags & 0x08:
        values.append(vital_from_steps("bmi", r.uint(2, "BMI"), 0.1))
        raw_height = r.uint(2, "height")
        if imperial:
            values.append(vital_from_steps("height", raw_height, res.height_in, CM_PER_IN))
        else:
            values.append(vital_from_steps("height", raw_height, res.height_m, 100.0))
    return Measurement(Category.WEIGHT, gatt_ids.WEIGHT_MEASUREMENT, tuple(values), device_time, tuple(status),
                       user_id=user_id)
