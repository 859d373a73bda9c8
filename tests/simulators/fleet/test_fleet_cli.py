"""``python -m simulators fleet`` as a process: its banner, the real ingest storing what the vehicles send
in InfluxDB, its GBFS feed, and a clean exit 0 on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from tests.support.ingest_process import log_tail, spawn_ingest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ingest(broker, influx, tmp_path):
    proc = spawn_ingest(broker, influx, tmp_path)
    yield proc
    proc.stop()


def start(*args: str) -> tuple[subprocess.Popen, str]:
    sim = subprocess.Popen([sys.executable, "-m", "simulators", "fleet", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    return sim, sim.stdout.readline()


def rows(client: InfluxClient, q: str) -> list[dict]:
    try:
        return client.query_rows(q)
    except Exception:       # the database appears with the ingest's first write
        return []


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_the_vehicles_reach_influxdb_through_the_ingest_and_the_gbfs_feed_is_served(broker, influx, ingest,
                                                                                   stop_with):
    sim, banner = start("--mqtt-port", str(broker.port), "--scooters", "3", "--slow", "1", "--interval", "0.5",
                        "--gbfs-port", "0", "--gbfs-version", "2.3", "--seed", "4")
    try:
        assert "fleet simulator: hitachi-scooters with 4 vehicles" in banner, banner
        assert f"MQTT 127.0.0.1:{broker.port}" in banner
        url = re.search(r"GBFS 2\.3 at (\S+)", banner).group(1)
        with urllib.request.urlopen(url, timeout=5) as response:
            discovery = json.loads(response.read())
        assert discovery["version"] == "2.3" and "free_bike_status" in {f["name"] for f in
                                                                       discovery["data"]["ja"]["feeds"]}
        client = InfluxClient(InfluxConfig(url=influx.url))
        query = ('SELECT "lat", "lon", "speed", "battery", "state" FROM "vehicle" '
                 'GROUP BY "agent", "vehicle_type", "fleet"')
        stored = wait_until(lambda: len(found := rows(client, query)) and
                            len({r.get("agent") for r in found}) == 4 and found,
                            timeout=60, what="positions of all four vehicles in InfluxDB",
                            context=lambda: log_tail(ingest))
        client.close()
    finally:
        sim.send_signal(stop_with)
        rc = sim.wait(20)
    assert rc == 0, sim.stdout.read()
    assert {r["agent"] for r in stored} == {"sc-001", "sc-002", "sc-003", "sm-001"}
    for r in stored:
        assert r["fleet"] == "hitachi-scooters"
        assert r["vehicle_type"] == ("slowmobility" if r["agent"].startswith("sm-") else "escooter")
        assert 36.4 < r["lat"] < 36.7 and 140.5 < r["lon"] < 140.8


def test_a_bad_option_is_named_and_exits_2():
    done = subprocess.run([sys.executable, "-m", "simulators", "fleet", "--gbfs-port", "0", "--interval", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--interval" in done.stderr
    done = subprocess.run([sys.executable, "-m", "simulators", "fleet"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--mqtt-port" in done.stderr
