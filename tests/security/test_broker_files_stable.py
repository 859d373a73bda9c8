"""Regenerating the broker's files from an unchanged inventory (and unchanged enrollments) writes nothing:
an installer re-run reports no change and the broker-files watcher does not reload Mosquitto for nothing.
A real change (a new agent enrolled, one revoked) is written and reported."""

from __future__ import annotations

import subprocess
import sys

import yaml

from hinode.security import mosquitto
from hinode.security.enroll import EnrollConfig, EnrollmentService
from tests.security.conftest import INVENTORY
from tests.security.test_enrollment import key_and_csr


def generate(tmp_path, enroll_yaml=None) -> list[str]:
    argv = [sys.executable, "-m", "hinode.security", "mqtt", "--inventory", str(tmp_path / "inventory.yaml"),
            "--out", str(tmp_path / "bundle")]
    if enroll_yaml:
        argv += ["--enroll-config", str(enroll_yaml)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(("created ", "changed "))]


def test_a_password_file_keeps_the_hash_of_an_unchanged_password_and_renews_a_changed_one():
    first = mosquitto.password_file({"a@s": "pw-a", "b@s": "pw-b"})
    again = mosquitto.password_file({"a@s": "pw-a", "b@s": "pw-b"}, existing=first)
    assert again == first
    changed = mosquitto.existing_hashes(mosquitto.password_file({"a@s": "pw-a", "b@s": "new"}, existing=first))
    assert changed["a@s"] == mosquitto.existing_hashes(first)["a@s"]
    assert changed["b@s"] != mosquitto.existing_hashes(first)["b@s"]
    assert mosquitto.password_matches("new", changed["b@s"]) and not mosquitto.password_matches("pw-b", changed["b@s"])


def test_regenerating_without_enrollment_rewrites_the_same_passwd(tmp_path):
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY))
    assert any(line.startswith("created ") for line in generate(tmp_path))
    passwd = (tmp_path / "bundle" / "broker" / "passwd").read_bytes()
    assert generate(tmp_path) == []
    assert (tmp_path / "bundle" / "broker" / "passwd").read_bytes() == passwd


def test_with_enrollment_only_a_real_change_is_written(tmp_path):
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY))
    config = EnrollConfig(bundle=tmp_path / "bundle", inventory=tmp_path / "inventory.yaml", store=tmp_path / "enroll.db")
    enroll_yaml = tmp_path / "enroll.yaml"
    enroll_yaml.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    first = generate(tmp_path, enroll_yaml)
    assert {"changed broker/acl (inventory + enrolled agents)", "changed broker/passwd (inventory + enrolled agents)",
            "changed broker/crl (inventory + enrolled agents)"} <= set(first)
    broker = tmp_path / "bundle" / "broker"
    before = {name: (broker / name).read_bytes() for name in ("acl", "passwd", "crl.pem")}
    assert generate(tmp_path, enroll_yaml) == []
    assert {name: (broker / name).read_bytes() for name in before} == before

    # an agent enrolled through the service joins acl and passwd; the next installer run keeps it
    service = EnrollmentService(config)
    try:
        token, _ = service.create_token("depot-9", "edge-77", ttl_s=600)
        service.enroll(token, key_and_csr()[1])
    finally:
        service.close()
    assert "user edge-77@depot-9\n" in (broker / "acl").read_text()
    assert generate(tmp_path, enroll_yaml) == []
    assert "user edge-77@depot-9\n" in (broker / "acl").read_text()
    assert "edge-77@depot-9:" in (broker / "passwd").read_text()
