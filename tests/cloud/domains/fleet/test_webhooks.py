"""Fleet webhooks to a real aiohttp server on a free port: only the configured event types, signed with
the key from the environment (HMAC-SHA256 over "<timestamp>.<body>"), retried after a failure."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time

import pytest
from aiohttp import web

from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.events import FleetEvent
from cloud.domains.fleet.webhooks import WebhookSender
from hinode import services
from hinode.mobility import EventType
from tests.cloud.domains.fleet.test_worker_kit import IN_SLOW, OUTSIDE, SLOW_ZONE, Vehicle, fleet_app, now_ms
from tests.support.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.timeout(120)
KEY = "fleet-hook-key-for-tests"


class Receiver:
    """An aiohttp server in its own thread: answers the given statuses in turn (then 200), keeps what came."""

    def __init__(self, statuses: tuple[int, ...] = ()):
        self.statuses = list(statuses)
        self.received: list[tuple[dict, bytes, int]] = []     # (headers, body, status answered)
        self.port = services.free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/fleet"
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        assert started.wait(10), "the receiver did not start"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append((dict(request.headers), body, status))
        return web.Response(status=status)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hooks/fleet", self._hook)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        started.set()
        self._loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def delivered(self) -> list[dict]:
        return [json.loads(body) for _, body, status in self.received if status == 200]


@pytest.fixture
def receiver():
    made = Receiver(statuses=(503,))
    yield made
    made.close()


def test_a_violation_start_is_delivered_signed_after_one_retry(tmp_path, broker, influx, receiver, monkeypatch):
    monkeypatch.setenv("FLEET_HOOK_KEY", KEY)
    hooks = [{"url": receiver.url, "secret_env": "FLEET_HOOK_KEY", "event_types": ["violation_start"]}]
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx, webhooks=hooks, webhook_retry_initial_s=0.1,
                   webhook_retry_max_s=0.2) as app, Vehicle(broker.port, "sc-040") as scooter:
        scooter.route(start, [(OUTSIDE, 12.0)] * 2 + [(IN_SLOW, 15.0)] * 6 + [(IN_SLOW, 4.0)] * 6,
                      state="on_trip", battery=64.0)
        (body,) = wait_until(receiver.delivered, "the delivered webhook")
        # the receiver keeps the body before it answers: wait for the worker to have read the answer
        wait_until(lambda: app.worker.webhooks.outcomes["delivered"] == 1, "the delivery counted")
        assert app.worker.events["violation_end"] == 1          # other types happened; only the start is sent
        assert [status for _, _, status in receiver.received] == [503, 200]
        assert app.worker.webhooks.outcomes == {"retry": 1, "delivered": 1}
    headers, raw, _ = receiver.received[-1]
    assert (body["event_type"], body["event_types"], body["vehicle"], body["zone"], body["violation_kind"]) == \
        ("violation_start", ["violation_start"], "sc-040", SLOW_ZONE, "speeding")
    assert body["timestamp"] == start + 2000 and body["battery_percent"] == 64.0
    assert body["location"] == {"lat": IN_SLOW[0], "lng": IN_SLOW[1]}
    assert headers["X-Hinode-Alert-Id"] == body["event_id"]
    expected = hmac.new(KEY.encode(), headers["X-Hinode-Timestamp"].encode() + b"." + raw, hashlib.sha256)
    assert headers["X-Hinode-Signature"] == "sha256=" + expected.hexdigest()


def test_a_hook_that_never_answers_gives_up_and_counts_it(tmp_path, broker, influx):
    closed = f"http://127.0.0.1:{services.free_port()}/hook"
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx, webhooks=[{"url": closed, "event_types": ["zone_enter"]}],
                   webhook_retry_initial_s=0.05, webhook_retry_max_s=0.1, webhook_max_attempts=3) as app, \
            Vehicle(broker.port, "sc-041") as scooter:
        scooter.route(start, [(OUTSIDE, 12.0), (IN_SLOW, 4.0)], state="on_trip")
        wait_until(lambda: app.worker.webhooks.outcomes["failed"] == 1, "the delivery given up")
        assert app.worker.webhooks.outcomes["retry"] == 2 and app.worker.webhooks.waiting == 0


def test_refused_deliveries_are_retried_at_jittered_moments_not_all_at_once():
    closed = f"http://127.0.0.1:{services.free_port()}/hook"
    config = FleetConfig(webhooks=[{"url": closed}], webhook_retry_initial_s=10, webhook_retry_max_s=100)
    events = [FleetEvent(event_id=f"ev-{n}", fleet="hitachi-scooters", vehicle=f"sc-{n:03d}", vehicle_type="scooter",
                         ts_ms=now_ms(), event_type=EventType.ZONE_ENTER, vehicle_state="on_trip", lat=None, lon=None,
                         battery_pct=None) for n in range(20)]

    async def first_attempts() -> tuple[list[float], float, float]:
        sender = WebhookSender(config)
        for event in events:
            sender.offer(event)
        before = time.monotonic()
        task = asyncio.create_task(sender.run())
        try:
            await wait_until_async(lambda: sender.outcomes["retry"] == len(events), timeout=30,
                                   what="every delivery refused once")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return [d.due for d in sender._queue], before, time.monotonic()

    dues, before, after = asyncio.run(first_attempts())
    assert len(dues) == len(events)
    assert all(before + 5 <= due <= after + 10 for due in dues), (before, after, dues)     # 5..10 s: equal jitter
    assert max(dues) - min(dues) > (after - before) + 1, "the retries are not spread: they would all hit at once"


def test_a_secret_env_that_is_not_set_is_a_config_error_naming_it(monkeypatch):
    monkeypatch.delenv("FLEET_HOOK_MISSING", raising=False)
    with pytest.raises(ValueError, match="environment variable FLEET_HOOK_MISSING is not set"):
        FleetConfig.model_validate({"webhooks": [{"url": "https://ops.example/h", "secret_env": "FLEET_HOOK_MISSING"}]})
    with pytest.raises(ValueError, match="event_types"):
        FleetConfig.model_validate({"webhooks": [{"url": "https://ops.example/h", "event_types": ["teleported"]}]})
