"""The StatusTracker's reconnects wait hinode.backoff's jittered delays, not paho's fixed doubling."""

from __future__ import annotations

import random
import threading
import time

import pytest

from cloud.config import MqttConfig
from cloud.status import StatusTracker
from hinode.backoff import Backoff
from hinode.services import free_port

pytestmark = pytest.mark.timeout(60)


def test_paho_waits_exactly_the_helpers_delays_between_failed_attempts():
    tracker = StatusTracker(MqttConfig(port=free_port()))          # nobody listens there
    tracker._reconnect.backoff = Backoff(0.2, 0.8, random=random.Random(5))
    expected = Backoff(0.2, 0.8, random=random.Random(5))
    attempts: list[float] = []
    done = threading.Event()
    on_fail = tracker._client.on_connect_fail

    def record(client, userdata):
        attempts.append(time.monotonic())
        if len(attempts) == 6:
            done.set()
        on_fail(client, userdata)

    tracker._client.on_connect_fail = record
    tracker.start()
    try:
        assert done.wait(20), f"only {len(attempts)} connection attempts"
    finally:
        tracker.stop()
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    delays = [expected.next() for _ in gaps]      # 0.1..0.2, 0.2..0.4, 0.4..0.8, 0.4..0.8, 0.4..0.8
    for gap, delay in zip(gaps, delays):
        assert delay - 0.02 <= gap <= delay + 0.3, (gaps, delays)
