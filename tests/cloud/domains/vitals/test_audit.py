"""The audit log over HTTP: every read, allowed or denied, is a row with who, what, when and the consent it
was allowed under; the patient and their proxy (and staff) read it; it cannot be changed or shortened."""

from __future__ import annotations

import sqlite3
import time

import pytest

from cloud.domains.vitals.registry import Registry
from tests.cloud.domains.vitals.kit import PATIENT_A, PATIENT_B, api, demo_people, seed_demo, vitals_app, vitals_lines

pytestmark = pytest.mark.timeout(60)

PEOPLE = demo_people(**{"grafana-ds": ("tok-grafana-ds", ["vitals:read"])})
DEMO = {}


def setup(registry):
    DEMO["ids"] = seed_demo(registry)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    lines = vitals_lines(PATIENT_A, days=2) + vitals_lines(PATIENT_B, days=1)
    config = {"domains": {"vitals": {"grafana": {"service_principals": ["grafana-ds"]}}}}
    with vitals_app(tmp_path_factory.mktemp("vitals-audit"), PEOPLE, lines, setup=setup,
                    extra_config=config) as served:
        yield served


def get(app, who: str, path: str, **headers):
    base, _ = app
    with api(base, PEOPLE[who][0], **headers) as client:
        return client.get(f"/api/vitals{path}")


def audit_of(app, who: str, pseudonym: str = PATIENT_A) -> list[dict]:
    response = get(app, who, f"/patients/{pseudonym}/audit")
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def test_every_read_allowed_or_denied_is_in_the_patients_audit(app):
    consents = DEMO["ids"].consents
    started = int(time.time() * 1000)
    reads = [("dr-sato", "/readings", {}, 200), ("cm-kato", "/readings?category=spo2", {}, 403),
             ("son-yamada", "/latest", {}, 403), ("nurse-ito", "/summary", {}, 200),
             ("cm-kato", "/latest?category=weight", {}, 200),
             ("grafana-ds", "/readings?category=temperature", {"X-Grafana-User": "nurse-ito"}, 200)]
    for who, path, headers, status in reads:
        assert get(app, who, f"/patients/{PATIENT_A}{path}", **headers).status_code == status
    assert get(app, "nurse-ito", f"/patients/{PATIENT_B}/readings").status_code == 403      # another patient
    finished = int(time.time() * 1000)

    entries = [e for e in audit_of(app, "daughter-yamada") if e["ts"] >= started][::-1]   # oldest first
    reads_seen = [(e["who"], e["via"], e["care_role"], e["action"], e["categories"], e["consent_id"], e["outcome"])
                  for e in entries if e["action"].startswith("read_") and e["action"] != "read_audit"]
    everything = ["blood_pressure", "glucose", "heart_rate", "spo2", "temperature", "weight"]
    assert reads_seen == [
        ("dr-sato", "api", "doctor", "read_readings", everything, consents[(PATIENT_A, "doctor")], "allowed"),
        ("cm-kato", "api", "care_manager", "read_readings", ["spo2"], "", "denied"),
        ("son-yamada", "api", "family", "read_latest", [], "", "denied"),
        ("nurse-ito", "api", "nurse", "read_summary", everything, consents[(PATIENT_A, "nurse")], "allowed"),
        ("cm-kato", "api", "care_manager", "read_latest", ["weight"], consents[(PATIENT_A, "care_manager")], "allowed"),
        ("nurse-ito", "grafana", "nurse", "read_readings", ["temperature"], consents[(PATIENT_A, "nurse")], "allowed"),
    ]
    assert all(started <= e["ts"] <= finished for e in entries if e["action"] != "read_audit")
    denied = {e["who"]: e["reason"] for e in entries if e["outcome"] == "denied"}
    assert denied == {"cm-kato": "no consent for role care_manager to see spo2",
                      "son-yamada": "no consent for role family to see any vital sign"}
    assert not any(e["who"] == "nurse-ito" and e["outcome"] == "denied" for e in entries)   # that was B's log
    other = [e for e in audit_of(app, "office-suzuki", PATIENT_B) if e["ts"] >= started]
    assert [(e["who"], e["action"], e["outcome"], e["reason"]) for e in other if e["action"] == "read_readings"] == [
        ("nurse-ito", "read_readings", "denied", "not in the care team of this patient")]


def test_the_audit_holds_no_values_and_no_names(app):
    get(app, "dr-sato", f"/patients/{PATIENT_A}/latest")
    get(app, "dr-sato", "/patients")
    _, registry = app
    with sqlite3.connect(registry.path) as db:
        dump = "\n".join(str(row) for row in db.execute("SELECT * FROM audit"))
    for leak in ("山田", "田中", "130.0", "52.5", "v-kit-01"):
        assert leak not in dump


def test_only_the_patient_their_proxy_and_staff_read_the_audit(app):
    assert audit_of(app, "hanako-yamada") and audit_of(app, "office-suzuki")
    for who, headers in (("dr-sato", {}), ("son-yamada", {}), ("grafana-ds", {"X-Grafana-User": "daughter-yamada"})):
        response = get(app, who, f"/patients/{PATIENT_A}/audit", **headers)
        assert response.status_code == 403 and "only the patient, their proxy" in response.json()["detail"]
        assert "read_readings" not in response.text
    assert get(app, "daughter-yamada", f"/patients/{PATIENT_B}/audit").status_code == 403
    denials = [(e["who"], e["via"], e["outcome"]) for e in audit_of(app, "daughter-yamada")
               if e["action"] == "read_audit" and e["outcome"] == "denied"]
    assert denials[:3] == [("daughter-yamada", "grafana", "denied"), ("son-yamada", "api", "denied"),
                           ("dr-sato", "api", "denied")]


def test_the_log_cannot_be_changed_and_a_tampered_copy_is_detected(app, tmp_path):
    _, registry = app
    with sqlite3.connect(registry.path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit SET outcome = 'allowed' WHERE outcome = 'denied'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM audit")
    check = registry.verify_chain()
    assert check.ok and check.rows > 10

    copy_path = tmp_path / "copy.sqlite"
    with sqlite3.connect(registry.path) as source, sqlite3.connect(copy_path) as target:
        source.backup(target)
    with sqlite3.connect(copy_path) as db:
        db.execute("DROP TRIGGER audit_no_update")
        (first_denied,) = db.execute("SELECT min(id) FROM audit WHERE outcome = 'denied'").fetchone()
        db.execute("UPDATE audit SET outcome = 'allowed', reason = '' WHERE id = ?", (first_denied,))
    tampered = Registry(copy_path).verify_chain()
    assert not tampered.ok and tampered.first_bad_id == first_denied
