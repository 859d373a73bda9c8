"""Prometheus ``/metrics`` for ``hinode up``: the figures of its status line, for a scraper.

For the ``hinode up`` supervisor (hinode/up.py) — the whole interface::

    serve_up_metrics(figures: Callable[[], UpFigures], listen: str = DEFAULT_LISTEN) -> MetricsHTTPServer
        Binds at once (OSError when the address is taken; port 0 = any free port) and serves
        GET /metrics and GET /healthz on a daemon thread. ``figures`` is called at every scrape,
        from that thread: return the latest figures the status loop computed (cheap, no I/O).
        The returned server has ``.port``, ``.url`` and ``.stop()``.
    up_registry(figures) -> prometheus_client.CollectorRegistry   # the same families, no server
    UpFigures(readings_per_s=None, queue_envelopes=None, dropped_readings=None, devices_online=None,
              devices_known=None, missing_readings=None, ingest_lag_p50_seconds=None,
              service_restarts={})   # None = not known now (the family is served without a sample)
    samples(text) -> dict[str, float]   # unlabelled samples of a scraped /metrics text, by name

Where the status line's figures come from, with today's metric names: readings/s, queue and
dropped from the agent's /metrics (``hinode_agent_readings_per_s``, ``hinode_agent_queue_envelopes``,
``hinode_agent_dropped_readings_total``); devices online and missing readings from the API's
``/api/devices``; ingest lag p50 from the API's /metrics ``hinode_ingest_lag_p50_seconds``
(it was ``hinode_ingest_lag_p50_ms``: now in seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from hinode.metrics import FamiliesCollector, MetricsHTTPServer, labelled_counter, labelled_gauge, registry_of

DEFAULT_LISTEN = "127.0.0.1:19109"   # beside the agent's 19108 under `hinode up`


@dataclass
class UpFigures:
    readings_per_s: float | None = None           # the edge agent's readings per second
    queue_envelopes: float | None = None          # envelopes in the agent's outbox
    dropped_readings: float | None = None         # readings the agent dropped (outbox full), ever
    devices_online: float | None = None           # meters online (agents not counted)
    devices_known: float | None = None            # meters the API knows
    missing_readings: float | None = None         # missing in the completeness window, over all meters
    ingest_lag_p50_seconds: float | None = None   # reading ts -> stored, median of the last batch
    service_restarts: dict[str, int] = field(default_factory=dict)   # by service name (e.g. "cloud")


# (field, metric name, counter?, HELP)
_FIGURES = [
    ("readings_per_s", "hinode_up_readings_per_s", False, "Readings per second the edge agent takes"),
    ("queue_envelopes", "hinode_up_queue_envelopes", False, "Envelopes waiting in the edge agent's outbox"),
    ("dropped_readings", "hinode_up_dropped_readings_total", True,
     "Readings the edge agent dropped because its outbox was full"),
    ("devices_online", "hinode_up_devices_online", False, "Meters online"),
    ("devices_known", "hinode_up_devices_known", False, "Meters the API knows"),
    ("missing_readings", "hinode_up_missing_readings", False,
     "Readings missing in the completeness window, over all meters"),
    ("ingest_lag_p50_seconds", "hinode_up_ingest_lag_p50_seconds", False,
     "Median of stored time - reading ts over the ingest's last batch"),
]


def up_families(figures: UpFigures) -> Iterable[Metric]:
    for attribute, name, is_counter, help_text in _FIGURES:
        value = getattr(figures, attribute)
        samples = [((), float(value))] if value is not None else []
        family = labelled_counter if is_counter else labelled_gauge
        yield family(name, help_text, (), samples)
    yield labelled_counter("hinode_up_service_restarts_total", "Times hinode up restarted a service, by service",
                           ("service",), (((name,), count) for name, count in sorted(figures.service_restarts.items())))


def up_registry(figures: Callable[[], UpFigures]) -> CollectorRegistry:
    return registry_of(FamiliesCollector("hinode up", lambda: up_families(figures())))


def serve_up_metrics(figures: Callable[[], UpFigures], listen: str = DEFAULT_LISTEN) -> MetricsHTTPServer:
    """Serve ``hinode up``'s /metrics and /healthz on ``listen`` (a daemon thread); see the module docstring."""
    return MetricsHTTPServer(listen, up_registry(figures)).start()


def samples(text: str) -> dict[str, float]:
    """The samples without labels of a Prometheus text (e.g. the agent's /metrics), by sample name."""
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}
