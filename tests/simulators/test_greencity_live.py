"""The live green-city publisher (``python -m simulators greencity``) against a real Mosquitto, the real
ingest and InfluxDB: each SME site arrives as its own agent with a counter catalog, and its live
counter continues the backfilled history without a reset."""

from __future__ import annotations

import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import polars as pl
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import InfluxConfig
from cloud.domains.energy import service
from cloud.influx import InfluxClient
from hinode import contract
from hinode.contract import IngestHeartbeat
from hinode.services import free_port
from hinode.up_backfill import backfill
from simulators.greencity import model
from simulators.greencity.live import GreenCityPublisher
from tests.support.collector import Collector
from tests.support.paho_backoff import assert_paho_waits_the_backoff
from tests.support.ingest_process import log_tail, spawn_ingest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def ingest(broker, influx, tmp_path):
    proc = spawn_ingest(broker, influx, tmp_path)
    yield proc
    proc.stop()


def rows(client: InfluxClient, q: str) -> list[dict]:
    try:
        return client.query_rows(q)
    except Exception:       # the database appears with the ingest's first write
        return []


def test_sme_sites_publish_counters_that_continue_the_history(broker, influx, ingest):
    client = InfluxClient(InfluxConfig(url=influx.url))
    client.create_database()
    now = int(time.time() * 1000)
    backfill(client, now - 3 * 3_600_000, now, sites=["sme-plating", "sme-food"])
    sim = subprocess.Popen([sys.executable, "-m", "simulators", "greencity", "--mqtt-port", str(broker.port),
                            "--sites", "sme-plating,sme-food", "--interval", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = sim.stdout.readline()
        assert "green-city publisher: 2 sites" in banner, banner
        live_q = (f'SELECT "energy_import", "power_total", "seq" FROM "meter" WHERE "site" = \'sme-food\' '
                  f'AND time > {now}ms')
        live = wait_until(lambda: len(rows(client, live_q)) >= 3 and rows(client, live_q), timeout=40,
                          what="three live readings of sme-food in InfluxDB", context=lambda: log_tail(ingest))
        catalog = wait_until(lambda: rows(client, 'SELECT "counter", "unit", "agent" FROM "hinode_catalog" '
                                                  'WHERE "site" = \'sme-plating\' AND "metric" = \'energy_import\' '
                                                  f'AND time > {now}ms'), timeout=20, what="the live catalog")
    finally:
        sim.terminate()
        sim.wait(15)
    assert catalog[-1]["counter"] is True and catalog[-1]["unit"] == "kWh"
    assert catalog[-1]["agent"] == "sme-plating-gw"
    for row in live:
        assert row["energy_import"] == pytest.approx(model.import_counter("sme-food", row["time"]), abs=1e-3)
    assert [r["seq"] for r in live] == sorted(r["seq"] for r in live)
    # the backfilled readings and the live ones are one counter: no reset, and the interval that
    # bridges them uses what the model says for that time (not a jump)
    history = rows(client, 'SELECT "energy_import" FROM "meter" WHERE "site" = \'sme-food\' ORDER BY time')
    frame = pl.DataFrame({"ts": [r["time"] for r in history], "value": [r["energy_import"] for r in history]},
                         schema=service.READINGS_SCHEMA)
    intervals = service.consumption(frame)
    assert intervals["event"].is_null().all()
    bridge = intervals.filter(pl.col("end_ts") > now).row(0, named=True)
    expected = model.import_counter("sme-food", bridge["end_ts"]) - model.import_counter("sme-food", bridge["start_ts"])
    assert bridge["consumption"] == pytest.approx(expected, abs=1e-3)
    assert 0 < bridge["consumption"] < 100     # at most half an hour of a ~90 kW plant
    client.close()


def test_a_site_that_cannot_reach_the_broker_waits_the_helpers_jittered_delays():
    (agent,) = GreenCityPublisher(port=free_port(), sites=("sme-food",)).agents      # nobody listens there
    assert_paho_waits_the_backoff(agent.client, agent.reconnect, agent.start, agent.stop)


def test_an_envelope_the_broker_handed_to_nobody_is_sent_again_once_an_ingest_is_heard(broker):
    """PUBACK 0x10 ("no matching subscribers") is a success to paho; the envelope must not count as sent."""
    (agent,) = GreenCityPublisher(port=broker.port, sites=("sme-food",)).agents
    heart = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="heartbeat-only", protocol=mqtt.MQTTv5)
    heart.connect("127.0.0.1", broker.port)
    heart.loop_start()

    def beat() -> None:
        heart.publish(contract.INGEST_HEARTBEAT_TOPIC, contract.encode(
            IngestHeartbeat(ingest="test", ts=int(time.time() * 1000)))).wait_for_publish(5)

    agent.start()
    collector = None
    try:
        wait_until(lambda: agent.client.is_connected(), "the site connected", timeout=10)
        wait_until(lambda: (beat(), agent.ingest_listening())[1], "the heartbeat heard", timeout=10)
        first = agent.measure(int(time.time() * 1000)).seq
        agent.tick(int(time.time() * 1000))          # nobody subscribes to telemetry yet
        wait_until(lambda: agent.unrouted >= 1, "the broker's 'no matching subscribers'", timeout=10)
        assert not agent.ingest_listening(), "publishing stops until an ingest is heard again"
        collector = Collector(broker.port)           # a subscriber now: what waited goes out with the next tick

        def delivered() -> bool:
            beat()
            if agent.ingest_listening():
                agent.tick(int(time.time() * 1000))
            with collector.lock:
                return first in collector.seqs[agent.device.device]

        wait_until(delivered, "the unrouted envelope delivered", timeout=15, interval=0.2)
    finally:
        agent.stop()
        heart.loop_stop()
        heart.disconnect()
        if collector is not None:
            collector.close()
