"""Consent-checked reads over HTTP on the real app and a real InfluxDB: each role sees exactly the
categories its consent covers, and everything else is a 403 that names why and shows none of the data."""

from __future__ import annotations

import time

import pytest

from tests.cloud.domains.vitals.kit import (PATIENT_A, PATIENT_B, api, demo_people, seed_demo, vitals_app,
                                           vitals_line, vitals_lines)
from tests.cloud.test_api_kit import wait_for

pytestmark = pytest.mark.timeout(60)

PEOPLE = demo_people(**{"grafana-ds": ("tok-grafana-ds", ["vitals:read"]),
                        "nurse-mori": ("tok-nurse-mori", ["vitals:read"]),
                        "son-tanaka": ("tok-son-tanaka", ["vitals:read"]),
                        "cousin-yamada": ("tok-cousin", ["vitals:read"])})
GRAFANA = {"domains": {"vitals": {"grafana": {"service_principals": ["grafana-ds"]}}}}
HOUR = 3_600_000


def setup(registry):
    seed_demo(registry)
    now = int(time.time() * 1000)
    registry.add_member(PATIENT_A, "cousin-yamada", "family", added_by="seed")
    registry.add_member(PATIENT_B, "nurse-mori", "nurse", added_by="seed")
    registry.add_member(PATIENT_B, "son-tanaka", "family", added_by="seed")
    # p-41b2e0's nurses had consent until an hour ago; its family will have it from tomorrow
    registry.grant_consent(PATIENT_B, "nurse", "all", granted_by="seed",
                           valid_from_ms=now - 48 * HOUR, valid_until_ms=now - HOUR)
    registry.grant_consent(PATIENT_B, "family", ["blood_pressure"], granted_by="seed",
                           valid_from_ms=now + 24 * HOUR)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    lines = vitals_lines(PATIENT_A, days=3) + vitals_lines(PATIENT_B, days=2)
    # a reading with a special value: systolic absent, the rest of the row still there
    lines.append(vitals_line(PATIENT_A, "bp-cuff-1", "blood_pressure",
                             {"diastolic": 90, "pulse": 70, "systolic_absent": "not-a-number",
                              "blood_pressure_status": "body_movement"}, int(time.time() * 1000) - 60_000))
    with vitals_app(tmp_path_factory.mktemp("vitals-access"), PEOPLE, lines, setup=setup,
                    extra_config=GRAFANA) as served:
        yield served


def get(app, who: str, path: str, **headers):
    base, _ = app
    with api(base, PEOPLE[who][0], **headers) as client:
        return client.get(f"/api/vitals{path}")


def test_the_doctor_reads_every_category_of_their_patients(app):
    body = get(app, "dr-sato", f"/patients/{PATIENT_A}/readings").json()
    assert body["left_out"] == [] and body["care_role"] == "doctor"
    assert {r["profile"] for r in body["rows"]} == {"ble-blood_pressure", "ble-spo2", "ble-temperature",
                                                    "ble-weight", "ble-glucose", "ble-heart_rate"}
    assert len(body["rows"]) == 3 * 6 + 1
    oldest_bp = next(r for r in body["rows"] if r["device"] == "bp-cuff-1")
    assert (oldest_bp["systolic"], oldest_bp["diastolic"], oldest_bp["visit_id"][:9]) == (130.0, 80.0, "v-kit-01-")
    latest = get(app, "dr-sato", f"/patients/{PATIENT_A}/latest").json()["latest"]
    assert latest["blood_pressure"]["values"] == {"diastolic": 90.0, "pulse": 70.0}
    assert latest["blood_pressure"]["absent"] == {"systolic": "not-a-number"}
    assert latest["blood_pressure"]["status"] == ["body_movement"]
    assert latest["spo2"]["values"]["spo2"] == 95.0 and latest["weight"]["units"] == {"weight": "kg"}
    other = get(app, "dr-sato", f"/patients/{PATIENT_B}/readings?category=weight").json()
    assert [r["weight"] for r in other["rows"]] == [52.0, 52.5]


def test_the_care_manager_sees_only_blood_pressure_and_weight(app):
    body = get(app, "cm-kato", f"/patients/{PATIENT_A}/readings").json()
    assert body["categories"] == ["blood_pressure", "weight"]
    assert body["left_out"] == ["glucose", "heart_rate", "spo2", "temperature"]
    assert {r["device"] for r in body["rows"]} == {"bp-cuff-1", "scale-1"}     # no row of another category
    columns = set().union(*body["rows"])
    assert not columns & {"spo2", "body_temp", "glucose", "heart_rate", "temp_site", "glucose_meal"}
    assert set(get(app, "cm-kato", f"/patients/{PATIENT_A}/latest").json()["latest"]) == {"blood_pressure", "weight"}
    summary = get(app, "cm-kato", f"/patients/{PATIENT_A}/summary").json()
    assert set(summary["categories"]) == {"blood_pressure", "weight"}
    assert summary["categories"]["weight"]["trends"]["weight"][-1][1] == 53.0
    for category in ("spo2", "temperature", "glucose"):
        refused = get(app, "cm-kato", f"/patients/{PATIENT_A}/readings?category={category}")
        assert refused.status_code == 403
        assert refused.json()["detail"] == f"no consent for role care_manager to see {category}"


def assert_no_data(response):
    text = response.text
    for leak in ("systolic", "130", "52.5", "bp-cuff", "v-kit-01", "山田"):
        assert leak not in text, (leak, text)


