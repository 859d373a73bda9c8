"""The cloud playbook (ansible/cloud.yml) run against this machine into a throwaway prefix.

systemd does not manage services here (hinode_manage_systemd/services false): the files are
written and checked, then the test starts the REAL mosquitto with the generated mosquitto.conf,
connects as a generated agent identity over TLS, loads the generated cloud.yaml, and checks
the databases and retention policies created in a real InfluxDB 1.x through /query.
One playbook run pair (about half a minute) serves every test of this module.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cloud.config import load_cloud_config
from hinode import services
from hinode.security.bundle import Bundle, Identity
from hinode.security.inventory import load_inventory
from tests.security.mqtt_kit import TlsClient
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
PACKAGES = ("hinode", "edge_agent", "cloud", "simulators", "device_profiles", "dashboards")
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is not installed in this venv"),
]


def find_uv() -> str:
    uv = ROOT / ".tools" / "bin" / "uv"
    found = str(uv) if uv.exists() else shutil.which("uv")
    assert found, "uv is needed: neither .tools/bin/uv nor uv on PATH"
    return found


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_DIR / "ansible.cfg")
    env["ANSIBLE_LOCAL_TEMP"] = env["ANSIBLE_REMOTE_TEMP"] = str(Path(os.environ.get("TMPDIR", "/tmp")))
    return env


def recap_changed(output: str) -> int:
    match = re.search(r"^cloud-test\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", output, re.M)
    assert match, output[-4000:]
    return int(match.group(1))


class Installed:
    def __init__(self, work: Path, influx: services.InfluxProcess, first_output: str, second_output: str):
        self.work = work
        self.influx = influx
        self.first_output = first_output
        self.second_output = second_output
        self.config_dir = work / "etc"
        self.prefix = work / "opt"
        self.units = work / "systemd"
        self.grafana = work / "grafana"
        self.bundle_dir = self.config_dir / "mqtt-bundle"
        self.broker_conf = self.config_dir / "mosquitto" / "mosquitto.conf"

    def bundle(self) -> Bundle:
        return Bundle(self.bundle_dir, load_inventory(self.bundle_dir / "inventory.yaml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory, hinode_wheel) -> Installed:
    work = tmp_path_factory.mktemp("cloud-install")
    influx = services.influxdb(work / "influxdb-data")
    influx.start()
    try:
        wheel = hinode_wheel            # one wheel of this checkout per test session (conftest.py)
        inventory = work / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {
            "cloud": {"hosts": {"cloud-test": {"ansible_connection": "local",
                                               "ansible_python_interpreter": sys.executable}}},
            # Edge hosts are only read for their hinode_site/hinode_agent: never contacted by this play.
            "edge": {"hosts": {"plant-edge-01": {"hinode_site": "plant-1", "hinode_agent": "edge-01"},
                               "plant-edge-02": {"hinode_site": "plant-1", "hinode_agent": "edge-02"},
                               "kit-01": {"hinode_site": "visits-hitachi", "hinode_agent": "kit-01"}}},
        }}}))
        variables = {
            "hinode_become": False, "hinode_manage_user": False, "hinode_manage_systemd": False,
            "hinode_manage_services": False, "hinode_influxdb_manage_databases": True,
            "hinode_prefix": str(work / "opt"), "hinode_config_dir": str(work / "etc"),
            "hinode_state_dir": str(work / "var"), "hinode_systemd_dir": str(work / "systemd"),
            "hinode_user": getpass.getuser(), "hinode_group": getpass.getuser(),
            "hinode_wheel": str(wheel), "hinode_uv": find_uv(), "hinode_cloud_base_python": sys.executable,
            "hinode_broker_port": services.free_port(), "hinode_broker_bind": "127.0.0.1",
            "hinode_broker_process_user": getpass.getuser(),
            "hinode_broker_extra_agents": [{"site": "depot-7", "agent": "edge-01"}],
            "hinode_broker_fleets": {"hitachi-scooters": {"prefix": "sc-", "count": 2}},
            "hinode_influxdb_url": influx.url, "hinode_influxdb_port": influx.port,
            "hinode_ingest_instances": 2, "hinode_ingest_metrics_port_base": 9310,
            "hinode_grafana_provisioning_dir": str(work / "grafana"),
        }
        (work / "vars.json").write_text(json.dumps(variables))
        argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-e", f"@{work / 'vars.json'}", "cloud.yml"]
        outputs = []
        for _ in range(2):
            run = subprocess.run(argv, cwd=ANSIBLE_DIR, env=clean_env(), capture_output=True, text=True, timeout=400)
            assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
            outputs.append(run.stdout)
        yield Installed(work, influx, *outputs)
    finally:
        influx.stop()


def test_the_second_run_changes_nothing(installed):
    assert recap_changed(installed.first_output) > 0
    second = installed.second_output
    changed_tasks = [block for block in second.split("\n\n") if "changed:" in block]
    assert recap_changed(second) == 0, "\n".join(changed_tasks)


def test_mosquitto_with_the_generated_config_accepts_an_agent_and_refuses_a_wrong_password(installed, tmp_path):
    conf = installed.broker_conf.read_text()
    assert "set_tcp_nodelay true" in conf and "persistence true" in conf and "allow_anonymous false" in conf
    port = int(re.search(r"^listener (\d+) ", conf, re.M).group(1))
    broker = services.ManagedProcess("mosquitto", [services.find_binary("mosquitto"), "-c", str(installed.broker_conf)],
                                     tmp_path / "mosquitto.log", port)
    broker.start()
    bundle = installed.bundle()
    agent = Identity("edge-01@plant-1", installed.bundle_dir / "clients" / "edge-01@plant-1")
    extra = Identity("edge-01@depot-7", installed.bundle_dir / "clients" / "edge-01@depot-7")
    # The copies the ingest's cloud files point at, not the bundle's originals.
    ingest = Identity("hinode-ingest", installed.config_dir / "mqtt" / "hinode-ingest")
    try:
        for ident in (agent, extra, ingest):
            client = TlsClient(bundle, ident, port).connect()
            client.close()
            assert client.connected.is_set(), f"{ident.username} refused: {client.connack}"
        wrong = TlsClient(bundle, agent, port, password="not-the-password").connect()
        wrong.close()
        assert not wrong.connected.is_set()
        assert wrong.connack in ("Bad user name or password", "Not authorized")
    finally:
        broker.stop()
    acl = (installed.config_dir / "mosquitto" / "acl").read_text()
    for username in ("edge-01@plant-1", "edge-02@plant-1", "kit-01@visits-hitachi", "edge-01@depot-7",
                     "sc-001@hitachi-scooters", "sc-002@hitachi-scooters"):
        assert f"user {username}\n" in acl


def test_generated_cloud_configs_load_and_point_at_the_copied_credentials(installed):
    api = load_cloud_config(installed.config_dir / "cloud.yaml")
    assert api.mqtt.username == "hinode-api" and api.mqtt.password is not None
    assert api.mqtt.tls.cert.read_text().startswith("-----BEGIN CERTIFICATE")
    assert api.influx.personal.database == "hinode_personal" and api.influx.personal.retention == "400d"
    ingest = load_cloud_config(installed.config_dir / "ingest" / "1.yaml", check_domains=False)
    assert ingest.mqtt.username == "hinode-ingest" and ingest.mqtt.share_group == "hinode-ingest"
    assert oct(os.stat(installed.config_dir / "cloud.yaml").st_mode & 0o777) == "0o600"


def test_two_ingest_instances_differ_only_in_client_id_and_metrics_port(installed):
    first = yaml.safe_load((installed.config_dir / "ingest" / "1.yaml").read_text())
    second = yaml.safe_load((installed.config_dir / "ingest" / "2.yaml").read_text())
    assert (first["mqtt"]["client_id"], second["mqtt"]["client_id"]) == ("hinode-ingest-1", "hinode-ingest-2")
    assert (first["ingest"]["metrics_listen"], second["ingest"]["metrics_listen"]) == ("127.0.0.1:9311",
                                                                                      "127.0.0.1:9312")
    for config in (first, second):
        del config["mqtt"]["client_id"], config["ingest"]["metrics_listen"]
    assert first == second
    unit = (installed.units / "hinode-ingest@.service").read_text()
    assert f"--config {installed.config_dir}/ingest/%i.yaml" in unit


def test_databases_and_retention_policies_exist(installed):
    def policies(database: str) -> dict:
        answer = installed.influx.query(f'SHOW RETENTION POLICIES ON "{database}"')
        return {row[0]: (row[1], row[4]) for row in answer["results"][0]["series"][0]["values"]}

    assert policies("hinode")["hinode"] == ("17520h0m0s", True)
    assert policies("hinode_personal")["personal"] == ("9600h0m0s", True)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_files_pass_systemd_analyze_verify(installed, tmp_path):
    # A template is verified through an instance name; the instance file is the template itself.
    shutil.copy(installed.units / "hinode-ingest@.service", tmp_path / "hinode-ingest@1.service")
    units = ("hinode-api.service", "hinode-broker-files.service", "hinode-broker-files.path")
    for unit in units:
        shutil.copy(installed.units / unit, tmp_path / unit)
    for unit in ("hinode-ingest@1.service", *units):
        checked = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True,
                                 timeout=60)
        problems = [line for line in checked.stderr.splitlines() if "hinode" in line]
        assert checked.returncode == 0 and not problems, checked.stderr
    api_unit = (installed.units / "hinode-api.service").read_text()
    # the API writes the enrollment store (state dir) and the broker files in the bundle
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                      f"ReadWritePaths={installed.work / 'var'}\n", f"ReadWritePaths={installed.bundle_dir}\n",
                      "PrivateTmp=yes", "Restart=on-failure", "Type=notify", "WatchdogSec=60"):
        assert hardening in api_unit


def test_grafana_provisioning_has_the_data_source_and_boards(installed):
    datasources = yaml.safe_load((installed.grafana / "datasources" / "hinode.yaml").read_text())
    source = datasources["datasources"][0]
    assert source["url"] == installed.influx.url and source["jsonData"]["dbName"] == "hinode"
    provider = yaml.safe_load((installed.grafana / "dashboards" / "hinode.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(installed.grafana / "dashboards" / "json")
    boards = sorted(p.name for p in (installed.grafana / "dashboards" / "json").glob("*.json"))
    assert len(boards) >= 6 and any(name.endswith("-ja.json") for name in boards)


def accepted(bundle, ident, port) -> bool:
    client = TlsClient(bundle, ident, port).connect()
    client.close()
    return client.connected.is_set()


def run_broker_files_unit(installed, broker) -> None:
    """What hinode-broker-files.service does when its path unit fires (no systemd runs here): its
    install lines as written, then the reload (SIGHUP, as ``systemctl reload mosquitto`` sends)."""
    unit = (installed.units / "hinode-broker-files.service").read_text()
    commands = [line.split("=", 1)[1].split() for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert commands[-1][-2:] == ["reload", "mosquitto"], commands[-1]
    for argv in commands[:-1]:
        assert argv[0] == "/usr/bin/install", argv
        subprocess.run(argv, check=True, timeout=30)
    broker.process.send_signal(signal.SIGHUP)


def test_an_agent_enrolled_after_the_install_connects_and_a_revoked_one_is_refused(installed, tmp_path):
    """The installed pieces together: the API's enroll.yaml (through HINODE_ENROLL_CONFIG), the watcher unit's
    copy-and-reload and Mosquitto's crlfile (a re-run keeping enrolled agents: tests/security/test_broker_files_stable.py)."""
    from cryptography.hazmat.primitives import serialization

    from hinode.security.enroll import EnrollmentService, load_enroll_config
    from tests.security.test_enrollment import key_and_csr

    api_unit = (installed.units / "hinode-api.service").read_text()
    enroll_yaml = installed.config_dir / "enroll.yaml"
    assert f"Environment=HINODE_ENROLL_CONFIG={enroll_yaml}" in api_unit
    config = load_enroll_config(enroll_yaml)
    assert config.bundle == installed.bundle_dir and config.store == installed.work / "var" / "enroll.db"
    conf = installed.broker_conf.read_text()
    assert f"crlfile {installed.config_dir / 'mosquitto' / 'crl.pem'}" in conf
    port = int(re.search(r"^listener (\d+) ", conf, re.M).group(1))
    broker = services.ManagedProcess("mosquitto", [services.find_binary("mosquitto"), "-c", str(installed.broker_conf)],
                                     tmp_path / "mosquitto.log", port)
    broker.start()
    service = EnrollmentService(config)
    try:
        token, _ = service.create_token("depot-9", "edge-77", ttl_s=600)
        key, csr = key_and_csr()
        answer = service.enroll(token, csr)
        directory = tmp_path / "edge-77"
        directory.mkdir()
        (directory / "client.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                                 serialization.PrivateFormat.PKCS8,
                                                                 serialization.NoEncryption()))
        (directory / "client.pem").write_text(answer["certificate"])
        (directory / "password").write_text(answer["password"])
        enrolled = Identity("edge-77@depot-9", directory, "depot-9", "edge-77")
        bundle = installed.bundle()
        assert not accepted(bundle, enrolled, port), "the broker knew the agent before its files were installed"

        run_broker_files_unit(installed, broker)
        wait_until(lambda: accepted(bundle, enrolled, port), timeout=10, what="the enrolled agent accepted")

        service.revoke("depot-9", "edge-77")
        run_broker_files_unit(installed, broker)
        wait_until(lambda: not accepted(bundle, enrolled, port), timeout=10, what="the revoked agent refused")
    finally:
        service.close()
        broker.stop()


