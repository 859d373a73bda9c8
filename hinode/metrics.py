"""What every hinode process shares for its Prometheus ``/metrics`` (prometheus_client).

Each process builds its own ``CollectorRegistry`` (never the global default one, so tests can
build several apps in one process) from custom collectors that read the counters the code
already keeps. Rules all metrics follow: a counter only rises and ends in ``_total``; durations
are in seconds (``_seconds``); every family has HELP text; histograms for the durations whose
percentiles matter (ingest lag, InfluxDB write time, API request latency).

- :func:`counter`, :func:`gauge`, :func:`labelled_counter`, :func:`labelled_gauge`: families.
- :class:`Buckets`: a histogram's state that takes a whole sorted batch in one call (the ingest
  observes once per batch, not once per reading); :func:`histogram` turns it into a family.
- :class:`FamiliesCollector` + :func:`registry_of`: a per-process registry from functions that
  yield families; a failing function is logged and skipped, the rest is still served.
- :class:`MetricsHTTPServer`: ``GET /metrics`` and ``GET /healthz`` on a daemon thread (for the
  threaded processes: ``python -m cloud ingest`` and ``hinode up``; the asyncio edge agent has
  its own server without threads in edge_agent/metrics.py).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from bisect import bisect_left, bisect_right
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

log = logging.getLogger("hinode.metrics")

# generate_latest writes the classic text format; say so (prometheus_client's "latest" may be newer).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Bucket bounds in seconds.
LAG_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    """A counter without labels; ``name`` ends in ``_total`` (the sample's name)."""
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _label_values(values: Sequence[object] | str) -> list[str]:
    """A tuple of label values; a plain string is the value of the only label."""
    return [values] if isinstance(values, str) else [str(v) for v in values]


def labelled_counter(name: str, documentation: str, labels: Sequence[str],
                     samples: Iterable[tuple[Sequence[object] | str, float]]) -> CounterMetricFamily:
    """A counter with labels; ``samples`` are (label values, value) pairs."""
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for label_values, value in samples:
        family.add_metric(_label_values(label_values), value)
    return family


def labelled_gauge(name: str, documentation: str, labels: Sequence[str],
                   samples: Iterable[tuple[Sequence[object] | str, float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for label_values, value in samples:
        family.add_metric(_label_values(label_values), float(value))
    return family


class Buckets:
    """The state of one histogram (one label set): counts per bucket and the sum, in seconds.

    Thread-safe. :meth:`observe_sorted` takes a whole ascending list at once with one bisect
    per bound, so a batch of thousands of values costs about as much as a dozen observations.
    """

    __slots__ = ("bounds", "_counts", "_sum", "_lock")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(sorted(float(b) for b in bounds))
        self._counts = [0] * (len(self.bounds) + 1)     # per bucket (not cumulative); the last is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = bisect_left(self.bounds, seconds)       # the first bound >= value ("le")
        with self._lock:
            self._counts[index] += 1
            self._sum += max(0.0, seconds)

    def observe_sorted(self, values: Sequence[float], units_per_second: float = 1.0) -> None:
        """Observe every value of an ascending sequence, in 1/``units_per_second`` s (ms: 1000).

        A negative value (a clock ahead) counts in the lowest bucket but adds nothing to the sum,
        which must never fall.
        """
        if not values:
            return
        at_or_below = [bisect_right(values, bound * units_per_second) for bound in self.bounds]
        total = sum(islice(values, bisect_right(values, 0.0), None)) / units_per_second
        with self._lock:
            previous = 0
            for index, count in enumerate(at_or_below):
                self._counts[index] += count - previous
                previous = count
            self._counts[-1] += len(values) - previous
            self._sum += total

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        """``([(le, cumulative count), ..., ("+Inf", count)], sum)`` as a histogram family wants them."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), counts):
            running += count
            out.append((floatToGoString(bound), running))
        return out, total

    @property
    def count(self) -> int:
        with self._lock:
            return sum(self._counts)


def histogram(name: str, documentation: str, series: dict[tuple[str, ...], Buckets],
              labels: Sequence[str] = ()) -> HistogramMetricFamily:
    """A histogram family from one :class:`Buckets` per label-value tuple (``{(): buckets}`` without labels)."""
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for label_values, buckets in sorted(series.items()):
        counts, total = buckets.cumulative()
        family.add_metric([str(v) for v in label_values], counts, sum_value=total)
    return family


class FamiliesCollector(Collector):
    """A collector around a function that yields metric families, read at every scrape."""

    def __init__(self, name: str, families: Callable[[], Iterable[Metric]]):
        self.name = name
        self._families = families

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._families())
        except Exception:   # one broken part must not take the whole /metrics down
            log.exception("metrics of %s failed; served without them", self.name)
            return []


def registry_of(*collectors: Collector) -> CollectorRegistry:
    """A registry of this process's own (not prometheus_client's global default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9109"`` or ``"[::1]:9109"`` -> (host, port); port 0 = any free port."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{listen!r}: expected host:port, e.g. 127.0.0.1:9109")
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsHTTPServer:
    """``GET /metrics`` (Prometheus text of ``registry``) and ``GET /healthz`` (JSON) on a daemon thread.

    ``start()`` binds at once and raises OSError when the address is taken, so a second process
    started with the same port fails loudly instead of serving nothing.
    """

    def __init__(self, listen: str, registry: CollectorRegistry, health: Callable[[], dict] | None = None):
        self.host, self.port = parse_listen(listen)
        self.registry = registry
        self.health = health or (lambda: {"status": "ok"})
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> "MetricsHTTPServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:   # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path in ("/metrics", "/metrics/"):
                    status, body, ctype = 200, render(owner.registry), CONTENT_TYPE
                elif path == "/healthz":
                    status, body, ctype = 200, json.dumps(owner.health()).encode(), "application/json"
                else:
                    status, body, ctype = 404, b"not found\n", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:   # one line per scrape is noise
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            daemon_threads = True

        self._server = Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
