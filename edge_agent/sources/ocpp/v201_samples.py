"""OCPP 2.0.1 meter values as :class:`Sample` s, and the energy register a transaction starts
and ends with.

Values arrive as JSON numbers with an optional ``unitOfMeasure {unit, multiplier}``; the
multiplier (a power of ten) is folded into the value, the unit is kept as sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timezone

from ocpp.exceptions import FormatViolationError

from edge_agent.sources.ocpp.model import Sample, plausible_ts

ENERGY_REGISTER = "Energy.Active.Import.Register"

# The 2.0.1 schema defaults the unit to "Wh" only for energy measurands; for the others a
# charger that omits it is taken to mean the measurand's base unit.
_DEFAULT_UNIT_BY_PREFIX = (
    ("Energy.Reactive", "varh"),
    ("Energy", "Wh"),
    ("Power.Reactive", "var"),
    ("Power.Factor", ""),
    ("Power", "W"),
    ("Current", "A"),
    ("Voltage", "V"),
    ("Frequency", "Hz"),
    ("SoC", "Percent"),
    ("Temperature", "Celsius"),
)

_WH_PER_UNIT = {"Wh": 1.0, "kWh": 1000.0}


def timestamp_ms(text: str) -> int:
    """Epoch milliseconds of an OCPP date-time ("2026-11-29T08:00:00Z", offsets allowed)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise FormatViolationError(details={"cause": f"timestamp {text!r} is not an ISO 8601 date-time"})
    if moment.tzinfo is None:       # OCPP times are UTC; a charger that drops the zone still means UTC
        moment = moment.replace(tzinfo=timezone.utc)
    arrival = time.time_ns() // 1_000_000
    return plausible_ts(round(moment.timestamp() * 1000), arrival)


def default_unit(measurand: str) -> str:
    for prefix, unit in _DEFAULT_UNIT_BY_PREFIX:
        if measurand.startswith(prefix):
            return unit
    return ""


def _scaled(value: float, multiplier: int) -> float:
    # dividing by 10**n instead of multiplying by 10**-n keeps 2301 × 10^-1 at exactly 230.1
    return value * 10 ** multiplier if multiplier >= 0 else value / 10 ** -multiplier


def samples_from(meter_values: Iterable[dict] | None) -> list[Sample]:
    """The samples of a ``meterValue`` list (snake_case keys, as the library hands them over)."""
    samples: list[Sample] = []
    for meter_value in meter_values or ():
        ts_ms = timestamp_ms(meter_value["timestamp"])
        for sampled in meter_value["sampled_value"]:
            measurand = sampled.get("measurand") or ENERGY_REGISTER
            unit_of_measure = sampled.get("unit_of_measure") or {}
            samples.append(Sample(
                ts_ms=ts_ms,
                measurand=measurand,
                value=_scaled(float(sampled["value"]), int(unit_of_measure.get("multiplier") or 0)),
                unit=unit_of_measure.get("unit") or default_unit(measurand),
                phase=sampled.get("phase") or "",
                context=sampled.get("context") or "",
                location=sampled.get("location") or "",
            ))
    return samples


def energy_register_wh(samples: list[Sample], context: str, latest: bool) -> float | None:
    """The station's import register in Wh: the sample with ``context`` (``Transaction.Begin`` /
    ``Transaction.End``) if there is one, else the earliest (``latest=False``) or latest one.
    Per-phase registers and registers at the EV or inlet do not count."""
    registers = [s for s in samples
                 if s.measurand == ENERGY_REGISTER and not s.phase and s.location in ("", "Outlet")
                 and s.unit in _WH_PER_UNIT]
    if not registers:
        return None
    in_context = [s for s in registers if s.context == context]
    ordered = sorted(in_context or registers, key=lambda s: s.ts_ms)
    chosen = ordered[-1] if latest else ordered[0]
    return chosen.value * _WH_PER_UNIT[chosen.unit]
