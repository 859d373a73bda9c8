"""Prometheus text for the agent's health, served on a small asyncio HTTP endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Callable

log = logging.getLogger("edge_agent.metrics")

_COUNTERS = {"readings_total", "dropped_readings_total", "dropped_envelopes_total", "published_readings_total",
             "published_envelopes_total", "rejected_envelopes_total", "errors_total", "mqtt_reconnects",
             "resent_after_reconnect_total"}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(health: dict) -> str:
    lines = []
    for name, value in health.items():
        if isinstance(value, (int, float)):
            metric = f"hinode_agent_{name}"
            lines.append(f"# TYPE {metric} {'counter' if name in _COUNTERS else 'gauge'}")
            lines.append(f"{metric} {float(value)}")
    lines += ["# TYPE hinode_source_readings_total counter", "# TYPE hinode_source_readings_per_s gauge",
              "# TYPE hinode_source_devices_online gauge", "# TYPE hinode_source_errors_total counter",
              "# TYPE hinode_source_restarts_total counter"]
    for source, s in health.get("sources", {}).items():
        label = f'source="{_label(source)}",type="{_label(s["type"])}"'
        lines.append(f"hinode_source_readings_total{{{label}}} {s['readings_total']}")
        lines.append(f"hinode_source_readings_per_s{{{label}}} {s['readings_per_s']:.3f}")
        lines.append(f"hinode_source_devices_online{{{label}}} {s['devices_online']}")
        lines.append(f"hinode_source_restarts_total{{{label}}} {s['restarts']}")
        for (device, code), count in sorted(s["errors"].items()):
            lines.append(f'hinode_source_errors_total{{{label},device="{_label(device)}",code="{_label(code)}"}} {count}')
    lines.append("# HELP hinode_agent_commands_total Commands from the cloud, by outcome "
                 "(done, failed, rejected, expired, duplicate, invalid)")
    lines.append("# TYPE hinode_agent_commands_total counter")
    for outcome, count in sorted(health.get("commands", {}).items()):
        lines.append(f'hinode_agent_commands_total{{outcome="{_label(outcome)}"}} {count}')
    return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics (Prometheus text) and GET /healthz; nothing else."""

    def __init__(self, listen: str, render: Callable[[], str]):
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.render = render
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
            if re.fullmatch(r"/metrics/?", path):
                status, body, ctype = "200 OK", self.render().encode(), "text/plain; version=0.0.4"
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
