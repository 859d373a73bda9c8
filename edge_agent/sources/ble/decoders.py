"""Decode the characteristic values of the Bluetooth health profiles into Measurements.

``decode(characteristic, data, model=, context=)`` is the one entry point for measurements;
it raises :class:`DecodeError` and nothing else (a bug in a decoder surfaces as code
``internal``, which the fuzz tests assert never happens). The profile decoders live in
``decode_cardio.py`` (BP, HR, PLX), ``decode_body.py`` (temperature, weight), ``decode_glucose.py``
(glucose, context, RACP) and ``decode_time.py`` (Current Time); this module re-exports them.

Choices, the same for every characteristic:

- **Trailing bytes** after the last field the flags announce are ignored (later versions of the
  profiles append fields; the values before them are good). A lone byte after HR RR intervals too.
- **Reserved flag bits** are an error (``reserved_flags``): the layout after them is unknown.
- **Too short** for what the flags announce: ``too_short``.
- **Special values** (NaN, NRes, +/-INF, reserved) are values with ``value=None`` and the PHD code.
- **Time**: year, month or day 0 = unknown -> ``device_time=None``; an impossible date or time
  (month 13, 25:00, 30 February) -> ``device_time=None`` and ``bad_time`` in ``status``.
- **Reserved codes** in descriptive bytes (temperature type, glucose sample/location, context meal)
  are left out of ``text``; a user id 255 ("unknown user") is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_agent.sources.ble import gatt_ids
from edge_agent.sources.ble.decode_body import WeightResolution, decode_temperature, decode_weight, \
    decode_weight_feature
from edge_agent.sources.ble.decode_cardio import decode_blood_pressure, decode_heart_rate, decode_plx_continuous, \
    decode_plx_spot_check
from edge_agent.sources.ble.decode_common import BAD_TIME
from edge_agent.sources.ble.decode_glucose import GlucoseContext, RacpRequest, RacpResponse, decode_glucose, \
    decode_glucose_context, decode_glucose_context_full, decode_racp, decode_racp_request, encode_racp_abort, \
    encode_racp_report, encode_racp_report_number, glucose_context_follows, with_context
from edge_agent.sources.ble.decode_time import CurrentTime, decode_current_time, encode_current_time
from edge_agent.sources.ble.measurement import DecodeError, Measurement

if TYPE_CHECKING:
    from edge_agent.sources.ble.models import ModelOverride

__all__ = [
    "BAD_TIME", "CurrentTime", "DecodeContext", "DecodeError", "GlucoseContext", "MEASUREMENT_CHARACTERISTICS",
    "Measurement", "RacpRequest", "RacpResponse", "WeightResolution", "decode", "decode_current_time",
    "decode_glucose_context", "decode_glucose_context_full", "decode_racp", "decode_racp_request",
    "decode_weight_feature", "encode_current_time", "encode_racp_abort", "encode_racp_report",
    "encode_racp_report_number", "glucose_context_follows", "with_context",
]


@dataclass
class DecodeContext:
    """What a session learned from the device before its measurements arrive."""

    weight_resolution: WeightResolution | None = None     # from 0x2A9E


MEASUREMENT_CHARACTERISTICS = (
    gatt_ids.BLOOD_PRESSURE_MEASUREMENT, gatt_ids.TEMPERATURE_MEASUREMENT, gatt_ids.PLX_SPOT_CHECK_MEASUREMENT,
    gatt_ids.PLX_CONTINUOUS_MEASUREMENT, gatt_ids.WEIGHT_MEASUREMENT, gatt_ids.GLUCOSE_MEASUREMENT,
    gatt_ids.HEART_RATE_MEASUREMENT,
)


def decode(characteristic: int, data: bytes, *, model: "ModelOverride | None" = None,
           context: DecodeContext | None = None) -> Measurement:
    """The Measurement in ``data`` (a value of ``characteristic``); DecodeError if it cannot be read."""
    try:
        return _decode(characteristic, bytes(data), model, context)
    except DecodeError:
        raise
    except Exception as exc:    # a decoder bug must not stop a session; the fuzz tests keep this empty
        raise DecodeError("internal", f"{gatt_ids.name_of(characteristic)}: {type(exc).__name__}") from exc


def _decode(characteristic: int, data: bytes, model, context: DecodeContext | None) -> Measurement:
    if characteristic == gatt_ids.BLOOD_PRESSURE_MEASUREMENT:
        return decode_blood_pressure(data)
    if characteristic == gatt_ids.TEMPERATURE_MEASUREMENT:
        return decode_temperature(data, ieee754=getattr(model, "float_format", "ieee11073") == "ieee754")
    if characteristic == gatt_ids.PLX_SPOT_CHECK_MEASUREMENT:
        return decode_plx_spot_check(data)
    if characteristic == gatt_ids.PLX_CONTINUOUS_MEASUREMENT:
        return decode_plx_continuous(data)
    if characteristic == gatt_ids.WEIGHT_MEASUREMENT:
        return decode_weight(data, context.weight_resolution if context else None)
    if characteristic == gatt_ids.GLUCOSE_MEASUREMENT:
        return decode_glucose(data)
    if characteristic == gatt_ids.HEART_RATE_MEASUREMENT:
        return decode_heart_rate(data)
    raise DecodeError("unknown_characteristic", f"{gatt_ids.name_of(characteristic)} carries no measurement")
