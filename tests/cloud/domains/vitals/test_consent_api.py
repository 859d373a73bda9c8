"""Registry, care teams, visits and consent over HTTP: staff (vitals:write) keep the registry, the patient
and their proxy grant and revoke consent, and a revocation refuses the very next request."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from tests.cloud.domains.vitals.kit import PATIENT_A, PATIENT_B, api, demo_people, seed_demo, vitals_app, vitals_lines

pytestmark = pytest.mark.timeout(60)

PEOPLE = demo_people(**{"kenji-mori": ("tok-kenji", ["vitals:read"]), "aya-mori": ("tok-aya", ["vitals:read"]),
                        "grandson-ueno": ("tok-grandson", ["vitals:read"])})
OFFICE = "office-suzuki"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    lines = vitals_lines(PATIENT_A, days=2) + vitals_lines(PATIENT_B, days=1) + vitals_lines("p-d15e00", days=1)
    with vitals_app(tmp_path_factory.mktemp("vitals-consent"), PEOPLE, lines, setup=seed_demo) as served:
        yield served


def call(app, who: str, method: str, path: str, **kwargs):
    base, _ = app
    with api(base, PEOPLE[who][0]) as client:
        return client.request(method, f"/api/vitals{path}", **kwargs)


def test_the_registry_needs_vitals_write(app):
    for who in ("dr-sato", "daughter-yamada"):
        response = call(app, who, "GET", "/registry")
        assert response.status_code == 403 and "vitals:write" in response.json()["detail"]
        assert "山田" not in response.text
        refused = call(app, who, "POST", "/patients", json={"pseudonym": "p-aaaaaa", "name": "x", "display_name": "x"})
        assert refused.status_code == 403
    assert call(app, "meter-viewer", "GET", "/registry").status_code == 403
    registry = call(app, OFFICE, "GET", "/registry").json()["patients"]
    patient_a = next(p for p in registry if p["pseudonym"] == PATIENT_A)
    assert (patient_a["name"], patient_a["birth_date"]) == ("山田 花子", "1941-04-03")
    assert {(m["username"], m["care_role"]) for m in patient_a["members"]} >= {("dr-sato", "doctor"),
                                                                               ("son-yamada", "family")}


def test_staff_build_a_care_team_and_the_kits_schedule(app):
    created = call(app, OFFICE, "POST", "/patients", json={"pseudonym": "p-5e11a0", "name": "森 健二",
                                                            "display_name": "森 健二", "birth_date": "1944-02-01"})
    assert created.status_code == 201 and created.json()["display_name"] == "森 健二"
    assert call(app, OFFICE, "POST", "/patients", json={"pseudonym": "p-5e11a0", "name": "x",
                                                         "display_name": "x"}).status_code == 409
    assert call(app, OFFICE, "POST", "/patients", json={"pseudonym": "bad pseudonym", "name": "x",
                                                         "display_name": "x"}).status_code == 422
    kenji = call(app, OFFICE, "POST", "/patients/p-5e11a0/members", json={"username": "kenji-mori", "care_role": "self"})
    aya = call(app, OFFICE, "POST", "/patients/p-5e11a0/members",
               json={"username": "aya-mori", "care_role": "proxy", "webhook_url": "https://care.example/hook"})
    assert kenji.status_code == aya.status_code == 201 and aya.json()["webhook_url"] == "https://care.example/hook"
    assert call(app, OFFICE, "POST", "/patients/p-5e11a0/members",
                json={"username": "x", "care_role": "neighbour"}).status_code == 422
    listed = call(app, "kenji-mori", "GET", "/patients").json()["patients"]
    assert listed == [{"pseudonym": "p-5e11a0", "care_role": "self", "categories": sorted(listed[0]["categories"]),
                       "consent_id": "self", "valid_until": None, "display_name": "森 健二"}]

    for visit in ({"date": "2026-12-01", "time": "14:30", "kit": "kit-01", "pseudonym": "p-5e11a0", "nurse": "n-01"},
                  {"date": "2026-12-01", "time": "10:00", "kit": "kit-01", "pseudonym": PATIENT_A, "nurse": "n-01"},
                  {"date": "2026-12-01", "time": "11:00", "kit": "kit-02", "pseudonym": PATIENT_B, "nurse": "n-02"},
                  {"date": "2026-12-02", "time": "10:00", "kit": "kit-01", "pseudonym": PATIENT_B, "nurse": "n-01"}):
        assert call(app, OFFICE, "POST", "/visits", json=visit).status_code == 201
    assert call(app, OFFICE, "POST", "/visits", json={"date": "2026-12-01", "time": "25:00", "kit": "kit-01",
                                                      "pseudonym": PATIENT_A, "nurse": "n-01"}).status_code == 422
    schedule = call(app, OFFICE, "GET", "/kits/kit-01/schedule.yaml", params={"date": "2026-12-01"})
    assert schedule.status_code == 200 and schedule.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(schedule.text) == {"visits": [
        {"date": dt.date(2026, 12, 1), "time": "10:00", "pseudonym": PATIENT_A, "display_name": "山田 花子"},
        {"date": dt.date(2026, 12, 1), "time": "14:30", "pseudonym": "p-5e11a0", "display_name": "森 健二"}]}
    assert call(app, "dr-sato", "GET", "/kits/kit-01/schedule.yaml").status_code == 403

    removed = call(app, OFFICE, "DELETE", f"/patients/p-5e11a0/members/{kenji.json()['id']}")
    assert removed.status_code == 200 and removed.json()["removed_by"] == OFFICE
    gone = call(app, "kenji-mori", "GET", "/patients/p-5e11a0/latest")
    assert gone.status_code == 403 and gone.json()["detail"] == "not in the care team of this patient"
    assert call(app, OFFICE, "DELETE", f"/patients/p-5e11a0/members/{kenji.json()['id']}").status_code == 404


def test_the_proxy_grants_and_revokes_and_revocation_acts_on_the_next_request(app):
    weight = f"/patients/{PATIENT_A}/readings?category=weight"
    assert call(app, "son-yamada", "GET", weight).status_code == 403
    granted = call(app, "daughter-yamada", "POST", f"/patients/{PATIENT_A}/consents",
                   json={"care_role": "family", "categories": ["weight"]})
    assert granted.status_code == 201
    consent = granted.json()
    assert (consent["categories"], consent["granted_by"], consent["revoked_at"]) == (["weight"], "daughter-yamada", None)
    allowed = call(app, "son-yamada", "GET", weight)
    assert allowed.status_code == 200 and [r["weight"] for r in allowed.json()["rows"]] == [52.0, 52.5]
    assert call(app, "son-yamada", "GET", f"/patients/{PATIENT_A}/readings?category=spo2").status_code == 403

    revoked = call(app, "daughter-yamada", "POST", f"/patients/{PATIENT_A}/consents/{consent['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "daughter-yamada"
    refused = call(app, "son-yamada", "GET", weight)
    assert refused.status_code == 403
    assert refused.json()["detail"] == f"no consent for role family to see weight (consent {consent['id']} was revoked)"
    assert call(app, "daughter-yamada", "POST",
                f"/patients/{PATIENT_A}/consents/{consent['id']}/revoke").status_code == 409

    listed = call(app, "hanako-yamada", "GET", f"/patients/{PATIENT_A}/consents").json()["consents"]
    mine = next(c for c in listed if c["id"] == consent["id"])
    assert mine["revoked_at"] >= mine["granted_at"]
    _, registry = app
    changes = [(r["action"], r["actor"], r["consent_id"], r["outcome"])
               for r in reversed(registry.audit_rows(PATIENT_A, limit=200)) if r["action"].startswith("consent_")
               and r["consent_id"] == consent["id"]]
    assert changes == [("consent_grant", "daughter-yamada", consent["id"], "allowed"),
                       ("consent_revoke", "daughter-yamada", consent["id"], "allowed")]


def test_only_the_patient_their_proxy_and_staff_manage_consents(app):
    body = {"care_role": "nurse", "categories": "all"}
    for who in ("dr-sato", "son-yamada", "cm-kato", "nurse-ito"):
        response = call(app, who, "POST", f"/patients/{PATIENT_A}/consents", json=body)
        assert response.status_code == 403 and "only the patient, their proxy" in response.json()["detail"]
        assert call(app, who, "GET", f"/patients/{PATIENT_A}/consents").status_code == 403
    assert call(app, "daughter-yamada", "POST", f"/patients/{PATIENT_B}/consents", json=body).status_code == 403
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).isoformat()
    staff = call(app, OFFICE, "POST", f"/patients/{PATIENT_B}/consents",
                 json={"care_role": "care_manager", "categories": ["weight", "blood_pressure"], "valid_until": until})
    assert staff.status_code == 201 and staff.json()["categories"] == ["blood_pressure", "weight"]
    assert staff.json()["valid_until"] is not None
    for bad in ({"care_role": "proxy", "categories": "all"}, {"care_role": "family", "categories": ["x-ray"]},
                {"care_role": "family", "categories": "all", "valid_from": "2026-01-01T00:00:00"}):
        assert call(app, "daughter-yamada", "POST", f"/patients/{PATIENT_A}/consents", json=bad).status_code == 422


def test_display_names_only_for_self_proxy_doctor_nurse_and_care_manager(app):
    call(app, OFFICE, "POST", "/patients", json={"pseudonym": "p-d15e00", "name": "上野 トメ", "display_name": "上野 トメ"})
    call(app, OFFICE, "POST", "/patients/p-d15e00/members", json={"username": "grandson-ueno", "care_role": "family"})
    call(app, OFFICE, "POST", "/patients/p-d15e00/consents", json={"care_role": "family", "categories": "all"})
    family = call(app, "grandson-ueno", "GET", "/patients")
    assert [p["pseudonym"] for p in family.json()["patients"]] == ["p-d15e00"]
    assert "display_name" not in family.json()["patients"][0] and "上野" not in family.text
    assert call(app, "grandson-ueno", "GET", "/patients/p-d15e00/latest").status_code == 200
    for who in ("dr-sato", "nurse-ito", "cm-kato", "hanako-yamada", "daughter-yamada"):
        entry = next(p for p in call(app, who, "GET", "/patients").json()["patients"] if p["pseudonym"] == PATIENT_A)
        assert entry["display_name"] == "山田 花子", who
    for path in (f"/patients/{PATIENT_A}/readings", f"/patients/{PATIENT_A}/latest", f"/patients/{PATIENT_A}/summary"):
        assert "山田" not in call(app, "dr-sato", "GET", path).text
