"""Alerts end to end: readings in a real InfluxDB, the vitals.alerts job, the API (kit.py) and webhooks
delivered to real HTTP servers on free ports, all checked against consent."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cloud.config import InfluxConfig
from cloud.domains.vitals.config import VitalsConfig
from cloud.domains.vitals.alerts import AlertStore
from cloud.domains.vitals.jobs import ALERTS_JOB, evaluate_alerts
from cloud.influx import AsyncInfluxClient
from cloud.scheduler import JobContext
from hinode import services
from tests.cloud.domains.vitals.kit import (DAY_MS, HOUR_MS, PATIENT_A, PATIENT_B, api, demo_people, seed_demo,
                                            vitals_app, vitals_line, vitals_lines)

pytestmark = pytest.mark.timeout(90)
PEOPLE = demo_people()
TOKEN = {name: token for name, (token, _) in PEOPLE.items()}


class Receiver:
    """A real webhook receiver: answers the given statuses in turn (then 200) and keeps each JSON body."""

    def __init__(self, statuses: tuple[int, ...] = ()):
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []
        self.headers: list[dict] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.raw.append(body)
                    receiver.bodies.append(json.loads(body))
                    receiver.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", services.free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = {name: Receiver(statuses) for name, statuses in
            (("dr-sato", ()), ("son-yamada", ()), ("daughter-yamada", (503,)))}
    yield made
    for receiver in made.values():
        receiver.close()


def with_webhooks(urls: dict[str, str]):
    """seed_demo, then the named members of p-7f3a9c re-added with a webhook_url."""
    def setup(registry):
        demo = seed_demo(registry)
        for username, url in urls.items():
            member = registry.member(PATIENT_A, username)
            registry.remove_member(PATIENT_A, member["id"], removed_by="test")
            registry.add_member(PATIENT_A, username, member["care_role"], added_by="test", webhook_url=url)
        return demo
    return setup


def influx_url(tmp_path) -> str:
    """The kit's InfluxDB (it yields the app's URL only): its HTTP address from the config it wrote."""
    conf = (tmp_path / "influxdb" / "influxdb.conf").read_text()
    return "http://" + re.search(r'\[http\][^\[]*bind-address = "([^"]+)"', conf).group(1)


def run_job(tmp_path, registry, alerts: dict | None = None) -> dict:
    """One run of the vitals.alerts job for the slot that is due now; the counts it returns."""
    async def run():
        client = AsyncInfluxClient(InfluxConfig(url=influx_url(tmp_path)))
        try:
            config = VitalsConfig(registry_path=registry.path, alerts=alerts or {})
            ctx = JobContext(client, config, ALERTS_JOB, logging.getLogger("test.vitals.alerts"))
            slot = ALERTS_JOB.last_due_slot(int(time.time() * 1000))
            (point,) = await evaluate_alerts(slot, slot + ALERTS_JOB.every_ms, ctx)
            assert slot <= point.ts_ms < slot + ALERTS_JOB.every_ms
            return point.fields
        finally:
            await client.aclose()
    return asyncio.run(run())


def test_low_spo2_alerts_the_doctor_and_webhooks_only_members_whose_consent_covers_it(tmp_path, receivers):
    now = int(time.time() * 1000)
    low_spo2_at = now - 2 * HOUR_MS
    late_systolic_at = now - 3 * DAY_MS        # a visit synchronised days later still alerts (lookback 7 days)
    lines = vitals_lines(PATIENT_A, end_ms=now - 6 * HOUR_MS) + [
        vitals_line(PATIENT_A, "oximeter-1", "spo2", {"spo2": 88, "spo2_pulse": 92}, low_spo2_at, seq=99),
        vitals_line(PATIENT_B, "bp-cuff-1", "blood_pressure", {"systolic": 185, "diastolic": 95}, late_systolic_at,
                    visit_id="v-kit-01-20261126-1"),
    ]
    closed_port_url = f"http://127.0.0.1:{services.free_port()}/hook"       # nothing listens: never delivered
    urls = {name: r.url for name, r in receivers.items()} | {"nurse-ito": closed_port_url}
    key = tmp_path / "webhook.key"
    key.write_bytes(b"shared-with-the-receivers")
    alerts_config = {"webhook_retry_initial_s": 0, "webhook_retry_max_s": 0, "webhook_max_attempts": 2,
                     "webhook_secret_file": str(key)}
    with vitals_app(tmp_path, PEOPLE, lines, setup=with_webhooks(urls)) as (base, registry):
        first = run_job(tmp_path, registry, alerts_config)
        assert first["new_alerts"] == 2 and first["patients"] == 2
        # dr-sato: p-7f3a9c's and p-41b2e0's alerts (no webhook for B's team: only A's members have urls)
        assert first["delivered"] == 1 and first["retried"] == 2 and first["failed"] == 0   # 503 + refused
        second = run_job(tmp_path, registry, alerts_config)
        assert second["new_alerts"] == 0                                        # the rerun adds no alert
        assert second["delivered"] == 1 and second["failed"] == 1               # proxy's retry ok; nurse gives up

        with api(base, TOKEN["dr-sato"]) as doctor:
            seen = doctor.get("/api/vitals/alerts").json()
        assert [(a["pseudonym"], a["rule"], a["value"], a["unit"], a["ts"]) for a in seen["alerts"]] == [
            (PATIENT_A, "spo2_low", 88.0, "%", low_spo2_at),
            (PATIENT_B, "systolic_high", 185.0, "mm[Hg]", late_systolic_at)]
        spo2_alert = seen["alerts"][0]

        with api(base, TOKEN["son-yamada"]) as son:                             # family, no consent
            assert son.get("/api/vitals/alerts").json()["alerts"] == []
            denied = son.get("/api/vitals/alerts", params={"patient": PATIENT_A})
            assert denied.status_code == 403 and "no consent for role family" in denied.json()["detail"]
            assert son.post(f"/api/vitals/alerts/{spo2_alert['id']}/ack").status_code == 403
        with api(base, TOKEN["cm-kato"]) as care_manager:                       # consent: blood_pressure, weight
            assert care_manager.get("/api/vitals/alerts").json()["alerts"] == []

        # webhooks: the doctor's and the proxy's servers got the alert; the family member's got nothing
        assert receivers["son-yamada"].bodies == []
        for name in ("dr-sato", "daughter-yamada"):
            (body,) = receivers[name].bodies
            assert body == {"alert_id": spo2_alert["id"], "pseudonym": PATIENT_A, "category": "spo2",
                            "rule": "spo2_low", "metric": "spo2", "value": 88.0, "unit": "%", "threshold": 90.0,
                            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(low_spo2_at // 1000)),
                            "ts_ms": low_spo2_at}
            headers = receivers[name].headers[0]
            assert headers["X-Hinode-Alert-Id"] == str(spo2_alert["id"])
            signed = headers["X-Hinode-Timestamp"].encode() + b"." + receivers[name].raw[0]     # what a receiver checks
            expected = hmac.new(b"shared-with-the-receivers", signed, hashlib.sha256).hexdigest()
            assert headers["X-Hinode-Signature"] == f"sha256={expected}"
            assert abs(int(headers["X-Hinode-Timestamp"]) - time.time()) < 120
        states = {(d["username"], d["state"], d["attempts"]) for d in AlertStore(registry).deliveries()}
        assert states == {("dr-sato", "delivered", 1), ("daughter-yamada", "delivered", 2),
                          ("nurse-ito", "failed", 2)}

        with api(base, TOKEN["dr-sato"]) as doctor:
            acked = doctor.post(f"/api/vitals/alerts/{spo2_alert['id']}/ack")
            assert acked.status_code == 200 and acked.json()["alert"]["acked_by"] == "dr-sato"
            open_only = doctor.get("/api/vitals/alerts", params={"include_acked": "false"}).json()["alerts"]
            assert [a["rule"] for a in open_only] == ["systolic_high"]

        audit = registry.audit_rows(PATIENT_A, limit=200)
        actions = {(r["actor"], r["action"], r["outcome"]) for r in audit}
        assert ("dr-sato", "read_alerts", "allowed") in actions
        assert ("son-yamada", "read_alerts", "denied") in actions
        assert ("son-yamada", "ack_alert", "denied") in actions
        assert ("dr-sato", "ack_alert", "allowed") in actions
        webhook_rows = [r for r in audit if r["action"] == "alert_webhook"]
        assert {(r["actor"], r["via"], r["categories"]) for r in webhook_rows} == \
            {("dr-sato", "webhook", "spo2"), ("daughter-yamada", "webhook", "spo2"), ("nurse-ito", "webhook", "spo2")}
        assert len(webhook_rows) == 5                                           # every attempt: 1 + 2 + 2
        assert not any("山田" in json.dumps(r, ensure_ascii=False) for r in audit)
        assert registry.verify_chain().ok


def test_the_doctor_changes_the_spo2_threshold_and_the_nurse_cannot(tmp_path):
    now = int(time.time() * 1000)
    lines = [vitals_line(PATIENT_A, "oximeter-1", "spo2", {"spo2": 91}, now - HOUR_MS)]
    rules_path = f"/api/vitals/patients/{PATIENT_A}/alert-rules"
    with vitals_app(tmp_path, PEOPLE, lines, setup=seed_demo) as (base, registry):
        assert run_job(tmp_path, registry)["new_alerts"] == 0                  # 91 % is not below 90 %
        with api(base, TOKEN["nurse-ito"]) as nurse, api(base, TOKEN["dr-sato"]) as doctor, \
                api(base, TOKEN["office-suzuki"]) as office:
            spo2 = next(r for r in nurse.get(rules_path).json()["rules"] if r["rule"] == "spo2_low")
            assert (spo2["threshold"], spo2["enabled"], spo2["unit"], spo2["changed_by"]) == (90.0, True, "%", None)
            change = {"rules": {"spo2_low": {"threshold": 92}}}
            refused = nurse.put(rules_path, json=change)
            assert refused.status_code == 403
            assert refused.json()["detail"] == "only the patient's doctor may change alert rules (your care role: nurse)"
            assert office.put(rules_path, json=change).status_code == 403     # staff, not in the care team
            assert doctor.put(rules_path, json={"rules": {"spo2_high": {"threshold": 99}}}).status_code == 422
            assert doctor.put(rules_path, json={"rules": {"spo2_low": {"threshold": "lots"}}}).status_code == 422
            changed = doctor.put(rules_path, json=change)
            assert changed.status_code == 200, changed.text
            spo2 = next(r for r in nurse.get(rules_path).json()["rules"] if r["rule"] == "spo2_low")
            assert (spo2["threshold"], spo2["default_threshold"], spo2["changed_by"]) == (92.0, 90.0, "dr-sato")
            assert run_job(tmp_path, registry)["new_alerts"] == 1               # now 91 % is below 92 %
            (alert,) = doctor.get("/api/vitals/alerts").json()["alerts"]
            assert (alert["value"], alert["threshold"]) == (91.0, 92.0)
            # switched off: readings of that rule no longer alert (the existing alert stays)
            assert doctor.put(rules_path, json={"rules": {"spo2_low": {"enabled": False}}}).status_code == 200
            spo2 = next(r for r in doctor.get(rules_path).json()["rules"] if r["rule"] == "spo2_low")
            assert (spo2["threshold"], spo2["enabled"]) == (92.0, False)
        rows = {(r["actor"], r["action"], r["outcome"]) for r in registry.audit_rows(PATIENT_A)}
        assert {("nurse-ito", "change_alert_rules", "denied"), ("office-suzuki", "change_alert_rules", "denied"),
                ("dr-sato", "change_alert_rules", "allowed"), ("nurse-ito", "read_alert_rules", "allowed")} <= rows


def test_a_consent_revoked_before_the_attempt_withholds_the_webhook(tmp_path):
    from cloud.domains.vitals.alert_config import AlertsConfig
    from cloud.domains.vitals.alert_rules import DEFAULT_RULES, evaluate
    from cloud.domains.vitals.registry import Registry
    from cloud.domains.vitals.webhooks import deliver_due, plan_deliveries
    import polars as pl

    nurse = Receiver()
    try:
        registry = Registry(tmp_path / "registry.sqlite")
        demo = with_webhooks({"nurse-ito": nurse.url})(registry)
        store = AlertStore(registry)
        frame = pl.DataFrame({"time": [int(time.time() * 1000)], "spo2": [87.0]})
        (alert,) = store.record(PATIENT_A, evaluate(frame, DEFAULT_RULES))
        assert plan_deliveries(store, registry, alert) == 1                  # the nurse's consent covers spo2
        registry.revoke_consent(PATIENT_A, demo.consents[(PATIENT_A, "nurse")], revoked_by="hanako-yamada")
        counts = asyncio.run(deliver_due(store, registry, AlertsConfig()))
        assert (counts.withheld, counts.delivered) == (1, 0)
        assert nurse.bodies == []
        (delivery,) = store.deliveries(alert["id"])
        assert delivery["state"] == "withheld" and delivery["attempts"] == 0
        (row,) = [r for r in registry.audit_rows(PATIENT_A) if r["action"] == "alert_webhook"]
        assert (row["actor"], row["outcome"], row["care_role"]) == ("nurse-ito", "denied", "nurse")
        assert "no consent for role nurse to see spo2" in row["reason"]
        assert asyncio.run(deliver_due(store, registry, AlertsConfig())).withheld == 0   # not tried again
    finally:
        nurse.close()


def test_refused_webhooks_are_retried_after_jittered_delays_not_all_at_once(tmp_path):
    from cloud.domains.vitals.alert_config import AlertsConfig
    from cloud.domains.vitals.alert_rules import DEFAULT_RULES, evaluate
    from cloud.domains.vitals.registry import Registry
    from cloud.domains.vitals.webhooks import deliver_due, plan_deliveries
    import polars as pl

    registry = Registry(tmp_path / "registry.sqlite")
    with_webhooks({"nurse-ito": f"http://127.0.0.1:{services.free_port()}/hook"})(registry)    # nothing listens
    store = AlertStore(registry)
    now = int(time.time() * 1000)
    frame = pl.DataFrame({"time": [now - n * 60_000 for n in range(10)], "spo2": [87.0] * 10})
    alerts = store.record(PATIENT_A, evaluate(frame, DEFAULT_RULES))
    assert sum(plan_deliveries(store, registry, alert) for alert in alerts) == 10
    before = int(time.time() * 1000)
    counts = asyncio.run(deliver_due(store, registry, AlertsConfig(webhook_retry_initial_s=30,
                                                                   webhook_retry_max_s=3600)))
    after = int(time.time() * 1000)
    assert counts.retried == 10
    due = [d["next_attempt_ms"] for d in store.deliveries()]
    assert all(before + 15_000 <= d <= after + 30_000 for d in due), (before, after, due)   # 15..30 s: equal jitter
    assert max(due) - min(due) > (after - before) + 1_000, "the retries are not spread: they would all hit at once"
