"""Shared fixtures: a real Mosquitto and a real InfluxDB 1.6 on free loopback ports.

Each test that asks for ``broker`` or ``influx`` gets its own private process with a
temporary data directory; the system services are never touched.
"""

from __future__ import annotations

import pytest

from hinode import services


def pytest_configure(config):
    """Each xdist worker (and what it starts) picks free ports from its own slice of the range: a port
    one worker picked and has not bound yet cannot be picked by the other (hinode up binds some late)."""
    worker = getattr(config, "workerinput", None)
    if worker is None:
        return
    import os
    low, high = services.port_range()
    count, index = int(worker["workercount"]), int(worker["workerid"].removeprefix("gw"))
    width = (high - low) // count
    os.environ[services.PORT_RANGE_ENV] = f"{low + index * width}-{low + (index + 1) * width}"


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

