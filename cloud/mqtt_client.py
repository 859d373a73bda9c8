"""The cloud's own paho clients (status tracker, dead-letter collector): one way to build them.

``new_client`` applies cloud.yaml's credentials and TLS. ``JitteredReconnect`` drives paho's own
reconnect loop with :class:`hinode.backoff.Backoff`: paho has no hook for a jittered delay, but it
reads the delay it was last given right before each wait, and ``on_connect_fail`` /
``on_disconnect`` run on its thread just before that wait, so setting min = max = the helper's
next delay there makes paho wait exactly that.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import MqttConfig
from hinode.backoff import Backoff


def new_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """An MQTT 5 paho client with the cloud's username/password and TLS (no callbacks yet)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if config.username:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    tls = config.tls
    if tls is not None:
        client.tls_set(ca_certs=str(tls.ca) if tls.ca else None, certfile=str(tls.cert) if tls.cert else None,
                       keyfile=str(tls.key) if tls.key else None,
                       cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED)
        client.tls_insecure_set(tls.insecure)
    return client


class JitteredReconnect:
    """Call ``before_wait`` from ``on_connect_fail`` and ``on_disconnect``, ``reset`` on a connect."""

    def __init__(self, client: mqtt.Client, initial_s: float, max_s: float):
        self.backoff = Backoff(initial_s, max_s)
        client.reconnect_delay_set(min_delay=initial_s, max_delay=max_s)

    def before_wait(self, client: mqtt.Client) -> None:
        delay = self.backoff.next()
        client.reconnect_delay_set(min_delay=delay, max_delay=delay)

    def reset(self) -> None:
        self.backoff.reset()
