"""The FHIR R4 transaction Bundle: validated with fhir.resources (R4B models: the 8.x releases ship
R5, R4B and STU3) and with fhirclient's models generated from FHIR 4.0.1 itself (strict: unknown
elements, wrong types and missing required elements raise); codes, units, components, special values."""

from __future__ import annotations

import json

import polars as pl
from fhir.resources.R4B.bundle import Bundle
from fhirclient.models.bundle import Bundle as R4Bundle

from cloud.domains.vitals.fhir import (DATA_ABSENT_REASON, LOINC, PSEUDONYM_SYSTEM, UCUM, build_bundle,
                                       bundle_json)
from hinode.vitals import Category

PATIENT = "p-7f3a9c"
T0 = 1_764_378_000_000       # 2025-11-29T01:00:00Z


def readings_frame() -> pl.DataFrame:
    rows = [
        {"time": T0, "device": "bp-cuff-1", "profile": "ble-blood_pressure",
         "systolic": 138.0, "diastolic": 88.0, "mean_arterial": 120.0, "pulse": 60.0},
        {"time": T0 + 60_000, "device": "bp-cuff-1", "profile": "ble-blood_pressure",
         "systolic": None, "systolic_absent": "not-a-number", "diastolic": 80.0},
        {"time": T0 + 120_000, "device": "oximeter-1", "profile": "ble-spo2",
         "spo2": 94.0, "spo2_pulse": 147.0, "perfusion_index": 8.7},
        {"time": T0 + 180_000, "device": "thermo-1", "profile": "ble-temperature",
         "body_temp": 37.6, "body_temp_decimals": 2},
        {"time": T0 + 240_000, "device": "scale-1", "profile": "ble-weight", "weight": 70.0},
        {"time": T0 + 300_000, "device": "gluco-1", "profile": "ble-glucose", "glucose": 100.0},
        {"time": T0 + 360_000, "device": "hr-1", "profile": "ble-heart_rate", "heart_rate": 85.0, "rr_interval": 0.7},
        {"time": T0 + 420_000, "device": "thermo-1", "profile": "ble-temperature",
         "body_temp": None, "body_temp_absent": "positive-infinity"},
    ]
    return pl.DataFrame(rows, infer_schema_length=None)


def observations(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]


def by_code(bundle: dict, code: str) -> list[dict]:
    return [o for o in observations(bundle) if o["code"]["coding"][0]["code"] == code]


def validated(bundle: dict) -> dict:
    """The Bundle as a client receives it (our JSON), parsed back by fhir.resources: raises if invalid."""
    text = bundle_json(bundle)
    model = Bundle.model_validate_json(text)
    assert model.type == "transaction"
    r4 = R4Bundle(json.loads(text), strict=True)              # FHIR 4.0.1 (R4) proper
    assert r4.type == "transaction" and len(r4.entry) == len(model.entry)
    assert {e.resource.resource_type for e in r4.entry} <= {"Patient", "Device", "Observation"}
    return json.loads(text)


