"""MQTT -> InfluxDB ingest. ``run_ingest(config)`` is what ``python -m cloud`` runs.

Public API::

    IngestService(config: CloudConfig)
        .start() -> None                 # returns at once; connects and reconnects in the background
        .wait_ready(timeout) -> bool     # connected and subscribed
        .stop(timeout: float = 10.0)     # stop taking messages, store+ack what was received, disconnect
        .stats() -> dict                 # counters, see IngestService.stats
        .prometheus_text() -> str        # hinode_ingest_* metrics, text format 0.0.4
    run_ingest(config: CloudConfig) -> None   # blocking until SIGINT/SIGTERM
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading

from cloud.config import CloudConfig
from cloud.influx import redact_url
from cloud.ingest.service import IngestService

__all__ = ["IngestService", "run_ingest"]

log = logging.getLogger("cloud.ingest")


def run_ingest(config: CloudConfig, *, stop_timeout_s: float = 15.0) -> None:
    """Run the ingest until SIGINT or SIGTERM, then stop cleanly.

    Must be called from the main thread (signal handlers). Messages that could not be
    stored before the stop timeout stay unacknowledged and are redelivered on restart.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    service = IngestService(config)
    # `kill -USR1 <pid>` writes every thread's stack to stderr: how to see where a stuck ingest waits.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    try:
        service.start()
        log.info("ingest started: MQTT %s:%d (client id %s, share group %s) -> InfluxDB %s database %s",
                 config.mqtt.host, config.mqtt.port, config.mqtt.client_id, config.mqtt.share_group,
                 redact_url(config.influx.url), config.influx.database)
        while not stop.wait(1.0):
            pass
        log.info("stopping ingest")
    finally:
        service.stop(stop_timeout_s)
        faulthandler.unregister(signal.SIGUSR1)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stats = service.stats()
        log.info("ingest stopped: received %d, stored %d envelopes, dead-lettered %d",
                 stats["received"], stats["written_envelopes"], stats["dead_letter_total"])
