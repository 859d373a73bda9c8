"""Helpers for the ingest tests (no tests here): config, a publisher, a dead-letter listener."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from cloud.config import CloudConfig, InfluxConfig
from cloud.influx import InfluxClient, InfluxQueryError
from cloud.ingest import IngestService
from hinode import contract
from tests.support import waiting
from hinode.contract import Reading, TelemetryEnvelope


def ingest_config(broker, influx, client_id: str = "ingest-test-1", mqtt_options: dict | None = None,
                  influx_options: dict | None = None, **ingest) -> CloudConfig:
    return CloudConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": client_id, "keepalive_s": 5,
                 **(mqtt_options or {})},
        "influx": {"url": influx.url, "database": "hinode", "timeout_s": 2, **(influx_options or {})},
        # metrics_listen: any free port, for configs written out for `python -m cloud.ingest` processes
        "ingest": {"batch_max_ms": 50, "retry_initial_s": 0.1, "retry_max_s": 0.5, "metrics_listen": "127.0.0.1:0",
                   **ingest},
    })


@contextlib.contextmanager
def running_ingest(config: CloudConfig, stop_timeout: float = 5.0):
    service = IngestService(config)
    service.start()
    try:
        assert service.wait_ready(10), "ingest did not connect and subscribe"
        yield service
    finally:
        service.stop(stop_timeout)


def wait_until(predicate, timeout: float, message: str = "condition", interval: float = 0.05):
    return waiting.wait_until(predicate, message, timeout, interval)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# One point per (device, ts): envelopes of one device need distinct timestamps, as from a real meter.
BASE_TS = now_ms() - 3_600_000


def meter_envelope(seq: int, device: str = "pm-1", site: str = "plant-a", agent: str = "edge-1",
                   ts: int | None = None) -> TelemetryEnvelope:
    ts = BASE_TS + seq * 1000 if ts is None else ts
    return TelemetryEnvelope(site=site, agent=agent, device=device, kind="meter", profile="hinode-sim-meter",
                             seq=seq, readings=[Reading(ts=ts, metric="power_w", value=1000 + seq, unit="W"),
                                                Reading(ts=ts, metric="energy_wh", value=50_000 + seq, unit="Wh")])


class Publisher:
    """A plain paho MQTT 5 client publishing at QoS 1, as an edge agent would."""

    def __init__(self, broker):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def envelope(self, env: TelemetryEnvelope) -> mqtt.MQTTMessageInfo:
        return self.raw(contract.telemetry_topic_for(env.site, env.agent, env.kind), contract.encode(env))

    def raw(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class DeadLetterListener:
    """Subscribes to every dead-letter topic and collects (topic, DeadLetter)."""

    def __init__(self, broker):
        self.letters: list[tuple[str, contract.DeadLetter]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dl-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe(contract.DEAD_LETTER_FILTER, qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(5), "dead-letter listener did not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.letters.append((msg.topic, contract.DeadLetter.model_validate_json(msg.payload)))

    def snapshot(self) -> list[tuple[str, contract.DeadLetter]]:
        with self._lock:
            return list(self.letters)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def distinct_seqs(influx, measurement: str = "meter", database: str = "hinode") -> dict[str, int]:
    """device -> count(distinct(seq)) as stored, read with the ingest's own client."""
    with InfluxClient(InfluxConfig(url=influx.url, database=database)) as client:
        try:
            series = client.query(f'SELECT count(distinct(seq)) FROM "{measurement}" GROUP BY device')
        except InfluxQueryError:  # the ingest has not created the database yet
            return {}
    return {s["tags"]["device"]: s["values"][0][1] for s in series}
