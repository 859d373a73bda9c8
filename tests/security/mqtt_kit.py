"""Helpers for the TLS/ACL tests: a generated credentials bundle and paho clients that use it."""

from __future__ import annotations

import ssl
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hinode.security.bundle import Bundle, Identity


class TlsClient:
    """An MQTT 5 client over TLS as one identity; records messages, SUBACKs and PUBACK reasons."""

    def __init__(self, bundle: Bundle, ident: Identity, port: int, password: str | None = None,
                 tls: bool = True, client_cert: bool = True):
        self.messages: list[tuple[str, bytes]] = []
        self.connack: str | None = None
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(ident.username, ident.password() if password is None else password)
        if tls:
            self.client.tls_set(ca_certs=str(bundle.ca_cert), certfile=str(ident.cert) if client_cert else None,
                                keyfile=str(ident.key) if client_cert else None, cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda c, u, flags, reason, p: self.answered.set()
        self.client.on_connect_fail = lambda c, u: self.answered.set()
        self.port = port

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.connack = str(reason)
        self.answered.set()
        if not reason.is_failure:
            self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def connect(self, timeout: float = 5.0) -> "TlsClient":
        """Connect and wait for the CONNACK; raises OSError/SSLError when the transport is refused."""
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        self.answered.wait(timeout)
        return self

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, reasons, p: done.set()
        self.client.subscribe(topic_filter, qos=1)
        assert done.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> str:
        """Publish at QoS 1 and return the PUBACK reason as paho names it."""
        reasons: list[str] = []
        done = threading.Event()

        def on_publish(client, userdata, mid, reason, properties):
            reasons.append(str(reason))
            done.set()

        self.client.on_publish = on_publish
        self.client.publish(topic, payload, qos=1)
        assert done.wait(5), "no PUBACK"
        return reasons[0]

    def received(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settle(seconds: float = 0.5) -> None:
    """Time for the broker to route what it accepted (delivery on loopback takes milliseconds)."""
    time.sleep(seconds)
