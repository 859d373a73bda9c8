"""The ingest says it is ready (and sends the heartbeat that releases the agents' outboxes) only once
the broker granted every one of its subscriptions.

Regression: ``test_catalogs_and_command_results_are_stored_and_personal_catalogs_kept_apart`` failed in
CI because the ingest was ready on the first SUBACK (telemetry), and a catalog published at that moment
went to a filter the broker had not yet subscribed (catalogs and results are the 3rd and 4th SUBSCRIBE).
The SUBACKs are fed here in the order the link thread delivers them; the broker is real, only to build
the service's configuration against.
"""

from __future__ import annotations

from hinode import contract
from tests.cloud.test_ingest_kit import ingest_config

from cloud.ingest.service import IngestService

GRANTED_QOS1 = [1]
NOT_AUTHORIZED = [0x87]


def _service(broker, influx) -> IngestService:
    service = IngestService(ingest_config(broker, influx))
    service._on_connect(False, 1)       # what the link thread calls on CONNACK: one SUBSCRIBE per filter
    return service


def test_ingest_ready_only_once_every_filter_is_granted(broker, influx):
    service = _service(broker, influx)
    for _ in contract.INGEST_FILTERS[:-1]:
        service._on_subscribe(GRANTED_QOS1)
        assert not service.wait_ready(0), "ready before the catalog and result filters were granted"
    service._on_subscribe(GRANTED_QOS1)
    assert service.wait_ready(0)
    assert service.stats()["mqtt_subscribed"] is True


def test_ingest_with_one_refused_filter_never_says_ready(broker, influx):
    service = _service(broker, influx)
    service._on_subscribe(GRANTED_QOS1)
    service._on_subscribe(NOT_AUTHORIZED)
    for _ in contract.INGEST_FILTERS[2:]:
        service._on_subscribe(GRANTED_QOS1)
    assert not service.wait_ready(0)
    assert service.stats()["mqtt_subscribed"] is False


def test_a_reconnect_waits_for_every_filter_again(broker, influx):
    service = _service(broker, influx)
    for _ in contract.INGEST_FILTERS:
        service._on_subscribe(GRANTED_QOS1)
    service._on_disconnect("test: connection lost")
    service._on_connect(True, 2)
    service._on_subscribe(GRANTED_QOS1)
    assert not service.wait_ready(0)