def test_family_without_consent_gets_403_and_nothing_of_the_data(app):
    for path in ("/readings", "/latest", "/summary", "/readings?category=blood_pressure"):
        response = get(app, "son-yamada", f"/patients/{PATIENT_A}{path}")
        assert response.status_code == 403
        assert "no consent for role family" in response.json()["detail"]
        assert_no_data(response)
    assert get(app, "son-yamada", "/patients").json()["patients"] == []


def test_expired_and_not_yet_valid_consents_give_403(app):
    expired = get(app, "nurse-mori", f"/patients/{PATIENT_B}/readings?category=blood_pressure")
    assert expired.status_code == 403
    assert expired.json()["detail"].startswith("no consent for role nurse to see blood_pressure (consent c-")
    assert expired.json()["detail"].endswith("expired)")
    early = get(app, "son-tanaka", f"/patients/{PATIENT_B}/readings?category=blood_pressure")
    assert early.status_code == 403 and early.json()["detail"].endswith("is not valid yet)")
    for response in (expired, early):
        assert_no_data(response)


def test_a_consent_stops_at_its_valid_until_without_a_restart(app):
    _, registry = app
    now = int(time.time() * 1000)
    registry.grant_consent(PATIENT_A, "family", ["weight"], granted_by="seed", valid_from_ms=now - 1000,
                           valid_until_ms=now + 1500)
    path = f"/patients/{PATIENT_A}/readings?category=weight"
    assert get(app, "cousin-yamada", path).status_code == 200
    assert wait_for(lambda: get(app, "cousin-yamada", path).status_code == 403, timeout=10)
    assert "expired" in get(app, "cousin-yamada", path).json()["detail"]


def test_a_nurse_of_another_patient_and_a_stranger_get_403(app):
    for who in ("nurse-ito", "cm-kato", "son-yamada"):
        response = get(app, who, f"/patients/{PATIENT_B}/readings")
        assert response.status_code == 403
        assert response.json()["detail"] == "not in the care team of this patient"
        assert_no_data(response)
    unknown = get(app, "dr-sato", "/patients/p-000000/readings")     # no patient: same answer, no enumeration
    assert unknown.status_code == 403 and unknown.json()["detail"] == "not in the care team of this patient"


def test_a_token_without_vitals_read_gets_403(app):
    response = get(app, "meter-viewer", f"/patients/{PATIENT_A}/readings")
    assert response.status_code == 403 and "vitals:read" in response.json()["detail"]
    assert get(app, "meter-viewer", "/patients").status_code == 403
    base, _ = app
    with api(base, "not-a-token") as client:
        assert client.get(f"/api/vitals/patients/{PATIENT_A}/readings").status_code == 401


def test_self_and_proxy_see_everything_of_their_own(app):
    for who in ("hanako-yamada", "daughter-yamada"):
        body = get(app, who, f"/patients/{PATIENT_A}/readings?category=glucose").json()
        assert body["consent_id"] == "self" and [r["glucose"] for r in body["rows"]] == [110.0, 115.0, 120.0]
        assert body["rows"][0]["glucose_meal"] == "fasting"
    assert get(app, "daughter-yamada", f"/patients/{PATIENT_B}/latest").status_code == 403


def test_the_forwarded_grafana_user_counts_only_from_the_grafana_service_principal(app):
    # cm-kato claims to be the doctor: the header is ignored, cm-kato's own consent applies
    spoofed = get(app, "cm-kato", f"/patients/{PATIENT_A}/readings?category=spo2", **{"X-Grafana-User": "dr-sato"})
    assert spoofed.status_code == 403 and "care_manager" in spoofed.json()["detail"]
    # the service principal acts only for a named user
    nobody = get(app, "grafana-ds", f"/patients/{PATIENT_A}/readings")
    assert nobody.status_code == 403 and "X-Grafana-User" in nobody.json()["detail"]
    assert_no_data(nobody)
    assert get(app, "grafana-ds", f"/patients/{PATIENT_A}/latest",
               **{"X-Grafana-User": "son-yamada"}).status_code == 403
    doctor = get(app, "grafana-ds", f"/patients/{PATIENT_A}/readings?category=spo2", **{"X-Grafana-User": "dr-sato"})
    assert doctor.status_code == 200 and len(doctor.json()["rows"]) == 3
    base, _ = app
    with api(base, PEOPLE["grafana-ds"][0]) as client:       # a query's own header next to the data source's
        twice = client.get(f"/api/vitals/patients/{PATIENT_A}/latest",
                           headers=[("X-Grafana-User", "son-yamada"), ("X-Grafana-User", "dr-sato")])
    assert twice.status_code == 403 and "2 times" in twice.json()["detail"]
    assert_no_data(twice)
    listed = get(app, "grafana-ds", "/patients", **{"X-Grafana-User": "dr-sato"}).json()
    assert listed["via"] == "grafana" and all("display_name" not in p for p in listed["patients"])
    _, registry = app
    rows = registry.audit_rows(PATIENT_A, limit=50)
    assert any(r["actor"] == "dr-sato" and r["via"] == "grafana" and r["action"] == "read_readings" for r in rows)
    assert any(r["actor"] == "cm-kato" and r["via"] == "api" and r["categories"] == "spo2"
               and r["outcome"] == "denied" for r in rows)


def test_bad_input_is_a_clear_422(app):
    response = get(app, "dr-sato", f"/patients/{PATIENT_A}/readings?category=x-ray")
    assert response.status_code == 422 and "blood_pressure" in response.json()["detail"]
    response = get(app, "dr-sato", f"/patients/{PATIENT_A}/readings?start=-2000d")
    assert response.status_code == 422 and "at most" in response.json()["detail"]
