"""The API process's /metrics: one prometheus_client registry per app.

Labels are route templates (``/api/devices/{site}/{device}/latest``), never raw paths, so a
client cannot create series at will. The registry joins what the app's parts already count:
requests (here), InfluxDB queries and the completeness cache, authentication
(``Authenticator.metric_families``), agent statuses (``StatusTracker.metric_families``), the
domains' scheduler (``Scheduler.metric_families``) and an in-process ingest (cloud/ingest/metrics.py).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from hinode.metrics import (REQUEST_BUCKETS_S, Buckets, FamiliesCollector, counter, gauge, histogram,
                            labelled_counter, registry_of)


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """Requests by method, route template and status; latency histograms by method and route."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.latency: dict[tuple[str, str], Buckets] = {}
        self.invalid_params: dict[str, int] = defaultdict(int)
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else "OTHER"   # a client must not invent series
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.seconds[route] += seconds
            buckets = self.latency.get((method, route))
            if buckets is None:
                buckets = self.latency[(method, route)] = Buckets(REQUEST_BUCKETS_S)
        buckets.observe(seconds)

    def invalid(self, name: str) -> None:
        with self._lock:
            self.invalid_params[name] += 1

    def metric_families(self) -> Iterable[Metric]:
        with self._lock:
            requests = dict(self.requests)
            seconds = dict(self.seconds)
            latency = dict(self.latency)
            invalid = dict(self.invalid_params)
        yield labelled_counter("hinode_api_requests_total", "HTTP requests answered, by method, route and status",
                               ("method", "route", "status"), sorted(requests.items()))
        yield labelled_counter("hinode_api_request_seconds_total", "Time spent answering requests, by route",
                               ("route",), (((route,), total) for route, total in sorted(seconds.items())))
        yield histogram("hinode_api_request_duration_seconds", "Time to answer a request, by method and route "
                        "template (for percentiles)", latency, labels=("method", "route"))
        yield labelled_counter("hinode_api_invalid_parameters_total", "Requests refused with 422, by parameter",
                               ("parameter",), (((name,), count) for name, count in sorted(invalid.items())))
        yield gauge("hinode_api_start_time_seconds", "When the API process started (Unix time)", self.started)


def reader_families(reader, completeness) -> Iterable[Metric]:
    """The API's InfluxDB client (cloud/influx.py AsyncInfluxClient.stats) and the completeness cache."""
    stats = reader.stats
    yield counter("hinode_api_influx_queries_total", "InfluxQL requests sent by the API", stats.queries_total)
    yield counter("hinode_api_influx_errors_total", "InfluxQL requests InfluxDB refused", stats.errors_total)
    yield counter("hinode_api_influx_unavailable_total", "InfluxQL requests that found InfluxDB unreachable",
                  stats.unavailable_total)
    yield counter("hinode_api_influx_query_seconds_total", "Time spent waiting for InfluxDB", stats.seconds_total)
    yield counter("hinode_api_influx_writes_total", "Writes of derived points (domain jobs) sent by the API",
                  stats.writes_total)
    yield counter("hinode_api_influx_write_errors_total", "Writes of derived points that failed",
                  stats.write_errors_total)
    yield labelled_counter("hinode_api_completeness_cache_total", "Completeness lookups, by cache result", ("result",),
                           [(("hit",), completeness.cache_hits), (("miss",), completeness.cache_misses)])


def api_registry(state) -> CollectorRegistry:
    """The registry of one app (``app.state``); each part is read at scrape time, a missing one skipped."""
    from cloud.ingest.metrics import ingest_families   # imported here: an API without ingest never needs it

    def status_families():
        return state.status.metric_families() if state.status is not None else ()

    def scheduler_families():
        return state.scheduler.metric_families() if state.scheduler.jobs else ()

    def in_process_ingest_families():
        return ingest_families(state.ingest) if state.ingest is not None else ()

    def domain_worker_families():
        # a domain's lifespan registers its worker's families here (cloud/domains/fleet/worker_service.py)
        for families in list(getattr(state, "domain_metric_families", {}).values()):
            yield from families()

    return registry_of(
        FamiliesCollector("api requests", state.metrics.metric_families),
        FamiliesCollector("api InfluxDB reader", lambda: reader_families(state.reader, state.completeness)),
        FamiliesCollector("api authentication", state.auth.metric_families),
        FamiliesCollector("status tracker", status_families),
        FamiliesCollector("scheduler", scheduler_families),
        FamiliesCollector("in-process ingest", in_process_ingest_families),
        FamiliesCollector("domain workers", domain_worker_families),
        FamiliesCollector("enrollment", lambda: state.enrollment.metric_families()
                          if getattr(state, "enrollment", None) else ()),
    )


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
