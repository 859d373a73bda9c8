"""The ingest's own health as InfluxDB series, so Grafana boards (dashboards/) can show it.

Every ``ingest.health_interval_s`` a thread writes, through the ingest's own InfluxClient:

- ``hinode_ingest`` (tag ``ingest`` = MQTT client id): ``received_total``,
  ``written_envelopes_total``, ``dead_letter_total``, ``lag_p50_seconds``, ``queue_depth``;
- ``hinode_ingest_dead_letters`` (tags ``ingest``, ``reason``): ``total``, one point per reason seen.

Every field is a float (as every number the ingest stores). Counters are this process's
since it started: they restart from 0 with the process (use ``non_negative_difference``).
A failed write is logged and skipped; the next interval writes fresh totals.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from cloud.influx import InfluxClient, InfluxError
from cloud.lineproto import escape_key, escape_measurement, format_number

log = logging.getLogger("cloud.ingest.health")

MEASUREMENT = "hinode_ingest"
DEAD_LETTER_MEASUREMENT = "hinode_ingest_dead_letters"


def _fields(values: dict[str, float]) -> str:
    return ",".join(f"{escape_key(k)}={format_number(v)}" for k, v in values.items()
                    if format_number(v) is not None)


def health_lines(stats: dict, ts_ms: int) -> list[str]:
    """Line protocol (ms) for one snapshot of ``IngestService.stats()``."""
    ingest = escape_key(str(stats["client_id"]))
    fields = {
        "received_total": stats["received"],
        "written_envelopes_total": stats["written_envelopes"],
        "dead_letter_total": stats["dead_letter_total"],
        "lag_p50_seconds": stats["lag_p50_ms"] / 1000,
        "queue_depth": stats["queue_depth"],
    }
    lines = [f"{escape_measurement(MEASUREMENT)},ingest={ingest} {_fields(fields)} {ts_ms}"]
    for reason, total in sorted(stats["dead_letter"].items()):
        lines.append(f"{escape_measurement(DEAD_LETTER_MEASUREMENT)},ingest={ingest},reason={escape_key(str(reason))} "
                     f"total={format_number(total)} {ts_ms}")
    return lines


class HealthWriter:
    """A daemon thread writing :func:`health_lines` every ``interval_s`` until ``stop`` is set."""

    def __init__(self, stats: Callable[[], dict], influx: InfluxClient, interval_s: float,
                 stop: threading.Event):
        self.stats = stats
        self.influx = influx
        self.interval_s = interval_s
        self.stop = stop
        self.written = 0
        self.failed = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-health", daemon=True)
        self._thread.start()

    def write_once(self) -> bool:
        try:
            self.influx.write_lines(health_lines(self.stats(), time.time_ns() // 1_000_000))
        except (InfluxError, OSError) as exc:
            self.failed += 1
            log.warning("could not write ingest health to InfluxDB (skipped): %s", exc)
            return False
        except Exception:   # a bug here must never stop the ingest
            self.failed += 1
            log.exception("could not write ingest health (skipped)")
            return False
        self.written += 1
        return True

    def _run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.write_once()
