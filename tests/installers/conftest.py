"""Shared by the installer tests: a wheel of this checkout (built once per session, like a release
would be) and the Ansible tools from the project's virtualenv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
PACKAGES = ("hinode", "edge_agent", "cloud", "simulators", "device_profiles", "dashboards")
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)", re.MULTILINE)


def venv_tool(name: str) -> str:
    tool = Path(sys.executable).parent / name
    if not tool.exists():
        pytest.skip(f"{name} is not installed in {tool.parent} (uv pip install ansible-core ansible-lint)")
    return str(tool)


def find_uv() -> str:
    uv = ROOT / ".tools" / "bin" / "uv"
    found = str(uv) if uv.exists() else shutil.which("uv")
    assert found, "uv is needed: neither .tools/bin/uv nor uv on PATH"
    return found


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without this venv's Python settings, Ansible's temp dirs under tmp."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"),
               ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-remote"), ANSIBLE_HOME=str(tmp / "ansible-home"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.update(extra)
    return env


def play_recap(output: str, host: str = "localhost") -> dict[str, int]:
    """The PLAY RECAP counters of one host; AssertionError with the output when there is none."""
    for found in RECAP.finditer(output):
        if found["host"] == host:
            return {k: int(v) for k, v in found.groupdict().items() if k != "host"}
    raise AssertionError(f"no PLAY RECAP line for {host} in:\n{output[-4000:]}")


class Installers:
    """What the installer tests share, handed out by the ``installers`` fixture (conftest is not importable)."""

    root = ROOT
    ansible_dir = ANSIBLE_DIR
    venv_tool = staticmethod(venv_tool)
    find_uv = staticmethod(find_uv)
    clean_env = staticmethod(clean_env)
    play_recap = staticmethod(play_recap)


@pytest.fixture(scope="session")
def installers() -> type[Installers]:
    return Installers


@pytest.fixture(scope="session")
def hinode_wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built from a copy (building in the shared checkout would leave build/ there)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = work / "dist"
    built = subprocess.run([find_uv(), "build", "--wheel", "--quiet", "--out-dir", str(out), str(source)],
                           cwd=work, env=clean_env(work), capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]
