"""What a BLE health device measured, in the vocabulary of ``hinode/vitals.py``.

A decoder (``decoders.py``) turns a characteristic value into a :class:`Measurement`: values in
the canonical UCUM units, the device clock's time, status flag names, descriptive text fields.
The VisitBook stores it as JSON (``to_json``/``from_json``) until the nurse confirms it; the
source then turns it into contract readings with :func:`to_readings`.

A special value (IEEE-11073 NaN, NRes, +INF, -INF, reserved) is never a number: the
:class:`VitalValue` has ``value=None`` and ``absent`` set to the HL7 PHD code, and becomes a
reading with quality ``bad`` plus a ``<metric>_absent`` string reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edge_agent.sources.base import reading
from hinode.contract import Quality, Reading
from hinode.vitals import ABSENT_CODES, ABSENT_SUFFIX, STATUS_SUFFIX, TEXT_FIELDS, TIME_SOURCE_FIELD, \
    VISIT_FIELD, VITAL_METRICS, Category


class DecodeError(ValueError):
    """A characteristic value that cannot be decoded. ``code`` is short and stable (it becomes an
    error counter): ``too_short``, ``reserved_flags``, ``bad_value``, ``unknown_characteristic``, and
    ``internal`` for a decoder bug (never seen in the fuzz tests)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VitalValue:
    metric: str                  # a key of hinode.vitals.VITAL_METRICS
    value: float | None          # in the metric's canonical unit; None for a special value
    absent: str | None = None    # HL7 PHD code (hinode.vitals.ABSENT_CODES) when value is None
    decimals: int | None = None  # decimals worth showing (from the device's exponent/resolution)

    def __post_init__(self):
        if self.metric not in VITAL_METRICS:
            raise ValueError(f"unknown vital metric {self.metric!r}")
        if (self.value is None) == (self.absent is None):
            raise ValueError(f"{self.metric}: give either a value or an absent code, not both or neither")
        if self.absent is not None and self.absent not in ABSENT_CODES:
            raise ValueError(f"{self.metric}: absent code {self.absent!r} is not one of {ABSENT_CODES}")

    @property
    def unit(self) -> str:
        return VITAL_METRICS[self.metric].unit

    def formatted(self) -> str:
        """The number as the device meant it (``37.60``), or ``—`` for a special value."""
        if self.value is None:
            return "—"
        if self.decimals is not None and self.decimals >= 0:
            return f"{self.value:.{self.decimals}f}"
        return f"{self.value:g}"


