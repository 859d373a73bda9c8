"""API counters in Prometheus text format; labels are route templates, never raw paths."""

from __future__ import annotations

import threading
import time
from collections import defaultdict


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ApiMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.invalid_params: dict[str, int] = defaultdict(int)
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.seconds[route] += seconds

    def invalid(self, name: str) -> None:
        with self._lock:
            self.invalid_params[name] += 1

    def prometheus_text(self) -> str:
        with self._lock:
            requests = dict(self.requests)
            seconds = dict(self.seconds)
            invalid = dict(self.invalid_params)
        lines = ["# HELP hinode_api_requests_total HTTP requests answered, by method, route and status",
                 "# TYPE hinode_api_requests_total counter"]
        for (method, route, status), count in sorted(requests.items()):
            lines.append(f'hinode_api_requests_total{{method="{method}",route="{_escape(route)}",status="{status}"}} {count}')
        lines += ["# HELP hinode_api_request_seconds_total Time spent answering requests, by route",
                  "# TYPE hinode_api_request_seconds_total counter"]
        for route, total in sorted(seconds.items()):
            lines.append(f'hinode_api_request_seconds_total{{route="{_escape(route)}"}} {total:.6f}')
        lines += ["# HELP hinode_api_invalid_parameters_total Requests refused with 422, by parameter",
                  "# TYPE hinode_api_invalid_parameters_total counter"]
        for name, count in sorted(invalid.items()):
            lines.append(f'hinode_api_invalid_parameters_total{{parameter="{_escape(name)}"}} {count}')
        lines += ["# HELP hinode_api_start_time_seconds When the API process started",
                  "# TYPE hinode_api_start_time_seconds gauge",
                  f"hinode_api_start_time_seconds {self.started:.3f}"]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request under its route template."""

    def __init__(self, app, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or getattr(route, "path_format", None) or "unmatched"
            self.metrics.observe(scope.get("method", "GET"), template, status_holder["status"],
                                 time.perf_counter() - started)
