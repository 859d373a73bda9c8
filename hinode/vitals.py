"""The vital-signs vocabulary shared by the nurse's gateway and the cloud.

One table says, for every metric a BLE health device produces: its category (what consent is
given for), its UCUM unit (what the gateway stores and FHIR exports) and its LOINC code. The
edge's decoders convert whatever the device sends (kPa, degF, imperial, mol/L) to these units; the
cloud's consent checks, alerts, FHIR export and boards read the same table. Nothing here names a
person: readings carry only a pseudonym (envelope ``meta['subject']``) and a visit id.

Extra fields a vitals envelope may carry next to the metrics (all with the measurement's ts):

- ``visit_id`` (string): the visit the nurse confirmed the reading in;
- ``<metric>_absent`` (string): the IEEE-11073 special value the device sent instead of a number
  (``not-a-number``, ``positive-infinity``, ``negative-infinity``, ``error``: the HL7 PHD
  dataAbsentReason codes); the metric itself is then a reading with quality ``bad`` and no value;
- ``<category>_status`` (string): the device's status flags, comma-separated names
  (``body_movement,irregular_pulse``), empty when none is set;
- ``time_source`` (string): ``device`` (the device's clock, set by the gateway over the Current Time
  Service or trusted by config) or ``gateway`` (the time the gateway received it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """What a consent covers: a care role sees a category or not."""

    BLOOD_PRESSURE = "blood_pressure"
    SPO2 = "spo2"
    TEMPERATURE = "temperature"
    WEIGHT = "weight"
    GLUCOSE = "glucose"
    HEART_RATE = "heart_rate"


@dataclass(frozen=True)
class VitalMetric:
    metric: str
    category: Category
    unit: str            # UCUM (http://unitsofmeasure.org)
    loinc: str           # "" where no LOINC code is exported on its own (a BP component carries its own)
    display: str         # English
    display_ja: str


VITAL_METRICS: dict[str, VitalMetric] = {m.metric: m for m in (
    VitalMetric("systolic", Category.BLOOD_PRESSURE, "mm[Hg]", "8480-6", "Systolic blood pressure", "収縮期血圧"),
    VitalMetric("diastolic", Category.BLOOD_PRESSURE, "mm[Hg]", "8462-4", "Diastolic blood pressure", "拡張期血圧"),
    VitalMetric("mean_arterial", Category.BLOOD_PRESSURE, "mm[Hg]", "8478-0", "Mean arterial pressure", "平均血圧"),
    VitalMetric("pulse", Category.BLOOD_PRESSURE, "/min", "8867-4", "Pulse rate", "脈拍"),
    VitalMetric("spo2", Category.SPO2, "%", "2708-6", "Oxygen saturation (SpO2)", "SpO2"),
    VitalMetric("spo2_pulse", Category.SPO2, "/min", "8867-4", "Pulse rate (oximeter)", "脈拍（パルスオキシメータ）"),
    VitalMetric("perfusion_index", Category.SPO2, "%", "61006-3", "Perfusion index", "灌流指標"),
    VitalMetric("body_temp", Category.TEMPERATURE, "Cel", "8310-5", "Body temperature", "体温"),
    VitalMetric("weight", Category.WEIGHT, "kg", "29463-7", "Body weight", "体重"),
    VitalMetric("bmi", Category.WEIGHT, "kg/m2", "39156-5", "Body mass index", "BMI"),
    VitalMetric("height", Category.WEIGHT, "cm", "8302-2", "Body height", "身長"),
    VitalMetric("glucose", Category.GLUCOSE, "mg/dL", "41653-7", "Glucose (glucometer)", "血糖値"),
    VitalMetric("heart_rate", Category.HEART_RATE, "/min", "8867-4", "Heart rate", "心拍数"),
    VitalMetric("rr_interval", Category.HEART_RATE, "s", "", "RR interval (mean of the notification)", "RR間隔"),
    VitalMetric("energy_expended", Category.HEART_RATE, "kJ", "", "Energy expended", "消費エネルギー"),
)}

# Descriptive string fields, by category (not numbers, but still personal).
TEXT_FIELDS: dict[str, Category] = {
    "temp_site": Category.TEMPERATURE,           # armpit, body, ear, finger, gi_tract, mouth, rectum, toe, tympanum
    "glucose_sample": Category.GLUCOSE,          # capillary_whole_blood, capillary_plasma, venous_..., isf, control_solution
    "glucose_location": Category.GLUCOSE,        # finger, alternate_site, earlobe, control_solution
    "glucose_meal": Category.GLUCOSE,            # from the context 0x2A34: preprandial, postprandial, fasting, casual, bedtime
}

VISIT_FIELD = "visit_id"
TIME_SOURCE_FIELD = "time_source"
ABSENT_SUFFIX = "_absent"
STATUS_SUFFIX = "_status"

# HL7 PHD dataAbsentReason codes for the IEEE-11073 special values.
ABSENT_CODES = ("not-a-number", "positive-infinity", "negative-infinity", "error")


def category_of(field: str) -> Category | None:
    """The category a stored field belongs to (a metric, its ``_absent`` twin, a status or text field)."""
    if field in VITAL_METRICS:
        return VITAL_METRICS[field].category
    if field in TEXT_FIELDS:
        return TEXT_FIELDS[field]
    if field.endswith(ABSENT_SUFFIX):
        return category_of(field[: -len(ABSENT_SUFFIX)])
    if field.endswith(STATUS_SUFFIX):
        try:
            return Category(field[: -len(STATUS_SUFFIX)])
        except ValueError:
            return None
    return None


def metrics_of(category: Category | str) -> list[str]:
    return [m.metric for m in VITAL_METRICS.values() if m.category == category]


def fields_of(category: Category | str) -> list[str]:
    """Every stored field of a category: its metrics, their ``_absent`` twins, its status and text fields."""
    category = Category(category)
    metrics = metrics_of(category)
    return (metrics + [m + ABSENT_SUFFIX for m in metrics] + [category.value + STATUS_SUFFIX]
            + [f for f, c in TEXT_FIELDS.items() if c == category])
