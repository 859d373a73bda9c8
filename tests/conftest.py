"""Shared fixtures: a real Mosquitto and a real InfluxDB 1.6 on free loopback ports.

Each test that asks for ``broker`` or ``influx`` gets its own private process with a
temporary data directory; the system services are never touched.
"""

from __future__ import annotations

import pytest

from hinode import services


@pytest.fixture
def broker(tmp_path):
    proc = services.mosquitto(tmp_path / "mosquitto")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def influx(tmp_path):
    proc = services.influxdb(tmp_path / "influxdb")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory):
    """Cloud processes started by tests keep their state (dead letters) here, not in the user's home."""
    import os
    os.environ["HINODE_STATE_DIR"] = str(tmp_path_factory.mktemp("hinode-state"))
    yield


# ``./hinode.sh test`` runs the suite on two workers (pytest-xdist, --dist loadgroup). Tests in one group
# run on the same worker, one after the other:
# - hinode up prefers fixed ports (18830, 18086, ...) when free; two runs at once could both find a port free
#   before either binds it;
# - the installer tests share one wheel built per worker session, and each runs ansible-playbook (CPU-heavy).
_XDIST_GROUPS = {
    "tests/e2e/test_hinode_up": "hinode-up",
    "tests/installers/": "installers",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        for prefix, group in _XDIST_GROUPS.items():
            if path.startswith(prefix):
                item.add_marker(pytest.mark.xdist_group(group))