def test_the_cloud_rollback_swaps_current_and_previous_and_refuses_without_one(installed):
    """cloud-rollback.yml: no previous version is refused; with one (an older label beside the installed
    version), current and previous swap, and a second run swaps them back."""
    prefix = installed.prefix
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(installed.work / "hosts.yml"), "-e", f"@{installed.work / 'vars.json'}",
            "cloud-rollback.yml"]

    def rollback() -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=ANSIBLE_DIR, env=clean_env(), capture_output=True, text=True, timeout=300)

    installed_version = (prefix / "current").resolve()
    current_link = os.readlink(prefix / "current")
    assert not (prefix / "previous").exists()
    refused = rollback()
    assert refused.returncode != 0 and "previous does not exist: nothing to roll back to" in refused.stdout
    older = prefix / "versions" / "0.0.9"
    older.mkdir()
    (older / "venv").symlink_to(installed_version / "venv")
    (prefix / "previous").symlink_to("versions/0.0.9")

    def pointing() -> tuple[Path, Path]:
        return (prefix / "current").resolve(), (prefix / "previous").resolve()

    try:
        done = rollback()
        assert done.returncode == 0, done.stdout[-4000:]
        assert pointing() == (older, installed_version)
        again = rollback()
        assert again.returncode == 0, again.stdout[-4000:]
        assert pointing() == (installed_version, older)
    finally:
        (prefix / "current").unlink()
        (prefix / "current").symlink_to(current_link)
        (prefix / "previous").unlink()
