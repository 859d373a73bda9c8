"""The cloud's own paho clients (status tracker, dead-letter collector): one way to build them.

``new_client`` applies cloud.yaml's credentials and TLS. ``JitteredReconnect`` (hinode.backoff's
``PahoReconnect``) drives paho's own reconnect loop with jittered delays.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import MqttConfig
from hinode.backoff import PahoReconnect as JitteredReconnect

__all__ = ["JitteredReconnect", "new_client"]


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
