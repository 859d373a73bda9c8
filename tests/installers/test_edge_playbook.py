"""The edge playbook run against this machine into a throwaway prefix: the closest honest stand-in
for a Raspberry Pi here (no user is created and systemd is not asked to start anything; the unit
is still written and checked with ``systemd-analyze verify``).

One prefix per module: the first install (run twice) is shared, the tests after it each check one
thing an installer relies on. Update and rollback come last as they move ``current``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hinode.services import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
             "Restart=on-failure", "RestartSec=", "StartLimitIntervalSec=", "StartLimitBurst=",
             "StandardOutput=journal", "CapabilityBoundingSet=",
             # a hang is restarted like a crash: the agent feeds the watchdog (tests/edge/test_sdnotify.py)
             "Type=notify", "NotifyAccess=main", "WatchdogSec=60")


def changed_tasks(output: str) -> list[str]:
    """The names of the tasks that reported ``changed`` in an ansible-playbook run."""
    changed, task = [], None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:"):
            changed.append(task)
    return changed


class Site:
    """A throwaway install: its paths, its inventory and a way to run a playbook against it."""

    def __init__(self, root: Path, wheel: Path, installers):
        self.root, self.installers = root, installers
        self.prefix, self.config_dir, self.state_dir = root / "opt", root / "etc", root / "var"
        self.systemd_dir = root / "systemd"
        self.systemd_dir.mkdir(parents=True)
        self.inventory = root / "inventory.yml"
        self.inventory.write_text(json.dumps({"edge": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
        self.vars = {
            "hinode_become": False, "hinode_manage_user": False, "hinode_manage_systemd": False,
            "hinode_use_uv": True, "hinode_uv": installers.find_uv(), "hinode_python": sys.executable,
            "hinode_wheel": str(wheel), "hinode_version": "1.0.0",
            "hinode_prefix": str(self.prefix), "hinode_config_dir": str(self.config_dir),
            "hinode_state_dir": str(self.state_dir), "hinode_systemd_dir": str(self.systemd_dir),
            "hinode_site": "plant-a", "hinode_agent": "edge-01",
            "hinode_mqtt": {"host": "127.0.0.1", "port": 1883},
            "hinode_mqtt_password": "not-for-the-logs",
            "hinode_metrics_listen": "127.0.0.1:9108",
            "hinode_sources": [{"type": "synthetic", "name": "synth", "devices": [{"id": "synth-01"}]}],
        }

    def play(self, playbook: str, **overrides) -> subprocess.CompletedProcess:
        extra = self.root / f"vars-{os.urandom(4).hex()}.json"
        extra.write_text(json.dumps({**self.vars, **overrides}))
        return subprocess.run(
            [self.installers.venv_tool("ansible-playbook"), "-i", str(self.inventory), "-e", f"@{extra}", playbook],
            cwd=self.installers.ansible_dir, env=self.installers.clean_env(self.root),
            capture_output=True, text=True, timeout=300)

    def install(self, **overrides) -> dict[str, int]:
        done = self.play("edge.yml", **overrides)
        recap = self.installers.play_recap(done.stdout)
        assert done.returncode == 0 and recap["failed"] == 0, done.stdout[-6000:] + done.stderr[-2000:]
        recap["changed_tasks"] = changed_tasks(done.stdout)
        return recap

    @property
    def current(self) -> Path:
        return self.prefix / "current"


@pytest.fixture(scope="module")
def site(tmp_path_factory, hinode_wheel, installers):
    installed = Site(tmp_path_factory.mktemp("edge-site"), hinode_wheel, installers)
    installed.first_recap = installed.install()
    installed.second_recap = installed.install()
    return installed


def test_a_second_run_changes_nothing(site):
    assert site.first_recap["changed"] > 0
    assert site.second_recap["changed"] == 0, f"changed on the second run: {site.second_recap['changed_tasks']}"


def test_the_layout_is_versioned_and_secrets_are_private(site):
    assert os.readlink(site.current) == "versions/1.0.0"
    assert not (site.prefix / "previous").exists()
    password = site.config_dir / "mqtt-password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert stat.S_IMODE(site.config_dir.stat().st_mode) == 0o750
    config = (site.config_dir / "site.yaml").read_text()
    assert f"password_file: {password}" in config and "not-for-the-logs" not in config
    assert f"path: {site.state_dir}/outbox.db" in config
    python = site.current / "venv" / "bin" / "python"
    absent = subprocess.run([str(python), "-c", "import fastapi"], capture_output=True, text=True)
    assert "ModuleNotFoundError" in absent.stderr, "a cloud package is in the edge install"


def test_a_rollback_without_a_previous_version_is_refused(site):
    refused = site.play("edge-rollback.yml")
    assert refused.returncode != 0
    assert "previous does not exist: nothing to roll back to" in refused.stdout, refused.stdout[-3000:]
    assert os.readlink(site.current) == "versions/1.0.0"


def test_the_installed_config_passes_check_config(site):
    checked = subprocess.run([str(site.current / "venv/bin/python"), "-m", "edge_agent", "check-config",
                              str(site.config_dir / "site.yaml")], capture_output=True, text=True, cwd=site.root)
    assert checked.returncode == 0, checked.stderr
    assert "OK: site plant-a, agent edge-01, 1 sources, 1 devices" in checked.stdout


def test_the_unit_is_hardened_and_passes_systemd_analyze_verify(site):
    unit = site.systemd_dir / "hinode-agent.service"
    text = unit.read_text()
    for directive in HARDENING:
        assert directive in text, f"{directive} missing from the unit"
    assert f"ReadWritePaths={site.state_dir}" in text
    assert f"ExecStart={site.current}/venv/bin/python -m edge_agent run --config {site.config_dir}/site.yaml" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on this machine")
    verified = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    complaints = [line for line in verified.stderr.splitlines() if "hinode-agent" in line]
    assert verified.returncode == 0 and not complaints, verified.stderr


def test_a_bad_site_config_is_refused_and_the_previous_one_stays(site):
    before = (site.config_dir / "site.yaml").read_text()
    refused = site.play("edge.yml", hinode_sources=[
        {"type": "synthetic", "name": "synth", "devices": [{"id": "synth-01"}], "poll_every": 3}])
    assert refused.returncode != 0
    assert site.installers.play_recap(refused.stdout)["failed"] == 1
    assert "failed to validate" in refused.stdout and "poll_every" in refused.stdout, refused.stdout[-4000:]
    assert (site.config_dir / "site.yaml").read_text() == before


def test_the_example_inventory_renders_site_configs_that_pass_check_config(site, tmp_path):
    """The factory, charging and nurse's-kit hosts of inventories/example, installed locally: each
    host's site.yaml passes the installed check-config (the play's ``validate:``)."""
    hosts = ("factory-omika-01", "charging-depot-01", "nurse-kit-01")
    for host in hosts:               # reuse the installed venv instead of installing it three times
        version = tmp_path / host / "opt" / "versions" / "1.0.0"
        version.mkdir(parents=True)      # its own: each version keeps its host's site.yaml
        (version / "venv").symlink_to(site.prefix / "versions" / "1.0.0" / "venv")
    per_host = str(tmp_path) + "/{{ inventory_hostname }}"
    overrides = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "hinode_become": False, "hinode_manage_user": False, "hinode_manage_systemd": False,
        "hinode_version": "1.0.0", "hinode_wheel": "", "hinode_mqtt_tls_files": {},
        "hinode_prefix": per_host + "/opt", "hinode_config_dir": per_host + "/etc",
        "hinode_state_dir": per_host + "/var", "hinode_systemd_dir": per_host,
    }
    extra = tmp_path / "overrides.json"
    extra.write_text(json.dumps(overrides))
    done = subprocess.run([site.installers.venv_tool("ansible-playbook"), "-i", "inventories/example/hosts.yml",
                           "-l", "edge", "-e", f"@{extra}", "edge.yml"], cwd=site.installers.ansible_dir,
                          env=site.installers.clean_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    for host in hosts:
        assert site.installers.play_recap(done.stdout, host)["failed"] == 0
        rendered = (tmp_path / host / "etc" / "site.yaml").read_text()
        assert "sources:" in rendered and f"{tmp_path / host / 'var'}/outbox.db" in rendered
    assert "type: modbus" in (tmp_path / "factory-omika-01" / "etc" / "site.yaml").read_text()
    assert "transport: rtu" in (tmp_path / "factory-omika-01" / "etc" / "site.yaml").read_text()
    assert "type: ocpp" in (tmp_path / "charging-depot-01" / "etc" / "site.yaml").read_text()
    assert "type: ble" in (tmp_path / "nurse-kit-01" / "etc" / "site.yaml").read_text()
    unit = (tmp_path / "factory-omika-01" / "hinode-agent.service").read_text()
    assert "DeviceAllow=char-ttyUSB rw" in unit and "PrivateDevices" not in unit


def start_agent(site, broker, tmp_path) -> tuple[subprocess.Popen, int]:
    """The installed agent from ``current``, with the installed site config pointed at a real broker."""
    metrics_port = free_port()
    config = (site.config_dir / "site.yaml").read_text()
    config = config.replace("port: 1883", f"port: {broker.port}").replace("127.0.0.1:9108", f"127.0.0.1:{metrics_port}")
    config = config.replace(str(site.state_dir), str(tmp_path))
    (tmp_path / "site.yaml").write_text(config)
    agent = subprocess.Popen([str(site.current / "venv/bin/python"), "-m", "edge_agent", "run",
                              "--config", str(tmp_path / "site.yaml")], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return agent, metrics_port


def agent_starts_and_stops(site, broker, tmp_path) -> str:
    """The agent serves /metrics with a connected MQTT client, then stops cleanly on SIGTERM."""
    agent, port = start_agent(site, broker, tmp_path)
    try:
        def connected_metrics():
            assert agent.poll() is None, f"the agent exited with {agent.returncode}"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                body = answer.read().decode()
            return body if re.search(r"^hinode_agent_mqtt_connected 1(\.0)?$", body, re.MULTILINE) else None
        metrics = wait_until(connected_metrics, "the installed agent's /metrics showing MQTT connected", timeout=30)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0, agent.stdout.read()[-3000:]
        return metrics
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_the_installed_agent_starts_against_a_real_broker_and_stops(site, broker, tmp_path):
    agent_starts_and_stops(site, broker, tmp_path)


def test_update_then_rollback_leaves_the_first_version_running_with_its_config(site, broker, tmp_path):
    updated = site.install(hinode_version="2.0.0", hinode_sources=[
        {"type": "synthetic", "name": "synth", "devices": [{"id": "synth-01"}, {"id": "synth-02"}]}])
    assert updated["changed"] > 0
    assert os.readlink(site.current) == "versions/2.0.0"
    assert os.readlink(site.prefix / "previous") == "versions/1.0.0"
    assert (site.prefix / "versions/1.0.0/venv/bin/python").exists(), "the previous version was not kept"
    assert "synth-02" in (site.config_dir / "site.yaml").read_text()

    rolled = site.play("edge-rollback.yml")
    assert rolled.returncode == 0, rolled.stdout[-4000:]
    assert os.readlink(site.current) == "versions/1.0.0"
    assert os.readlink(site.prefix / "previous") == "versions/2.0.0"
    assert "synth-02" not in (site.config_dir / "site.yaml").read_text(), "the rollback kept the new config"
    agent_starts_and_stops(site, broker, tmp_path)


def test_only_the_newest_versions_are_kept(site):
    site.install(hinode_version="3.0.0")
    kept = sorted(path.name for path in (site.prefix / "versions").iterdir())
    assert os.readlink(site.current) == "versions/3.0.0"
    assert kept == ["1.0.0", "3.0.0"], kept
