"""The ``vitals.alerts`` job: every minute, evaluate each patient's rules over the last days.

It looks back ``alerts.lookback_days`` (7) from the slot's end, not just over the slot, so
readings that reach the cloud late (a visit in a house without internet, synchronised days
later) still raise their alert; gain rules read ``window_days`` more as their baseline. An alert
is unique per (patient, rule, reading time), so each run, a rerun of a slot or a second API process
adds nothing twice. New alerts get their webhook deliveries planned; then every due delivery
(new ones and retries) is attempted. The job acts for nobody: it reads readings without a
consent check (only to evaluate them) and shares them only through consent-checked deliveries.

It returns one point per slot, ``vitals_alerts`` (no tags; counts only, no personal data) in the
API's database: patients evaluated (and skipped: more than ``ROWS_PER_PATIENT`` readings in the
span), new alerts and delivery outcomes.
"""

from __future__ import annotations

from cloud.api.params import InvalidParameter
from cloud.domains.vitals.alert_rules import DAY_MS, alert_fields, evaluate, lookback_needed_ms
from cloud.domains.vitals.alerts import AlertStore
from cloud.domains.vitals.config import VitalsConfig
from cloud.domains.vitals.readings import query_vitals
from cloud.domains.vitals.registry import Registry
from cloud.domains.vitals.webhooks import deliver_due, plan_deliveries
from cloud.points import Point
from cloud.scheduler import Job, JobContext

COUNT_MEASUREMENT = "vitals_alerts"
ROWS_PER_PATIENT = 100_000


async def evaluate_alerts(slot_start_ms: int, slot_end_ms: int, ctx: JobContext) -> list[Point]:
    config: VitalsConfig = ctx.config or VitalsConfig()
    if not config.alerts.enabled:
        return []
    registry = Registry(config.resolved_registry_path())
    store = AlertStore(registry)
    defaults = config.alerts.default_rules()
    database = ctx.influx.config.personal.database
    since_ms = slot_end_ms - int(config.alerts.lookback_days * DAY_MS)
    patients = new_alerts = planned = skipped = 0
    for patient in registry.patients():
        pseudonym = patient["pseudonym"]
        rules = store.rules_for(pseudonym, defaults)
        fields = alert_fields(rules)
        if not fields:
            continue
        patients += 1
        try:
            frame = await query_vitals(ctx.influx, database, pseudonym, fields, since_ms - lookback_needed_ms(rules),
                                       slot_end_ms, ROWS_PER_PATIENT)
        except InvalidParameter as exc:   # one patient's flood of readings must not stop everyone's alerts
            skipped += 1
            ctx.log.warning("a patient's readings were not evaluated: %s", exc)
            continue
        for alert in store.record(pseudonym, evaluate(frame, rules, since_ms=since_ms)):
            new_alerts += 1
            planned += plan_deliveries(store, registry, alert)
    counts = await deliver_due(store, registry, config.alerts)
    if new_alerts or counts.failed:
        ctx.log.info("%d new alert(s) for %d patient(s) evaluated; %d webhook deliveries planned; %s",
                     new_alerts, patients, planned, counts)
    return [Point(COUNT_MEASUREMENT, {}, {"patients": int(patients), "new_alerts": int(new_alerts),
                                          "webhooks_planned": int(planned), "delivered": int(counts.delivered),
                                          "retried": int(counts.retried), "failed": int(counts.failed),
                                          "withheld": int(counts.withheld),
                                          "patients_skipped": int(skipped)}, slot_start_ms)]


ALERTS_JOB = Job(name="vitals.alerts", every_s=60, run=evaluate_alerts, delay_s=5.0, timeout_s=55.0)
JOBS = [ALERTS_JOB]
