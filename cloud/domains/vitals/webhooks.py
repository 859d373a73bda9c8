"""Alert webhooks: an HTTP POST of each new alert to the care-team members allowed to see it.

Who gets it: every active member of the patient's care team with a ``webhook_url`` whose grant
(hinode's consent rules, ``access.grant_for``) covers the alert's category when the alert is made;
the grant is checked again before every attempt, so a consent revoked meanwhile stops the delivery
(state ``withheld``). The body names the patient by pseudonym only (never a name):

    {"alert_id": 7, "pseudonym": "p-7f3a9c", "category": "spo2", "rule": "spo2_low", "metric": "spo2",
     "value": 88.0, "unit": "%", "threshold": 90.0, "ts": "2026-11-29T01:00:00Z", "ts_ms": 1764378000000}

A delivery is a row in ``alert_deliveries`` (alerts.py). A 2xx answer delivers it; anything else
(a refused connection, a timeout, a 5xx) counts an attempt and schedules the next one with doubling,
jittered back-off (``hinode.backoff``, ``alerts.webhook_retry_initial_s`` .. ``webhook_retry_max_s``); after
``webhook_max_attempts`` it is recorded as ``failed`` and logged with the alert and member ids.
With ``alerts.webhook_secret_file`` set, each POST carries ``X-Hinode-Timestamp`` (Unix seconds) and
``X-Hinode-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``, so a receiver can check
that the alert came from this platform and is fresh. Every attempt is an audit row (action ``alert_webhook``, actor = the receiving member, via
``webhook``), allowed or, when the grant has lapsed, denied.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from datetime import datetime, timezone

import httpx

from cloud.domains.vitals.access import grant_for
from cloud.domains.vitals.alert_config import AlertsConfig
from cloud.domains.vitals.alerts import DELIVERED, FAILED, PENDING, WITHHELD, AlertStore, DeliveryCounts
from cloud.domains.vitals.registry import Registry, now_ms
from hinode.backoff import Backoff

log = logging.getLogger(__name__)

AUDIT_ACTION = "alert_webhook"
PARALLEL_DELIVERIES = 8
# Attempts in this process, by outcome (delivered, retry, failed, withheld): for /metrics and tests.
DELIVERY_ATTEMPTS: Counter[str] = Counter()


def payload(alert: dict) -> dict:
    """The JSON body of a webhook: the alert with the pseudonym, never a name."""
    ts = datetime.fromtimestamp(alert["reading_ts_ms"] / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    return {"alert_id": alert["id"], "pseudonym": alert["pseudonym"], "category": alert["category"],
            "rule": alert["rule"], "metric": alert["metric"], "value": alert["value"], "unit": alert["unit"],
            "threshold": alert["threshold"], "ts": ts, "ts_ms": alert["reading_ts_ms"]}


def signed_request(body: dict, alert_id: int, secret: bytes | None, now_s: float | None = None) -> dict:
    """httpx keyword arguments for one webhook POST: the JSON body, and its signature when a key is set."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-Hinode-Alert-Id": str(alert_id)}
    if secret:
        stamp = str(int(time.time() if now_s is None else now_s))
        headers["X-Hinode-Timestamp"] = stamp
        headers["X-Hinode-Signature"] = "sha256=" + hmac.new(secret, stamp.encode() + b"." + content,
                                                             hashlib.sha256).hexdigest()
    return {"content": content, "headers": headers}


def plan_deliveries(store: AlertStore, registry: Registry, alert: dict, at_ms: int | None = None) -> int:
    """Pending deliveries of a new alert to each member with a webhook whose consent covers it; how many."""
    at_ms = now_ms() if at_ms is None else at_ms
    planned = 0
    for member in registry.members(alert["pseudonym"]):
        url = (member.get("webhook_url") or "").strip()
        if not url.startswith(("http://", "https://")):
            continue
        grant = grant_for(registry, member["username"], alert["pseudonym"], at_ms)
        if grant is not None and grant.allows(alert["category"]):
            planned += store.add_delivery(alert["id"], {**member, "webhook_url": url})
    return planned


