"""One patient's readings as a FHIR R4 transaction Bundle (pure: a polars frame in, a dict out).

Follows the HL7 PHD / vital-signs conventions (reference B5): a Patient identified only by the
pseudonym, one Device per gateway device (its id on the visit kit and its profile; never a
person's data), one Observation per measurement with its LOINC code and UCUM unit. Blood pressure
is the panel 85354-9 with systolic/diastolic (and mean arterial) components and no value of its own;
SpO2 carries 2708-6 plus 59408-5 "by pulse oximetry"; glucose is category ``laboratory``, everything
else ``vital-signs``. A special value the device sent instead of a number (``<metric>_absent``, the
PHD codes of hinode/vitals.py) becomes ``dataAbsentReason`` with no ``valueQuantity``.

Validated with ``fhir.resources.R4B``: fhir.resources 8 ships R5 (its default package), R4B (4.3)
and STU3; R4B's Patient, Device, Observation and Bundle have the R4 (4.0.1) shape used here.

Decimals: a ``<metric>_decimals`` column (the digits the device sent), when the frame has one,
keeps trailing zeros (SFLOAT 0xE0C8 -> ``2.00``); without it a value is written in its shortest
form (138, 36.6). ``bundle_json`` writes those decimals verbatim (pydantic would turn 2.00 into 2.0).

Identifiers and fullUrls are derived (uuid5) from the pseudonym, device, time and code, so the same
readings exported twice give the same Bundle, and ``ifNoneExist`` makes a replay create nothing new.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

import polars as pl

from hinode.vitals import ABSENT_CODES, ABSENT_SUFFIX, VITAL_METRICS, Category

PSEUDONYM_SYSTEM = "urn:hinode:pseudonym"
DEVICE_SYSTEM = "urn:hinode:device"
OBSERVATION_SYSTEM = "urn:hinode:observation"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
FHIR_JSON = "application/fhir+json"
_NAMESPACE = uuid.UUID("5d0f9a52-6c1e-4c55-9b0e-8f3b0c1a7e11")   # fixed: derived ids stay stable

BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
BP_COMPONENTS = ("systolic", "diastolic", "mean_arterial")
SPO2_BY_OXIMETRY = ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")
_PROFILE = "http://hl7.org/fhir/StructureDefinition/"
PROFILES = {"bp": "bp", "spo2": "oxygensat", "body_temp": "bodytemp", "weight": "bodyweight",
            "height": "bodyheight", "bmi": "bmi", "heart_rate": "heartrate", "pulse": "heartrate",
            "spo2_pulse": "heartrate"}
# Exported one Observation each (a metric without a LOINC code, e.g. rr_interval, is not exported).
SINGLE_METRICS = tuple(m.metric for m in VITAL_METRICS.values() if m.loinc and m.metric not in BP_COMPONENTS)
_RAW_DECIMAL = re.compile(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)\\u0000"')


def build_bundle(pseudonym: str, frame: pl.DataFrame, categories: Iterable[Category | str]) -> dict[str, Any]:
    """A transaction Bundle (a dict, decimals as Decimal) of ``frame``'s readings of ``categories``.

    ``frame``: columns ``time`` (ms), ``device``, ``profile`` and any stored vitals fields; a
    field of a category not in ``categories`` is never read (the caller's consent decides them).
    """
    allowed = {Category(c) for c in categories}
    patient_url = _urn("patient", pseudonym)
    entries = [_entry(patient_url, {
        "resourceType": "Patient",
        "identifier": [{"system": PSEUDONYM_SYSTEM, "value": pseudonym}],
    }, "Patient", f"identifier={PSEUDONYM_SYSTEM}|{pseudonym}")]
    devices: dict[str, str] = {}
    observations: list[dict] = []
    for row in frame.sort("time").iter_rows(named=True) if not frame.is_empty() else ():
        device = str(row.get("device") or "unknown")
        made = _row_observations(pseudonym, row, allowed)
        if not made:
            continue
        if device not in devices:
            devices[device] = _urn("device", pseudonym, device)
            entries.append(_entry(devices[device], _device(device, str(row.get("profile") or "")), "Device",
                                  f"identifier={DEVICE_SYSTEM}|{device}"))
        for code, observation in made:
            key = f"{pseudonym}/{device}/{int(row['time'])}/{code}"
            observation_id = str(uuid.uuid5(_NAMESPACE, key))
            observation["identifier"] = [{"system": OBSERVATION_SYSTEM, "value": observation_id}]
            observation["subject"] = {"reference": patient_url}
            observation["device"] = {"reference": devices[device]}
            observations.append(_entry(f"urn:uuid:{observation_id}", observation, "Observation",
                                       f"identifier={OBSERVATION_SYSTEM}|{observation_id}"))
    return {"resourceType": "Bundle", "type": "transaction",
            "timestamp": _iso(int(datetime.now(timezone.utc).timestamp() * 1000)),
            "entry": entries + observations}


def bundle_json(bundle: dict[str, Any]) -> str:
    """The Bundle as JSON, each Decimal written with its own digits (``2.00`` stays ``2.00``)."""
    def encode(value):
        if isinstance(value, Decimal):
            return f"\u0000dec:{value}\u0000"
        raise TypeError(f"not JSON serializable: {type(value).__name__}")
    return _RAW_DECIMAL.sub(r"\1", json.dumps(bundle, default=encode, ensure_ascii=False))


def _row_observations(pseudonym: str, row: dict, allowed: set[Category]) -> list[tuple[str, dict]]:
    ts_ms = int(row["time"])
    made: list[tuple[str, dict]] = []
    if Category.BLOOD_PRESSURE in allowed:
        components = [c for c in (_component(row, m) for m in BP_COMPONENTS) if c is not None]
        if components:
            made.append((BP_PANEL[0], _observation(Category.BLOOD_PRESSURE, [(BP_PANEL[0], BP_PANEL[1])], ts_ms,
                                                   "bp", {"component": components})))
    for metric in SINGLE_METRICS:
        vital = VITAL_METRICS[metric]
        if vital.category not in allowed:
            continue
        value = _value(row, metric)
        if value is None:
            continue
        codes = [(vital.loinc, vital.display)]
        if metric == "spo2":
            codes.append(SPO2_BY_OXIMETRY)
        made.append((f"{vital.loinc}:{metric}", _observation(vital.category, codes, ts_ms, PROFILES.get(metric), value)))
    return made


def _value(row: dict, metric: str) -> dict | None:
    """``{"valueQuantity": ...}`` or ``{"dataAbsentReason": ...}``, or None when the row has neither."""
    absent = row.get(metric + ABSENT_SUFFIX)
    if absent:
        code = absent if absent in ABSENT_CODES else "error"
        return {"dataAbsentReason": {"coding": [{"system": DATA_ABSENT_REASON, "code": code}], "text": absent}}
    raw = row.get(metric)
    if raw is None or raw != raw:       # null, or NaN
        return None
    vital = VITAL_METRICS[metric]
    return {"valueQuantity": {"value": _decimal(float(raw), row.get(metric + "_decimals")), "unit": vital.unit,
                              "system": UCUM, "code": vital.unit}}


def _component(row: dict, metric: str) -> dict | None:
    value = _value(row, metric)
    if value is None:
        return None
    vital = VITAL_METRICS[metric]
    return {"code": _concept([(vital.loinc, vital.display)]), **value}


def _observation(category: Category, codes: list[tuple[str, str]], ts_ms: int, profile: str | None,
                 value: dict) -> dict:
    kind = ("laboratory", "Laboratory") if category == Category.GLUCOSE else ("vital-signs", "Vital Signs")
    observation: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
    if profile and kind[0] == "vital-signs":
        observation["meta"] = {"profile": [_PROFILE + "vitalsigns", _PROFILE + profile]}
    observation.update({
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": kind[0], "display": kind[1]}]}],
        "code": _concept(codes),
        "effectiveDateTime": _iso(ts_ms),
        **value,
    })
    return observation


def _device(device: str, profile: str) -> dict:
    resource: dict[str, Any] = {"resourceType": "Device", "identifier": [{"system": DEVICE_SYSTEM, "value": device}],
                                "status": "active"}
    if profile:
        resource["deviceName"] = [{"name": profile, "type": "model-name"}]
        resource["type"] = {"text": profile}
    return resource


def _concept(codes: list[tuple[str, str]]) -> dict:
    return {"coding": [{"system": LOINC, "code": code, "display": display} for code, display in codes],
            "text": codes[0][1]}


def _entry(full_url: str, resource: dict, resource_type: str, if_none_exist: str) -> dict:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource_type, "ifNoneExist": if_none_exist}}


def _decimal(value: float, decimals: Any) -> Decimal:
    if decimals is not None and decimals == decimals and 0 <= int(decimals) <= 10:
        return Decimal(f"{value:.{int(decimals)}f}")
    value = round(value, 6)        # drop binary noise (36.5 + 0.4 = 36.900000000000006); no device is finer
    if value.is_integer():
        return Decimal(int(value))
    return Decimal(repr(value))


def _urn(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, '/'.join(parts))}"


def _iso(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ts_ms % 1000:
        text += f".{ts_ms % 1000:03d}"
    return text + "Z"
