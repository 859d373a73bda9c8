"""The StatusTracker's reconnects wait hinode.backoff's jittered delays, not paho's fixed doubling."""

from __future__ import annotations

import pytest

from cloud.config import MqttConfig
from cloud.status import StatusTracker
from hinode.services import free_port
from tests.support.paho_backoff import assert_paho_waits_the_backoff

pytestmark = pytest.mark.timeout(60)


def test_paho_waits_exactly_the_helpers_delays_between_failed_attempts():
    tracker = StatusTracker(MqttConfig(port=free_port()))          # nobody listens there
    assert_paho_waits_the_backoff(tracker._client, tracker._reconnect, tracker.start, tracker.stop)
