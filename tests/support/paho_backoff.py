"""Checks that a paho client's own reconnect loop waits hinode.backoff's jittered delays."""

from __future__ import annotations

import random
import threading
import time

from hinode.backoff import Backoff


def assert_paho_waits_the_backoff(client, reconnect, start, stop, attempts_wanted: int = 6) -> None:
    """``client``: a paho client nobody listens for; ``reconnect``: its PahoReconnect; ``start``/``stop``
    run the component that owns it. The gaps between failed attempts must follow a seeded Backoff."""
    reconnect.backoff = Backoff(0.2, 0.8, random=random.Random(5))
    expected = Backoff(0.2, 0.8, random=random.Random(5))
    attempts: list[float] = []
    done = threading.Event()
    on_fail = client.on_connect_fail

    def record(paho_client, userdata):
        attempts.append(time.monotonic())
        if len(attempts) == attempts_wanted:
            done.set()
        on_fail(paho_client, userdata)

    client.on_connect_fail = record
    start()
    try:
        assert done.wait(20), f"only {len(attempts)} connection attempts"
    finally:
        stop()
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    delays = [expected.next() for _ in gaps]      # 0.1..0.2, 0.2..0.4, 0.4..0.8, 0.4..0.8, 0.4..0.8
    for gap, delay in zip(gaps, delays):
        assert delay - 0.02 <= gap <= delay + 0.3, (gaps, delays)
