"""The vitals registry on a real SQLite file: permissions, care teams, consent windows, the append-only
audit log with its hash chain (and a tampered row found), and tables added by other modules."""

from __future__ import annotations

import re
import sqlite3
import stat
import threading

import pytest

from cloud.domains.vitals.access import grant_for, patients_visible_to
from cloud.domains.vitals.registry import ChainCheck, Registry, RegistryError, now_ms
from hinode.vitals import Category
from tests.cloud.domains.vitals.kit import PATIENT_A, PATIENT_B, seed_demo

HOUR = 3_600_000


@pytest.fixture
def registry(tmp_path):
    return Registry(tmp_path / "state" / "personal" / "vitals-registry.sqlite")


def test_the_file_is_readable_by_its_owner_only(registry):
    assert stat.S_IMODE(registry.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(registry.path.parent.stat().st_mode) == 0o700
    registry.add_patient(PATIENT_A, "山田 花子", "山田 花子")
    for companion in registry.path.parent.glob("*-wal"):
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600


def test_care_team_and_consent_windows_decide_the_grant(registry):
    demo = seed_demo(registry)
    now = now_ms()
    doctor = grant_for(registry, "dr-sato", PATIENT_A, now)
    assert doctor.care_role == "doctor" and doctor.categories == frozenset(Category)
    assert doctor.consent_id == demo.consents[(PATIENT_A, "doctor")]
    manager = grant_for(registry, "cm-kato", PATIENT_A, now)
    assert manager.categories == {Category.BLOOD_PRESSURE, Category.WEIGHT}
    assert manager.consent_for(["weight"]) == demo.consents[(PATIENT_A, "care_manager")]
    assert grant_for(registry, "son-yamada", PATIENT_A, now) is None          # member without consent
    assert grant_for(registry, "nurse-ito", PATIENT_B, now) is None           # another patient's nurse
    assert grant_for(registry, "daughter-yamada", PATIENT_A, now).consent_id == "self"
    assert [g.pseudonym for g in patients_visible_to(registry, "dr-sato", now)] == [PATIENT_B, PATIENT_A]

    window = registry.grant_consent(PATIENT_A, "family", ["spo2"], granted_by="t", valid_from_ms=now + HOUR,
                                    valid_until_ms=now + 2 * HOUR)
    assert grant_for(registry, "son-yamada", PATIENT_A, now) is None                       # not yet
    assert grant_for(registry, "son-yamada", PATIENT_A, now + HOUR).categories == {Category.SPO2}
    assert grant_for(registry, "son-yamada", PATIENT_A, now + 2 * HOUR) is None            # expired
    registry.revoke_consent(PATIENT_A, window["id"], revoked_by="t")
    assert grant_for(registry, "son-yamada", PATIENT_A, now + HOUR) is None                # revoked
    with pytest.raises(RegistryError, match="already revoked"):
        registry.revoke_consent(PATIENT_A, window["id"], revoked_by="t")

    registry.remove_member(PATIENT_A, demo.members[(PATIENT_A, "dr-sato")], removed_by="t")
    assert grant_for(registry, "dr-sato", PATIENT_A, now) is None                          # left the team
    assert grant_for(registry, "dr-sato", PATIENT_B, now) is not None


def test_registry_refuses_what_makes_no_sense(registry):
    registry.add_patient(PATIENT_A, "山田 花子", "山田 花子")
    with pytest.raises(RegistryError, match="already exists"):
        registry.add_patient(PATIENT_A, "x", "x")
    with pytest.raises(RegistryError, match="care_role"):
        registry.add_member(PATIENT_A, "someone", "neighbour", added_by="t")
    with pytest.raises(RegistryError, match="no patient"):
        registry.add_member("p-000000", "someone", "family", added_by="t")
    registry.add_member(PATIENT_A, "son-yamada", "family", added_by="t")
    with pytest.raises(RegistryError, match="already in the care team"):
        registry.add_member(PATIENT_A, "son-yamada", "doctor", added_by="t")
    with pytest.raises(RegistryError, match="self and proxy"):
        registry.grant_consent(PATIENT_A, "proxy", "all", granted_by="t")
    with pytest.raises(RegistryError, match="categories"):
        registry.grant_consent(PATIENT_A, "family", ["x-ray"], granted_by="t")
    with pytest.raises(RegistryError, match="after valid_from"):
        registry.grant_consent(PATIENT_A, "family", "all", granted_by="t", valid_from_ms=10, valid_until_ms=5)


def _audit(registry, n: int, actor: str = "dr-sato") -> None:
    for i in range(n):
        registry.append_audit(actor=actor, via="api", care_role="doctor", pseudonym=PATIENT_A, action="read_latest",
                              categories=[Category.SPO2], consent_id="c-1", outcome="allowed")


def test_the_audit_log_refuses_update_and_delete(registry):
    _audit(registry, 3)
    with sqlite3.connect(registry.path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit SET actor = 'nobody' WHERE id = 2")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM audit WHERE id = 1")
    assert [r["actor"] for r in registry.audit_rows(PATIENT_A)] == ["dr-sato"] * 3
    assert registry.verify_chain().ok


def test_the_hash_chain_finds_a_changed_row_and_a_removed_row(tmp_path):
    changed = Registry(tmp_path / "changed.sqlite")
    _audit(changed, 5)
    assert changed.verify_chain() == ChainCheck(True, 5)
    with sqlite3.connect(changed.path) as db:       # an attacker with file access drops the trigger first
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("UPDATE audit SET actor = 'someone-else' WHERE id = 3")
    check = changed.verify_chain()
    assert not check.ok and check.first_bad_id == 3 and "does not match its hash" in check.problem

    removed = Registry(tmp_path / "removed.sqlite")
    _audit(removed, 5)
    with sqlite3.connect(removed.path) as db:
        db.execute("DROP TRIGGER audit_no_delete")
        db.execute("DELETE FROM audit WHERE id = 2")
    check = removed.verify_chain()
    assert not check.ok and check.first_bad_id == 3 and "removed" in check.problem


def test_concurrent_appends_keep_one_chain(registry):
    other = Registry(registry.path)          # a second API process on the same file
    threads = [threading.Thread(target=_audit, args=(r, 25, f"user-{i}"))
               for i, r in enumerate((registry, other, registry, other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.verify_chain() == ChainCheck(True, 100)


def test_other_modules_add_their_tables(registry):
    registry.ensure("CREATE TABLE IF NOT EXISTS extra_things (id INTEGER PRIMARY KEY, what TEXT NOT NULL);")
    registry.ensure("CREATE TABLE IF NOT EXISTS extra_things (id INTEGER PRIMARY KEY, what TEXT NOT NULL);")
    with registry.connect() as db:
        db.execute("INSERT INTO extra_things (what) VALUES ('x')")
        assert db.execute("SELECT count(*) FROM extra_things").fetchone()[0] == 1


def test_config_defaults_and_errors_name_the_key(monkeypatch, tmp_path):
    from cloud.config import CloudConfig, CloudConfigError
    from cloud.domains import check_domain_configs
    from cloud.domains.vitals.config import VitalsConfig

    monkeypatch.setenv("HINODE_STATE_DIR", str(tmp_path))
    assert VitalsConfig().resolved_registry_path() == tmp_path / "personal" / "vitals-registry.sqlite"
    for section, expected in (({"max_range_days": 10}, "domains.vitals: Value error, default_range_days (30)"),
                              ({"grafana": {"service_principal": ["g"]}},
                               "domains.vitals.grafana.service_principal: Extra inputs are not permitted"),
                              ({"grafana": {"user_header": "X Bad"}}, "domains.vitals.grafana.user_header")):
        with pytest.raises(CloudConfigError, match=re.escape(f"cloud.yaml: {expected}")):
            check_domain_configs(CloudConfig.model_validate({"domains": {"vitals": section}}), source="cloud.yaml")


def test_the_operator_command_reports_the_chain(registry, capsys):
    from cloud.domains.vitals.registry import main

    _audit(registry, 3)
    assert main(["verify-audit", str(registry.path)]) == 0
    assert "intact: 3 rows" in capsys.readouterr().out
    with sqlite3.connect(registry.path) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("UPDATE audit SET consent_id = 'c-forged' WHERE id = 2")
    assert main(["verify-audit", str(registry.path)]) == 1
    assert "BROKEN at row 2" in capsys.readouterr().out
