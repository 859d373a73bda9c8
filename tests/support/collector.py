"""A plain paho subscriber that records every telemetry envelope it receives.

Persistent session (clean_start=False, session expiry) so the broker keeps what
arrives while the collector reconnects after a broker restart.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from hinode import contract
from tests.support.waiting import wait_until


class Collector:
    def __init__(self, port: int, topic_filter: str = contract.TELEMETRY_FILTER):
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.envelopes: list[dict] = []
        self.statuses: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"collector-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(topic_filter, 1), (contract.STATUS_FILTER, 1)])
        self.client.reconnect_delay_set(0.1, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        data = json.loads(msg.payload)
        with self.lock:
            if msg.topic.endswith("/status"):
                self.statuses[f"{data['site']}/{data['agent']}"] = data
                return
            self.envelopes.append(data)
            self.seqs[data["device"]].append(data["seq"])

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition") -> None:
        def holds():
            with self.lock:
                return predicate(self)

        def summary() -> str:
            with self.lock:
                per_device = {d: (len(s), max(s) if s else None) for d, s in self.seqs.items()}
            return f"; received (count, max seq) per device: {per_device}"

        wait_until(holds, what, timeout=timeout, context=summary)

    def missing(self, device: str, upto: int) -> list[int]:
        with self.lock:
            return sorted(set(range(1, upto + 1)) - set(self.seqs[device]))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