async def deliver_due(store: AlertStore, registry: Registry, config: AlertsConfig, *,
                      client: httpx.AsyncClient | None = None, at_ms: int | None = None) -> DeliveryCounts:
    """Attempt every delivery that is due once; counts of what happened."""
    at_ms = now_ms() if at_ms is None else at_ms
    due = store.due_deliveries(at_ms)
    if not due:
        return DeliveryCounts()
    owned = client is None
    client = client or httpx.AsyncClient(timeout=config.webhook_timeout_s, follow_redirects=False,
                                         headers={"User-Agent": "hinode-vitals-alerts"})
    limit = asyncio.Semaphore(PARALLEL_DELIVERIES)

    async def one(delivery: dict) -> str:
        async with limit:
            return await _attempt(store, registry, config, client, delivery)
    try:
        outcomes = Counter(await asyncio.gather(*(one(d) for d in due)))
    finally:
        if owned:
            await client.aclose()
    return DeliveryCounts(delivered=outcomes["delivered"], retried=outcomes["retry"], failed=outcomes["failed"],
                          withheld=outcomes["withheld"])


async def _attempt(store: AlertStore, registry: Registry, config: AlertsConfig, client: httpx.AsyncClient,
                   delivery: dict) -> str:
    alert = store.alert(delivery["alert_id"])
    member = registry.member(alert["pseudonym"], delivery["username"])
    at_ms = now_ms()
    grant = grant_for(registry, delivery["username"], alert["pseudonym"], at_ms)
    audit = dict(actor=delivery["username"], via="webhook", pseudonym=alert["pseudonym"], action=AUDIT_ACTION,
                 categories=[alert["category"]])
    if member is None or member["id"] != delivery["member_id"] or grant is None or not grant.allows(alert["category"]):
        reason = ("no longer in the care team" if member is None or member["id"] != delivery["member_id"]
                  else f"no consent for role {member['care_role']} to see {alert['category']}")
        registry.append_audit(**audit, care_role=member["care_role"] if member else "", outcome="denied",
                              reason=f"alert {alert['id']} withheld: {reason}")
        store.delivery_outcome(delivery["id"], state=WITHHELD, attempts=delivery["attempts"],
                               next_attempt_ms=delivery["next_attempt_ms"], error=reason)
        DELIVERY_ATTEMPTS["withheld"] += 1
        return "withheld"
    attempts = delivery["attempts"] + 1
    status, error = None, ""
    try:
        response = await client.post(delivery["url"], **signed_request(payload(alert), alert["id"],
                                                                        config.webhook_secret()))
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:   # refused, timeout, bad URL: the message names no personal data
        error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
    registry.append_audit(**audit, care_role=grant.care_role, consent_id=grant.consent_for([alert["category"]]),
                          outcome="allowed", reason=f"alert {alert['id']} attempt {attempts}: "
                                                    f"{'delivered' if not error else error}")
    if not error:
        store.delivery_outcome(delivery["id"], state=DELIVERED, attempts=attempts, next_attempt_ms=at_ms, status=status)
        DELIVERY_ATTEMPTS["delivered"] += 1
        return "delivered"
    if attempts >= config.webhook_max_attempts:
        store.delivery_outcome(delivery["id"], state=FAILED, attempts=attempts, next_attempt_ms=at_ms, status=status,
                               error=error)
        log.warning("alert webhook gave up: alert %s to member %s after %d attempts (%s)", alert["id"],
                    delivery["member_id"], attempts, error)
        DELIVERY_ATTEMPTS["failed"] += 1
        return "failed"
    retry = Backoff(config.webhook_retry_initial_s, config.webhook_retry_max_s)
    next_ms = at_ms + int(retry.delay_for(attempts) * 1000)
    store.delivery_outcome(delivery["id"], state=PENDING, attempts=attempts, next_attempt_ms=next_ms, status=status,
                           error=error)
    log.info("alert webhook attempt %d failed: alert %s to member %s (%s); next in %.0f s", attempts, alert["id"],
             delivery["member_id"], error, (next_ms - at_ms) / 1000)
    DELIVERY_ATTEMPTS["retry"] += 1
    return "retry"
