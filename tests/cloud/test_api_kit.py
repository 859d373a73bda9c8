"""Helpers for the API, board and status tests (no tests here).

The app runs in a real uvicorn on a free port (in a thread), InfluxDB gets line protocol
the way the ingest writes it, and agent statuses are retained messages on the real broker.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import httpx
import paho.mqtt.client as mqtt
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract, services
from tests.support.waiting import wait_until


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """True once ``predicate`` is; a not-yet answer (a null count, a missing key) is not an error."""
    try:
        return bool(wait_until(predicate, "condition", timeout=timeout))
    except AssertionError:
        return False


def get_json(client, path, **params):
    """GET ``path`` on an httpx client; asserts 200 and returns the JSON."""
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@contextlib.contextmanager
def serve_app(app) -> Iterator[str]:
    """Run ``app`` (lifespan included) in uvicorn on a free loopback port; yields its base URL."""
    port = services.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def app_on_influx(workdir, lines: list[str], config: dict) -> Iterator[tuple[str, object]]:
    """A private InfluxDB in ``workdir`` holding ``lines``, and the API built from ``config`` (a cloud
    config without its ``influx`` section) served on it; yields (base URL, the InfluxDB service)."""
    from cloud.api import create_app
    from cloud.config import CloudConfig

    influx = services.influxdb(workdir / "influxdb")
    influx.start()
    try:
        write_lines(influx.url, lines)
        with serve_app(create_app(CloudConfig.model_validate({"influx": {"url": influx.url}, **config}))) as url:
            yield url, influx
    finally:
        influx.stop()


def write_lines(influx_url: str, lines: list[str], database: str = "hinode") -> None:
    httpx.post(f"{influx_url}/query", data={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
    response = httpx.post(f"{influx_url}/write", params={"db": database, "precision": "ms"},
                          content="\n".join(lines))
    assert response.status_code == 204, response.text


def publish_retained(port: int, statuses: list[contract.AgentStatus]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for status in statuses:
            client.publish(contract.status_topic(status.site, status.agent), contract.encode(status),
                           qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def token_auth(**tokens: tuple[str, str]) -> dict:
    """The ``api`` section of a cloud config with bearer tokens: ``name=(role, token)``."""
    from hinode.security import api_secrets

    return {"auth": {"tokens": [{"name": name, "role": role, "hash": api_secrets.hash_token(token)}
                                for name, (role, token) in tokens.items()]}}
