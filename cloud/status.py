"""Latest AgentStatus per (site, agent), kept in memory from the retained status topics.

paho runs its network loop in its own thread, so the table is guarded by a lock; the
API reads it through ``snapshot()`` which returns an immutable copy.

With a ``DeviceStatusWriter`` the tracker also stores each device's state, on change only, as the
``device_status`` measurement (tags site, device, agent, kind; fields online, reason, error), so
Grafana's boards can say why a device is offline. Personal kinds (vitals) are never written: a
vitals device is carried by one patient, so its id and online times would say when that patient
was measured, in a database without the personal data's scopes and retention.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from cloud.config import InfluxConfig, MqttConfig
from cloud.influx import InfluxClient, InfluxError, InfluxRejected
from cloud.mqtt_client import JitteredReconnect, new_client
from cloud.points import Point, encode_points
from hinode import contract

log = logging.getLogger(__name__)
RECONNECT_INITIAL_S = 1.0      # the broker is retried after 0.5..1 s, doubling up to 5..10 s (hinode.backoff)
RECONNECT_MAX_S = 10.0
DEVICE_STATUS_MEASUREMENT = "device_status"
DEVICE_STATUS_TEXT_MAX = 200         # characters kept of reason and error (an agent's error may be 512)
DEVICE_STATUS_RETRY_S = 5.0


@dataclass(frozen=True)
class KnownStatus:
    status: contract.AgentStatus
    received_at_ms: int


def _bounded(text: str) -> str:
    return text if len(text) <= DEVICE_STATUS_TEXT_MAX else text[:DEVICE_STATUS_TEXT_MAX - 1] + "…"


def device_status_points(site: str, agent: str, status: contract.AgentStatus | None, known_devices: dict[str, str],
                         received_at_ms: int) -> list[Point]:
    """One ``device_status`` point for the agent itself and for each non-personal device of its status.

    ``status`` None: the retained status was cleared. ``known_devices`` (device -> kind) are the
    agent's devices from earlier statuses: an agent's will lists none, yet its devices are offline too.
    The reason is the API's own (cloud.api.devices.judge_device), from the status alone: the age of
    the data is the board's part (its silent-devices query).
    """
    from cloud.api.devices import judge_device        # cloud.api.devices imports this module

    statuses = {} if status is None else {(site, agent): KnownStatus(status, received_at_ms)}
    states = [] if status is None else [d for d in status.devices if not contract.is_personal(d.kind)]
    listed = {(site, d.device): (statuses[(site, agent)], d) for d in states}
    kinds = {device: kind for device, kind in known_devices.items() if not contract.is_personal(kind)}
    kinds |= {d.device: d.kind.value for d in states}
    kinds[agent] = contract.DeviceKind.AGENT.value
    points = []
    for device, kind in sorted(kinds.items()):
        judged = judge_device(site, device, kind, agent, received_at_ms, statuses, listed, received_at_ms,
                              offline_after_s=1)
        points.append(Point(DEVICE_STATUS_MEASUREMENT, {"site": site, "device": device, "agent": agent, "kind": kind},
                            {"online": bool(judged["online"]), "reason": _bounded(judged["reason"]),
                             "error": _bounded(judged["error"])}, received_at_ms))
    return points


class DeviceStatusWriter:
    """Writes ``device_status`` points to the general database from its own thread, on change only.

    What waits is bounded by the number of devices: a newer state of a device replaces its unwritten
    one. While InfluxDB is away the newest states wait and are retried every DEVICE_STATUS_RETRY_S.
    Each process starts with nothing written, so after a restart every device is written once more.
    """

    def __init__(self, config: InfluxConfig, retry_s: float = DEVICE_STATUS_RETRY_S):
        self._config = config
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pending: dict[tuple[str, str], Point] = {}
        self._written: dict[tuple[str, str], tuple] = {}     # (site, device) -> (agent, kind, fields) last queued
        self._devices: dict[tuple[str, str], dict[str, str]] = {}   # (site, agent) -> device -> kind
        self._thread: threading.Thread | None = None
        self.written_total = 0
        self.failures_total = 0

    def observe(self, site: str, agent: str, status: contract.AgentStatus | None, received_at_ms: int) -> None:
        """Called with every valid status (None: cleared); queues the devices whose state changed."""
        with self._lock:
            known = self._devices.get((site, agent), {})
            points = device_status_points(site, agent, status, known, received_at_ms)
            if status is None:
                self._devices.pop((site, agent), None)
            else:
                self._devices[(site, agent)] = {**known, **{d.device: d.kind.value for d in status.devices}}
            for point in points:
                key = (site, point.tags["device"])
                state = (point.tags["agent"], point.tags["kind"], tuple(point.fields.items()))
                if self._written.get(key) != state:
                    self._written[key] = state
                    self._pending[key] = point
            if self._pending:
                self._wake.set()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="device-status-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after one last try to write what waits."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        with InfluxClient(self._config) as client:
            while True:
                self._wake.wait()
                self._wake.clear()
                with self._lock:
                    batch, self._pending = self._pending, {}
                if batch and not self._write(client, batch):
                    with self._lock:
                        self._pending = batch | self._pending
                    if not self._stopping.is_set():
                        self._stopping.wait(self._retry_s)
                        self._wake.set()
                        continue
                if self._stopping.is_set():
                    return

    def _write(self, client: InfluxClient, batch: dict[tuple[str, str], Point]) -> bool:
        try:
            client.write_lines(encode_points(batch.values()))
        except InfluxRejected as exc:       # would be refused again: dropped, not retried
            self.failures_total += 1
            log.error("device status: InfluxDB %s refused %d points, dropped: %s", client.display_url, len(batch), exc)
            return True
        except InfluxError as exc:
            self.failures_total += 1
            log.warning("device status: %d points not written to InfluxDB %s, retrying in %.0f s: %s",
                        len(batch), client.display_url, self._retry_s, exc)
            return False
        self.written_total += len(batch)
        return True


class StatusTracker:
    """Subscribes (not shared: every API instance needs every status) to STATUS_FILTER at QoS 1."""

    def __init__(self, config: MqttConfig, client_id: str | None = None, *,
                 device_status: DeviceStatusWriter | None = None):
        self._config = config
        self._device_status = device_status
        self.client_id = client_id or f"hinode-api-status-{uuid.uuid4().hex[:10]}"
        self._lock = threading.Lock()
        self._statuses: dict[tuple[str, str], KnownStatus] = {}
        self._connected = threading.Event()
        self._stopping = False
        self.messages_total = 0
        self.invalid_total = 0
        self.connects_total = 0
        self._refused: dict[int, str] = {}
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = new_client(self._config, self.client_id)
        self._reconnect = JitteredReconnect(client, RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting until stop()."""
        log.info("status tracker connecting to %s:%s as %s", self._config.host, self._config.port, self.client_id)
        if self._device_status is not None:
            self._device_status.start()
        self._client.connect_async(self._config.host, self._config.port, keepalive=self._config.keepalive_s,
                                   clean_start=True)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        if self._device_status is not None:
            self._device_status.stop()

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> str | None:
        """Publish at QoS 1 on the cloud's own MQTT identity and wait for the PUBACK.

        None when the broker took it; otherwise why not (not connected, refused, no answer).
        Blocks: call it from a worker thread.
        """
        if not self._connected.is_set():
            return "the API is not connected to the MQTT broker"
        info = self._client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            return f"publish failed: {exc}"
        if not info.is_published():
            return f"the broker did not acknowledge within {timeout:.0f} s"
        refused = self._refused.pop(info.mid, None)
        return f"the broker refused it: {refused}" if refused else None

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def broker_connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect_fail(self, client, userdata) -> None:
        self._reconnect.before_wait(client)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("status tracker: broker refused the connection: %s", reason_code)
            return
        self._reconnect.reset()
        self.connects_total += 1
        client.subscribe(contract.STATUS_FILTER, qos=1)
        self._connected.set()
        log.info("status tracker connected, subscribed to %s", contract.STATUS_FILTER)

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties) -> None:
        self._reconnect.before_wait(client)
        if self._connected.is_set() and not self._stopping:
            log.warning("status tracker lost the broker (%s); reconnecting", reason_code)
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused[mid] = str(reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.messages_total += 1
        parsed = contract.parse_topic(message.topic)
        if parsed is None or parsed[2] != "status":
            self.invalid_total += 1
            return
        site, agent, _ = parsed
        if not message.payload:
            # An empty retained message clears the status: the agent was decommissioned.
            with self._lock:
                self._statuses.pop((site, agent), None)
            if self._device_status is not None:
                self._device_status.observe(site, agent, None, int(time.time() * 1000))
            return
        try:
            status = contract.decode_status(message.payload)
        except contract.ContractError as exc:
            self.invalid_total += 1
            log.warning("status on %s refused: %s", message.topic, exc)
            return
        if (status.site, status.agent) != (site, agent):
            self.invalid_total += 1
            log.warning("status on %s names %s/%s; refused", message.topic, status.site, status.agent)
            return
        received_at_ms = int(time.time() * 1000)
        with self._lock:
            self._statuses[(site, agent)] = KnownStatus(status, received_at_ms)
        if self._device_status is not None:
            self._device_status.observe(site, agent, status, received_at_ms)

    # ------------------------------------------------------------ queries

    def snapshot(self) -> dict[tuple[str, str], KnownStatus]:
        with self._lock:
            return dict(self._statuses)

    def metric_families(self):
        """Prometheus families for the API's /metrics registry (cloud/api/metrics.py)."""
        from hinode.metrics import counter, gauge, labelled_gauge

        statuses = self.snapshot().values()
        online = sum(1 for s in statuses if s.status.state == "online")
        yield gauge("hinode_status_broker_connected", "1 while the status tracker is connected to the broker",
                    int(self.broker_connected))
        yield counter("hinode_status_messages_total", "Agent status messages received", self.messages_total)
        yield counter("hinode_status_invalid_total", "Agent status messages refused (bad topic or payload)",
                      self.invalid_total)
        if self._device_status is not None:
            yield counter("hinode_status_device_points_total", "device_status points written to InfluxDB",
                          self._device_status.written_total)
            yield counter("hinode_status_device_write_failures_total",
                          "Failed writes of device_status points (retried)", self._device_status.failures_total)
        yield labelled_gauge("hinode_status_agents", "Agents with a known status, by state", ("state",),
                             [(("online",), online), (("offline",), len(statuses) - online)])
