"""Latest AgentStatus per (site, agent), kept in memory from the retained status topics.

paho runs its network loop in its own thread, so the table is guarded by a lock; the
API reads it through ``snapshot()`` which returns an immutable copy.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from cloud.config import MqttConfig
from cloud.mqtt_client import JitteredReconnect, new_client
from hinode import contract

log = logging.getLogger(__name__)
RECONNECT_INITIAL_S = 1.0      # the broker is retried after 0.5..1 s, doubling up to 5..10 s (hinode.backoff)
RECONNECT_MAX_S = 10.0


@dataclass(frozen=True)
class KnownStatus:
    status: contract.AgentStatus
    received_at_ms: int


class StatusTracker:
    """Subscribes (not shared: every API instance needs every status) to STATUS_FILTER at QoS 1."""

    def __init__(self, config: MqttConfig, client_id: str | None = None):
        self._config = config
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
        self._client.connect_async(self._config.host, self._config.port, keepalive=self._config.keepalive_s,
                                   clean_start=True)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

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
        with self._lock:
            self._statuses[(site, agent)] = KnownStatus(status, int(time.time() * 1000))

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
        yield labelled_gauge("hinode_status_agents", "Agents with a known status, by state", ("state",),
                             [(("online",), online), (("offline",), len(statuses) - online)])
