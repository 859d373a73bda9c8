"""MQTT -> InfluxDB ingest. ``run_ingest(config)`` is what ``python -m cloud`` runs.

Public API::

    IngestService(config: CloudConfig)
        .start() -> None                 # returns at once; connects and reconnects in the background
        .wait_ready(timeout) -> bool     # connected and subscribed
        .stop(timeout: float = 10.0)     # stop taking messages, store+ack what was received, disconnect
        .stats() -> dict                 # counters, see IngestService.stats
        .metrics_registry                # its prometheus_client registry (cloud/ingest/metrics.py)
        .prometheus_text() -> str        # hinode_ingest_* metrics, text format 0.0.4
    run_ingest(config: CloudConfig) -> None   # blocking until SIGINT/SIGTERM; /metrics on ingest.metrics_listen
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
import time

from cloud.config import CloudConfig, CloudConfigError
from cloud.influx import redact_url
from hinode.sdnotify import SystemdNotifier
from cloud.ingest.service import IngestService
from hinode.metrics import MetricsHTTPServer

__all__ = ["IngestService", "run_ingest", "serve_metrics"]

log = logging.getLogger("cloud.ingest")


def run_ingest(config: CloudConfig, *, stop_timeout_s: float = 15.0) -> None:
    """Run the ingest until SIGINT or SIGTERM, then stop cleanly.

    Must be called from the main thread (signal handlers). Messages that could not be
    stored before the stop timeout stay unacknowledged and are redelivered on restart.
    Serves /metrics and /healthz on ``ingest.metrics_listen`` unless it is null; a taken
    address is a CloudConfigError (each ingest process needs its own port).
    """
    service = IngestService(config)
    metrics = serve_metrics(config, service)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    # `kill -USR1 <pid>` writes every thread's stack to stderr: how to see where a stuck ingest waits.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    try:
        service.start()
        log.info("ingest started: MQTT %s:%d (client id %s, share group %s) -> InfluxDB %s database %s",
                 config.mqtt.host, config.mqtt.port, config.mqtt.client_id, config.mqtt.share_group,
                 redact_url(config.influx.url), config.influx.database)
        notifier = SystemdNotifier()      # Type=notify units: ready once subscribed; fed while both threads run
        _serve_systemd(service, notifier, stop, f"MQTT {config.mqtt.host}:{config.mqtt.port} -> {config.influx.database}")
        notifier.stopping()
        log.info("stopping ingest")
    finally:
        service.stop(stop_timeout_s)
        if metrics is not None:
            metrics.stop()
        faulthandler.unregister(signal.SIGUSR1)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stats = service.stats()
        log.info("ingest stopped: received %d, stored %d envelopes, dead-lettered %d",
                 stats["received"], stats["written_envelopes"], stats["dead_letter_total"])


READY_WAIT_S = 30.0      # then READY=1 anyway, well inside systemd's TimeoutStartSec (90 s by default)


def _serve_systemd(service: IngestService, notifier: SystemdNotifier, stop: threading.Event, status: str) -> None:
    """Until ``stop``: READY=1 once the broker granted every filter (or after READY_WAIT_S, still reconnecting,
    so a broker down at boot does not fail the unit), and the watchdog fed while both threads run."""
    feed_every = min(1.0, notifier.watchdog_s / 2) if notifier.watchdog_s else 1.0
    ready_by = time.monotonic() + READY_WAIT_S
    said_ready = False
    while not stop.is_set():
        if not said_ready and (service.wait_ready(0) or time.monotonic() >= ready_by):
            if not service.wait_ready(0):
                log.warning("not subscribed to the telemetry filters after %.0f s; going on, still reconnecting",
                            READY_WAIT_S)
            notifier.ready(status)
            said_ready = True
        if notifier.watchdog_s and service.threads_alive():
            notifier.notify("WATCHDOG=1")
        if said_ready:
            stop.wait(feed_every)
        else:
            service.wait_ready(feed_every)      # wakes as soon as the last SUBACK arrives


def serve_metrics(config: CloudConfig, service: IngestService) -> MetricsHTTPServer | None:
    """Start this ingest's /metrics + /healthz server on ``ingest.metrics_listen`` (None when null)."""
    listen = config.ingest.metrics_listen
    if not listen:
        return None

    def health() -> dict:
        stats = service.stats()
        return {"status": "ok", "mqtt_subscribed": stats["mqtt_subscribed"],
                "influx_available": stats["influx_available"]}

    try:
        return MetricsHTTPServer(listen, service.metrics_registry, health).start()
    except OSError as exc:
        raise CloudConfigError(f"ingest.metrics_listen {listen}: cannot listen ({exc.strerror or exc}); every ingest "
                               f"process needs its own port (set another, 0 for any free one, or null)") from None
