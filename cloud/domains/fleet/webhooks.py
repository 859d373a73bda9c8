"""Fleet webhooks: each event of a configured type POSTed as JSON to the operator's URL, signed.

```yaml
domains:
  fleet:
    webhooks:
      - {url: "https://ops.example/hooks/fleet", secret_env: FLEET_HOOK_KEY, event_types: [violation_start]}
```

The body is the event (:func:`event_body`). With ``secret_env`` set, the POST carries
``X-Hinode-Timestamp`` (Unix seconds) and ``X-Hinode-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">`` (the vitals alert webhooks' scheme, same code: ``vitals.webhooks.signed_request``)
and ``X-Hinode-Alert-Id: <event_id>``. A 2xx answer delivers it; anything else is retried with doubling,
jittered back-off (``hinode.backoff``, ``webhook_retry_initial_s`` .. ``webhook_retry_max_s``) up to
``webhook_max_attempts``, then logged and counted as failed. Deliveries wait in memory (at most
``webhook_queue_max``; beyond, dropped and counted): a restart of the API loses the ones not yet
delivered (the events themselves are in InfluxDB, ``GET /api/fleet/events``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from cloud.domains.fleet.config import FleetConfig, WebhookConfig
from cloud.domains.vitals.webhooks import signed_request
from hinode.backoff import Backoff

log = logging.getLogger(__name__)
PARALLEL_DELIVERIES = 8


def _text(value) -> str:
    return "" if value is None else str(getattr(value, "value", value))


def event_body(event) -> dict:
    """The JSON body of one event: MDS-style names (ms timestamps, vehicle_state, event_types)."""
    body = {"event_id": event.event_id, "fleet": event.fleet, "vehicle": event.vehicle,
            "vehicle_type": _text(event.vehicle_type), "timestamp": int(event.ts_ms),
            "event_type": _text(event.event_type), "event_types": [_text(event.event_type)],
            "vehicle_state": _text(event.vehicle_state),
            "location": {"lat": event.lat, "lng": event.lon} if event.lat is not None else None,
            "battery_percent": event.battery_pct, "zone": event.zone_id or "",
            "violation_id": event.violation_id or "", "violation_kind": _text(event.violation_kind),
            "detail": event.detail or ""}
    trip = getattr(event, "trip", None)
    if trip is not None:
        body["trip"] = {"start_ms": trip.start_ms, "end_ms": trip.end_ms, "distance_m": trip.distance_m,
                        "duration_s": trip.duration_s, "max_speed_kmh": trip.max_speed_kmh}
    return body


@dataclass
class Delivery:
    hook: WebhookConfig
    event_id: str
    body: dict
    attempts: int = 0
    due: float = 0.0         # monotonic


class WebhookSender:
    def __init__(self, config: FleetConfig):
        self.config = config
        self._retry = Backoff(config.webhook_retry_initial_s, config.webhook_retry_max_s)
        self._queue: list[Delivery] = []
        self._wake = asyncio.Event()
        self.outcomes: Counter[str] = Counter()     # delivered, retry, failed, dropped

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def offer(self, event) -> int:
        """Queue the event for every hook that wants its type; how many deliveries were queued."""
        hooks = [hook for hook in self.config.webhooks if hook.wants(_text(event.event_type))]
        if not hooks:
            return 0
        body = event_body(event)
        queued = 0
        for hook in hooks:
            if len(self._queue) >= self.config.webhook_queue_max:
                self.outcomes["dropped"] += 1
                log.warning("fleet webhook queue full (%d): event %s to %s dropped", self.config.webhook_queue_max,
                            event.event_id, hook.url)
                continue
            self._queue.append(Delivery(hook, event.event_id, body))
            queued += 1
        self._wake.set()
        return queued

    async def run(self) -> None:
        """Deliver until cancelled."""
        async with httpx.AsyncClient(timeout=self.config.webhook_timeout_s, follow_redirects=False,
                                     headers={"User-Agent": "hinode-fleet-webhooks"}) as client:
            limit = asyncio.Semaphore(PARALLEL_DELIVERIES)

            async def one(delivery: Delivery) -> None:
                async with limit:
                    await self._attempt(client, delivery)

            while True:
                now = time.monotonic()
                due = [d for d in self._queue if d.due <= now]
                if due:
                    self._queue = [d for d in self._queue if d.due > now]
                    await asyncio.gather(*(one(d) for d in due))
                    continue
                self._wake.clear()
                next_due = min((d.due for d in self._queue), default=None)
                timeout = None if next_due is None else max(0.0, next_due - now)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        delivery.attempts += 1
        error = ""
        try:
            response = await client.post(delivery.hook.url, **signed_request(delivery.body, delivery.event_id,
                                                                             delivery.hook.secret()))
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        if not error:
            self.outcomes["delivered"] += 1
            return
        if delivery.attempts >= self.config.webhook_max_attempts:
            self.outcomes["failed"] += 1
            log.warning("fleet webhook gave up: event %s to %s after %d attempts (%s)", delivery.event_id,
                        delivery.hook.url, delivery.attempts, error)
            return
        self.outcomes["retry"] += 1
        delivery.due = time.monotonic() + self._retry.delay_for(delivery.attempts)
        self._queue.append(delivery)
        self._wake.set()