def test_every_category_exports_as_a_valid_transaction_bundle_with_patient_device_observation():
    bundle = validated(build_bundle(PATIENT, readings_frame(), list(Category)))
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[0] == "Patient" and kinds.count("Patient") == 1
    assert kinds.count("Device") == 6                       # one per device, not per reading
    patient = bundle["entry"][0]
    assert patient["resource"] == {"resourceType": "Patient",
                                   "identifier": [{"system": PSEUDONYM_SYSTEM, "value": PATIENT}]}
    assert patient["request"] == {"method": "POST", "url": "Patient",
                                  "ifNoneExist": f"identifier={PSEUDONYM_SYSTEM}|{PATIENT}"}
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(u.startswith("urn:uuid:") for u in full_urls) and len(full_urls) == len(bundle["entry"])
    devices = {e["fullUrl"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Device"}
    for observation in observations(bundle):
        assert observation["subject"] == {"reference": patient["fullUrl"]}
        assert observation["device"]["reference"] in devices
        assert observation["status"] == "final"
    assert {d["identifier"][0]["value"] for d in devices.values()} == \
        {"bp-cuff-1", "oximeter-1", "thermo-1", "scale-1", "gluco-1", "hr-1"}
    # 2 BP panels, pulse, spo2, spo2 pulse, PI, 2 temperatures, weight, glucose, heart rate (rr has no LOINC)
    assert len(observations(bundle)) == 11


def test_blood_pressure_is_a_panel_with_components_and_no_value_of_its_own():
    bundle = validated(build_bundle(PATIENT, readings_frame(), [Category.BLOOD_PRESSURE]))
    first, second = by_code(bundle, "85354-9")
    assert "valueQuantity" not in first and "dataAbsentReason" not in first
    assert first["category"][0]["coding"][0]["code"] == "vital-signs"
    assert first["effectiveDateTime"] == "2025-11-29T01:00:00Z"
    components = {c["code"]["coding"][0]["code"]: c for c in first["component"]}
    assert {code: c["valueQuantity"]["value"] for code, c in components.items()} == \
        {"8480-6": 138, "8462-4": 88, "8478-0": 120}
    assert components["8480-6"]["valueQuantity"] == {"value": 138, "unit": "mm[Hg]", "system": UCUM,
                                                     "code": "mm[Hg]"}
    assert all(c["code"]["coding"][0]["system"] == LOINC for c in first["component"])
    # the cuff sent NaN for systolic: dataAbsentReason, no number
    systolic = next(c for c in second["component"] if c["code"]["coding"][0]["code"] == "8480-6")
    assert "valueQuantity" not in systolic
    assert systolic["dataAbsentReason"]["coding"] == [{"system": DATA_ABSENT_REASON, "code": "not-a-number"}]
    (pulse,) = by_code(bundle, "8867-4")
    assert pulse["valueQuantity"]["value"] == 60 and pulse["valueQuantity"]["code"] == "/min"


def test_spo2_codes_glucose_category_and_special_values():
    bundle = validated(build_bundle(PATIENT, readings_frame(), list(Category)))
    (spo2,) = by_code(bundle, "2708-6")
    assert [c["code"] for c in spo2["code"]["coding"]] == ["2708-6", "59408-5"]
    assert spo2["valueQuantity"] == {"value": 94, "unit": "%", "system": UCUM, "code": "%"}
    assert "http://hl7.org/fhir/StructureDefinition/oxygensat" in spo2["meta"]["profile"]
    (glucose,) = by_code(bundle, "41653-7")
    assert glucose["category"][0]["coding"][0]["code"] == "laboratory"
    assert glucose["valueQuantity"]["code"] == "mg/dL"
    measured, infinite = by_code(bundle, "8310-5")
    assert measured["valueQuantity"]["code"] == "Cel"
    assert "valueQuantity" not in infinite
    assert infinite["dataAbsentReason"]["coding"][0]["code"] == "positive-infinity"
    (perfusion,) = by_code(bundle, "61006-3")
    assert perfusion["valueQuantity"]["value"] == 8.7


def test_decimals_keep_the_precision_the_device_sent():
    text = bundle_json(build_bundle(PATIENT, readings_frame(), [Category.TEMPERATURE]))
    assert '"value": 37.60' in text                          # body_temp_decimals = 2: the trailing zero stays
    text = bundle_json(build_bundle(PATIENT, readings_frame(), [Category.WEIGHT]))
    assert '"value": 70,' in text                            # unknown precision: shortest form


def test_only_the_given_categories_are_exported_and_the_same_readings_give_the_same_ids():
    frame = readings_frame()
    bundle = validated(build_bundle(PATIENT, frame, [Category.SPO2]))
    codes = sorted(o["code"]["coding"][0]["code"] for o in observations(bundle))
    assert codes == ["2708-6", "61006-3", "8867-4"]
    assert [e["resource"]["identifier"][0]["value"] for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Device"] == ["oximeter-1"]
    again = validated(build_bundle(PATIENT, frame, [Category.SPO2]))
    assert [e["fullUrl"] for e in again["entry"]] == [e["fullUrl"] for e in bundle["entry"]]
    empty = validated(build_bundle(PATIENT, frame.head(0), list(Category)))
    assert [e["resource"]["resourceType"] for e in empty["entry"]] == ["Patient"]


def test_the_export_route_sends_only_consented_categories_and_audits_every_export(tmp_path):
    import time

    from tests.cloud.domains.vitals.kit import PATIENT_A, api, demo_people, seed_demo, vitals_app, vitals_lines

    people = demo_people()
    path = f"/api/vitals/patients/{PATIENT_A}/fhir"
    with vitals_app(tmp_path, people, vitals_lines(PATIENT_A, days=2), setup=seed_demo) as (base, registry):
        with api(base, people["dr-sato"][0]) as doctor, api(base, people["cm-kato"][0]) as care_manager, \
                api(base, people["son-yamada"][0]) as son:
            started = time.perf_counter()
            full = doctor.get(path, params={"start": "-7d"})
            elapsed_ms = (time.perf_counter() - started) * 1000
            assert full.status_code == 200, full.text
            assert full.headers["content-type"].startswith("application/fhir+json")
            Bundle.model_validate_json(full.text)
            codes = {o["code"]["coding"][0]["code"] for o in observations(full.json())}
            assert {"85354-9", "2708-6", "8310-5", "29463-7", "41653-7", "8867-4"} <= codes
            assert "山田" not in full.text and "1941" not in full.text          # pseudonym only

            partial = care_manager.get(path, params={"start": "-7d"})          # consent: blood_pressure, weight
            assert partial.status_code == 200
            bundle = validated_text(partial.text)
            assert {o["code"]["coding"][0]["code"] for o in observations(bundle)} == {"85354-9", "8867-4", "29463-7"}
            assert care_manager.get(path, params={"category": "spo2"}).status_code == 403

            refused = son.get(path)
            assert refused.status_code == 403 and "no consent for role family" in refused.json()["detail"]
        exports = [(r["actor"], r["outcome"], r["categories"]) for r in registry.audit_rows(PATIENT_A)
                   if r["action"] == "export_fhir"]
        assert ("dr-sato", "allowed", "blood_pressure,glucose,heart_rate,spo2,temperature,weight") in exports
        assert ("cm-kato", "allowed", "blood_pressure,weight") in exports
        assert ("cm-kato", "denied", "spo2") in exports
        assert ("son-yamada", "denied", "") in exports
        print(f"export of 2 days x 6 categories: {elapsed_ms:.0f} ms")


def validated_text(text: str) -> dict:
    Bundle.model_validate_json(text)
    return json.loads(text)
