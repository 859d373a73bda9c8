"""A Raspberry Pi installs ``hinode-iot[edge]`` and nothing else: in a fresh virtualenv with only
that extra, the agent checks a site config using every edge source type and imports its whole
runtime, and no cloud package (polars, fastapi, httpx, ...) is there to hide a missing import.

Slow (marked ``slow``; about a minute with a cold uv cache, seconds with a warm one): builds a
virtualenv and a wheel of this checkout and installs from the registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hinode.security import api_secrets

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hinode", "edge_agent", "cloud", "simulators", "device_profiles")

SITE_YAML = """\
site: plant-a
agent: edge-01
mqtt: {host: 127.0.0.1, port: 1883}
queue: {path: ./outbox.db, max_bytes: 64MiB}
sources:
  - {type: modbus, name: hall-a, transport: tcp, host: 127.0.0.1, port: 5020,
     devices: [{id: hall-a-main, unit: 1, profile: eastron-sdm630}]}
  - {type: sunspec, name: rooftop-pv, transport: tcp, host: 127.0.0.1, port: 5021, devices: [{id: pv-meter-1, unit: 1}]}
  - {type: opcua, name: line-3-plc, endpoint: "opc.tcp://127.0.0.1:4840/",
     devices: [{id: line3-energy, profile: hinode-sim-meter-opcua, node_name: Meter01}]}
  - {type: synthetic, name: synth, devices: [{id: synth-01}]}
  - {type: ocpp, name: chargers, port: 9000, security_profile: 0, chargers: [{id: CP01}],
     controller: {grid_meter: {device: hall-a-main}}}
  - {type: ble, name: visit-kit, kit: kit-01, stack: bumble, hci: "usb:0",
     devices: [{id: bp-cuff-1, category: blood_pressure, address: "F0:12:34:56:78:9A"}],
     page: {listen: "127.0.0.1:8088", schedule_file: visits.yaml,
            nurses: [{id: n-01, name: Sato, pin_hash: "%s"}]}}
""" % api_secrets.hash_password("123456")

RUNTIME_IMPORTS = """\
import edge_agent.agent, edge_agent.__main__
import edge_agent.sources.ocpp.v16, edge_agent.sources.ocpp.v201, edge_agent.sources.sunspec.definitions
import edge_agent.sources.ble.link_bumble, edge_agent.sources.ble.page, bumble.transport, bleak, aiohttp
import edge_agent.sources.gbfs.source
from importlib.resources import files
assert files("edge_agent.sources.ble").joinpath("page", "nurse.html").is_file(), "the nurse's page is not installed"
assert files("device_profiles").joinpath("ble", "passkey-cuff.yaml").is_file(), "the BLE models are not installed"
from edge_agent.config import available_source_types, source_plugin
print(sorted(type_name for type_name in available_source_types() if source_plugin(type_name)))
"""


def find_uv() -> str:
    uv = ROOT / ".tools" / "bin" / "uv"
    found = str(uv) if uv.exists() else shutil.which("uv")
    assert found, "uv is needed to build the edge-only virtualenv: neither .tools/bin/uv nor uv on PATH"
    return found


def run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_agent_runs_from_an_install_with_only_the_edge_extra(tmp_path):
    # A copy of what the wheel is built from: building in the shared checkout would leave build/ there.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run([find_uv(), "pip", "install", "--python", str(python), f"{source}[edge]"], tmp_path, timeout=480)
    assert installed.returncode == 0, installed.stderr

    work = tmp_path / "site"                       # not the checkout: imports come from the install
    work.mkdir()
    (work / "site.yaml").write_text(SITE_YAML)
    (work / "visits.yaml").write_text("visits: []\n")
    checked = run([str(python), "-m", "edge_agent", "check-config", "site.yaml"], work)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK: site plant-a, agent edge-01, 6 sources, 6 devices" in checked.stdout

    runtime = run([str(python), "-c", RUNTIME_IMPORTS], work)
    assert runtime.returncode == 0, runtime.stderr
    assert runtime.stdout.split() == ["['ble',", "'gbfs',", "'modbus',", "'ocpp',", "'opcua',", "'sunspec',", "'synthetic']"]

    for cloud_only in ("polars", "fastapi", "httpx", "uvicorn", "influxdb_client"):
        absent = run([str(python), "-c", f"import {cloud_only}"], work)
        assert absent.returncode != 0 and "ModuleNotFoundError" in absent.stderr, f"{cloud_only} is installed"
