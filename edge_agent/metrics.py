"""The agent's ``/metrics``: prometheus_client families built from ``Agent.health()`` at every
scrape, served by a small asyncio HTTP endpoint (no threads: the agent is one event loop)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from hinode.metrics import (CONTENT_TYPE, FamiliesCollector, counter, gauge, labelled_counter, labelled_gauge,
                            registry_of, render)

log = logging.getLogger("edge_agent.metrics")

# (key in Agent.health(), metric name, counter?, HELP)
AGENT_FIGURES = [
    ("uptime_s", "hinode_agent_uptime_seconds", False, "Seconds since the agent started"),
    ("mqtt_connected", "hinode_agent_mqtt_connected", False, "1 while connected to the MQTT broker"),
    ("waiting_for_ingest", "hinode_agent_waiting_for_ingest", False,
     "1 while telemetry waits in the outbox because no cloud ingest heartbeat was heard"),
    ("mqtt_reconnects", "hinode_agent_mqtt_reconnects_total", True, "Connections to the broker after the first"),
    ("queue_envelopes", "hinode_agent_queue_envelopes", False, "Envelopes in the durable outbox not yet delivered"),
    ("queue_readings", "hinode_agent_queue_readings", False, "Readings in the durable outbox not yet delivered"),
    ("queue_bytes", "hinode_agent_queue_bytes", False, "Size of the outbox's envelopes in bytes"),
    ("queue_max_bytes", "hinode_agent_queue_max_bytes", False,
     "Outbox bound (queue.max_bytes); past it the oldest envelopes are dropped"),
    ("dropped_readings_total", "hinode_agent_dropped_readings_total", True,
     "Readings dropped because the outbox was full (kept across restarts)"),
    ("dropped_envelopes_total", "hinode_agent_dropped_envelopes_total", True,
     "Envelopes dropped because the outbox was full (kept across restarts)"),
    ("resent_after_reconnect_total", "hinode_agent_resent_after_reconnect_total", True,
     "Delivered envelopes sent again after an unexpected disconnect (queue.resend_window_s)"),
    ("published_readings_total", "hinode_agent_published_readings_total", True,
     "Readings in envelopes the broker acknowledged (PUBACK)"),
    ("published_envelopes_total", "hinode_agent_published_envelopes_total", True,
     "Envelopes the broker acknowledged (PUBACK)"),
    ("rejected_envelopes_total", "hinode_agent_rejected_envelopes_total", True,
     "Envelopes the broker refused (error PUBACK, e.g. not authorized)"),
    ("unrouted_envelopes_total", "hinode_agent_unrouted_envelopes_total", True,
     "Envelopes the broker answered 'no matching subscribers' (kept in the outbox and sent again)"),
    ("inflight", "hinode_agent_inflight", False, "Envelopes published and awaiting their PUBACK"),
    ("internal_errors_total", "hinode_agent_internal_errors_total", True,
     "Internal loops that failed and were restarted (a bug: see the log)"),
    ("readings_total", "hinode_agent_readings_total", True, "Readings taken from all sources"),
    ("readings_per_s", "hinode_agent_readings_per_s", False, "Readings per second from all sources, recent rate"),
    ("errors_total", "hinode_agent_errors_total", True, "Device and source errors of all sources"),
    ("devices_online", "hinode_agent_devices_online", False, "Devices answering now"),
    ("devices_total", "hinode_agent_devices_configured", False, "Devices configured in all sources"),
    ("command_results_pending", "hinode_agent_command_results_pending", False,
     "Command results awaiting the broker's PUBACK"),
]


def agent_families(health: dict) -> Iterable[Metric]:
    """Every family of the agent's /metrics from one ``Agent.health()`` snapshot."""
    for key, name, is_counter, help_text in AGENT_FIGURES:
        value = float(health.get(key, 0))
        yield counter(name, help_text, value) if is_counter else gauge(name, help_text, value)
    sources = health.get("sources", {})
    per_source = [((source, s["type"]), s) for source, s in sorted(sources.items())]
    labels = ("source", "type")
    yield labelled_counter("hinode_source_readings_total", "Readings taken, by source", labels,
                           ((key, s["readings_total"]) for key, s in per_source))
    yield labelled_gauge("hinode_source_readings_per_s", "Readings per second, by source (recent rate)", labels,
                         ((key, round(s["readings_per_s"], 3)) for key, s in per_source))
    yield labelled_gauge("hinode_source_devices_online", "Devices answering now, by source", labels,
                         ((key, s["devices_online"]) for key, s in per_source))
    yield labelled_gauge("hinode_source_devices_configured", "Devices configured, by source", labels,
                         ((key, s["devices_total"]) for key, s in per_source))
    yield labelled_counter("hinode_source_restarts_total", "Times a crashed source was restarted", labels,
                           ((key, s["restarts"]) for key, s in per_source))
    yield labelled_counter("hinode_source_errors_total",
                           "Errors by source, device and code (e.g. timeout, modbus_exception_2; "
                           "device _source: the source itself)", (*labels, "device", "code"),
                           ((( *key, device, code), count) for key, s in per_source
                            for (device, code), count in sorted(s["errors"].items())))
    yield labelled_counter("hinode_agent_commands_total",
                           "Commands from the cloud, by outcome (done, failed, rejected, expired, duplicate, invalid)",
                           ("outcome",), sorted(health.get("commands", {}).items()))


def agent_registry(health: Callable[[], dict]) -> CollectorRegistry:
    """This agent's registry: ``health`` (Agent.health) is read at every scrape."""
    return registry_of(FamiliesCollector("edge agent", lambda: agent_families(health())))


class MetricsServer:
    """GET /metrics (Prometheus text of ``registry``) and GET /healthz; nothing else. Runs on the event loop."""

    def __init__(self, listen: str, registry: CollectorRegistry):
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.registry = registry
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode(errors="replace") if request.count(b" ") >= 2 else ""
            path = path.split("?", 1)[0]
            if re.fullmatch(r"/metrics/?", path):
                status, body, ctype = "200 OK", render(self.registry), CONTENT_TYPE
            elif path == "/healthz":
                status, body, ctype = "200 OK", json.dumps({"status": "ok"}).encode(), "application/json"
            else:
                status, body, ctype = "404 Not Found", b"not found\n", "text/plain"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