@dataclass(frozen=True)
class Measurement:
    category: Category
    characteristic: int                    # 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F, 0x2A9D, 0x2A18, 0x2A37
    values: tuple[VitalValue, ...]
    device_time: datetime | None = None    # naive, the device clock (local time); None if absent or unknown
    status: tuple[str, ...] = ()           # names of the status flags set, e.g. ("body_movement", "irregular_pulse")
    text: dict[str, str] = field(default_factory=dict)   # temp_site, glucose_sample, glucose_location, glucose_meal
    user_id: int | None = None
    sequence: int | None = None            # glucose record sequence number

    def __post_init__(self):
        object.__setattr__(self, "category", Category(self.category))
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "status", tuple(self.status))

    def value_of(self, metric: str) -> VitalValue | None:
        return next((v for v in self.values if v.metric == metric), None)

    def to_json(self) -> dict:
        return {
            "category": self.category.value,
            "characteristic": self.characteristic,
            "values": [{"metric": v.metric, "value": v.value, "absent": v.absent, "decimals": v.decimals}
                       for v in self.values],
            "device_time": self.device_time.isoformat() if self.device_time else None,
            "status": list(self.status),
            "text": dict(self.text),
            "user_id": self.user_id,
            "sequence": self.sequence,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Measurement":
        return cls(
            category=Category(data["category"]),
            characteristic=int(data["characteristic"]),
            values=tuple(VitalValue(v["metric"], None if v.get("value") is None else float(v["value"]),
                                    v.get("absent"), v.get("decimals")) for v in data.get("values", ())),
            device_time=datetime.fromisoformat(data["device_time"]) if data.get("device_time") else None,
            status=tuple(data.get("status", ())),
            text=dict(data.get("text") or {}),
            user_id=data.get("user_id"),
            sequence=data.get("sequence"),
        )

    def summary(self) -> str:
        """Short English text for the nurse's page, e.g. ``138/88 mmHg (MAP 120), pulse 60 /min``."""
        return _summary(self, _EN)

    def summary_ja(self) -> str:
        return _summary(self, _JA)


def to_readings(m: Measurement, ts_ms: int, *, visit_id: str, time_source: str) -> list[Reading]:
    """Contract readings of one confirmed measurement, all at ``ts_ms``.

    One reading per value (a special value: quality bad, value None, plus ``<metric>_absent``),
    ``<category>_status`` (comma-separated names, "" when none), the text fields, ``visit_id``
    and ``time_source``.
    """
    out: list[Reading] = []
    for v in m.values:
        if v.value is None:
            out.append(reading(ts_ms, v.metric, None, v.unit, Quality.BAD))
            out.append(reading(ts_ms, v.metric + ABSENT_SUFFIX, v.absent))
        else:
            out.append(reading(ts_ms, v.metric, float(v.value), v.unit))
    out.append(reading(ts_ms, m.category.value + STATUS_SUFFIX, ",".join(m.status)))
    for name, text in sorted(m.text.items()):
        if name in TEXT_FIELDS:
            out.append(reading(ts_ms, name, text))
    out.append(reading(ts_ms, VISIT_FIELD, visit_id))
    out.append(reading(ts_ms, TIME_SOURCE_FIELD, time_source))
    return out


# ------------------------------------------------------------------ summaries

_EN = {
    "pulse": "pulse", "map": "MAP", "pi": "PI", "bmi": "BMI", "height": "height", "rr": "RR",
    "energy": "energy", "none": "no value", "sep": ", ", "unit_min": "/min", "ja": False,
    "absent": {"not-a-number": "no value (NaN)", "error": "measurement failed", "positive-infinity": "above range",
               "negative-infinity": "below range"},
}
_JA = {
    "pulse": "脈拍", "map": "平均", "pi": "PI", "bmi": "BMI", "height": "身長", "rr": "RR",
    "energy": "消費エネルギー", "none": "値なし", "sep": "、", "unit_min": "/分", "ja": True,
    "absent": {"not-a-number": "値なし (NaN)", "error": "測定失敗", "positive-infinity": "上限超過",
               "negative-infinity": "下限未満"},
}
_UNIT_TEXT = {"mm[Hg]": "mmHg", "Cel": "°C", "kg/m2": "kg/m²", "/min": "/min"}


def _num(m: Measurement, metric: str, unit: bool = False, words: dict | None = None) -> str | None:
    v = m.value_of(metric)
    if v is None:
        return None
    text = v.formatted()
    if unit and v.value is not None:
        unit_text = _UNIT_TEXT.get(v.unit, v.unit)
        if unit_text == "/min" and words:
            unit_text = words["unit_min"]
        text += unit_text if unit_text in ("%", "°C") else f" {unit_text}"
    return text


def _metric_name(metric: str, w: dict) -> str:
    info = VITAL_METRICS[metric]
    return info.display_ja if w["ja"] else info.display


def _summary(m: Measurement, w: dict) -> str:
    parts: list[str] = []
    c = m.category
    if c is Category.BLOOD_PRESSURE:
        sys_, dia, mean = _num(m, "systolic"), _num(m, "diastolic"), _num(m, "mean_arterial")
        if sys_ is not None:
            parts.append(f"{sys_}/{dia or '—'} mmHg ({w['map']} {mean or '—'})")
        if (pulse := _num(m, "pulse", True, w)) is not None:
            parts.append(f"{w['pulse']} {pulse}")
    elif c is Category.SPO2:
        if (spo2 := _num(m, "spo2", True, w)) is not None:
            parts.append(f"SpO2 {spo2}")
        if (pulse := _num(m, "spo2_pulse", True, w)) is not None:
            parts.append(f"{w['pulse']} {pulse}")
        if (pi := _num(m, "perfusion_index", True, w)) is not None:
            parts.append(f"{w['pi']} {pi}")
    elif c is Category.WEIGHT:
        if (weight := _num(m, "weight", True, w)) is not None:
            parts.append(weight)
        if (bmi := _num(m, "bmi")) is not None:
            parts.append(f"{w['bmi']} {bmi}")
        if (height := _num(m, "height", True, w)) is not None:
            parts.append(f"{w['height']} {height}")
    elif c is Category.HEART_RATE:
        if (hr := _num(m, "heart_rate", True, w)) is not None:
            parts.append(hr)
        if (rr := _num(m, "rr_interval", True, w)) is not None:
            parts.append(f"{w['rr']} {rr}")
        if (ee := _num(m, "energy_expended", True, w)) is not None:
            parts.append(f"{w['energy']} {ee}")
    else:  # temperature, glucose: one number
        for v in m.values:
            parts.append(_num(m, v.metric, True, w))
    if not parts:
        parts.append(w["none"])
    absent = [f"{_metric_name(v.metric, w)}: {w['absent'].get(v.absent, v.absent)}"
              for v in m.values if v.value is None]
    extras = absent + [t.replace("_", " ") for t in m.text.values()] + [s.replace("_", " ") for s in m.status]
    text = w["sep"].join(parts)
    return f"{text} ({', '.join(extras)})" if extras else text
