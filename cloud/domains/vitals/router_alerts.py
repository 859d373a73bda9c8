"""/api/vitals alerts and alert rules: alerts only of categories my consent covers, rules changed by the doctor."""

from __future__ import annotations

import math

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.api import params
from cloud.domains.vitals import readings
from cloud.domains.vitals.access import acting_user, audit, patients_visible_to, registry_of, require_grant
from cloud.domains.vitals.alert_rules import DEFAULT_RULES, RuleChange
from cloud.domains.vitals.alerts import AlertStore, public_alert
from cloud.domains.vitals.registry import RegistryError, now_ms

router = APIRouter()

RULE_CHANGER_ROLE = "doctor"


class RuleChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float | None = Field(default=None, ge=0, le=1000, description="in the rule's unit")
    enabled: bool | None = None

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class RulesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, RuleChangeBody] = Field(description=f"rule name ({', '.join(DEFAULT_RULES)}) -> change")


def alert_store(request: Request) -> AlertStore:
    state = request.app.state
    store = getattr(state, "vitals_alert_store", None)
    if store is None:
        store = state.vitals_alert_store = AlertStore(registry_of(request))
    return store


def _defaults(request: Request):
    return request.app.state.domain_configs["vitals"].alerts.default_rules()


@router.get("/alerts", summary="Alerts of the patients and categories my consent covers (each patient's read audited)")
def list_alerts(request: Request,
                      patient: str | None = Query(None, description="only this patient (pseudonym)"),
                      start: str | None = Query(None, description="readings from (RFC3339 or -7d); default: the "
                                                                  "configured range"),
                      include_acked: bool = Query(True, description="false: only alerts nobody acknowledged")) -> dict:
    user, via = acting_user(request)
    start_ms, _ = readings.time_range(request, start, None)
    if patient is not None:
        params.check_id("patient", patient)
    store, registry = alert_store(request), registry_of(request)
    listed, patients = [], []
    for grant in patients_visible_to(registry, user, now_ms()):
        if patient is not None and grant.pseudonym != patient:
            continue
        rows = store.alerts_for(grant.pseudonym, grant.categories, since_ms=start_ms, include_acked=include_acked)
        audit(request, grant.pseudonym, "read_alerts", categories=grant.categories, care_role=grant.care_role,
              consent_id=grant.consent_for(grant.categories))
        patients.append(grant.pseudonym)
        listed += [public_alert(row) for row in rows]
    if patient is not None and patient not in patients:
        require_grant(request, patient, "read_alerts")   # audits the denial and answers 403 with the reason
    listed.sort(key=lambda a: (a["ts"], a["id"]), reverse=True)
    return {"user": user, "via": via, "start": start_ms, "patients": patients, "alerts": listed}


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert of a category my consent covers")
def ack_alert(request: Request, alert_id: int) -> dict:
    user, via = acting_user(request)
    store = alert_store(request)
    alert = store.alert(alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    require_grant(request, alert["pseudonym"], "ack_alert", [alert["category"]])
    if via != "api":
        raise HTTPException(403, "alerts are acknowledged through the API, not through Grafana")
    return {"alert": public_alert(store.ack(alert_id, user))}


def _rules_view(request: Request, pseudonym: str) -> list[dict]:
    defaults = _defaults(request)
    store = alert_store(request)
    changed = {row["rule"]: row for row in store.overrides(pseudonym)}
    views = []
    for name, rule in store.rules_for(pseudonym, defaults).items():
        change = changed.get(name)
        views.append({"rule": name, "metric": rule.metric, "category": rule.category.value,
                      "comparison": rule.comparison, "threshold": rule.threshold, "unit": rule.unit,
                      "window_days": rule.window_days, "enabled": rule.enabled, "description": rule.describe(),
                      "default_threshold": defaults[name].threshold, "default_enabled": defaults[name].enabled,
                      "changed_by": change["changed_by"] if change else None,
                      "changed_at": change["changed_ms"] if change else None})
    return views


def _member_or_403(request: Request, pseudonym: str, action: str) -> dict:
    params.check_id("patient", pseudonym)
    user, _ = acting_user(request)
    member = registry_of(request).member(pseudonym, user)
    if member is None:
        reason = "not in the care team of this patient"
        audit(request, pseudonym, action, outcome="denied", reason=reason)
        raise HTTPException(403, reason)
    return member


@router.get("/patients/{pseudonym}/alert-rules", summary="The patient's alert rules (defaults and the doctor's changes)")
def get_rules(request: Request, pseudonym: str) -> dict:
    member = _member_or_403(request, pseudonym, "read_alert_rules")
    audit(request, pseudonym, "read_alert_rules", care_role=member["care_role"])
    return {"patient": pseudonym, "rules": _rules_view(request, pseudonym)}


@router.put("/patients/{pseudonym}/alert-rules",
            summary="Change the patient's alert rules (threshold, enabled): the patient's doctor only")
def put_rules(request: Request, pseudonym: str, body: RulesBody) -> dict:
    user, via = acting_user(request)
    member = _member_or_403(request, pseudonym, "change_alert_rules")
    changed = sorted(body.rules)
    if member["care_role"] != RULE_CHANGER_ROLE or via != "api":
        reason = (f"only the patient's doctor may change alert rules (your care role: {member['care_role']})"
                  if via == "api" else "alert rules are not changed through Grafana")
        audit(request, pseudonym, "change_alert_rules", outcome="denied", care_role=member["care_role"],
              reason=reason)
        raise HTTPException(403, reason)
    unknown = sorted(set(changed) - set(DEFAULT_RULES))
    if unknown:
        raise params.InvalidParameter("rules", f"unknown rule(s) {', '.join(unknown)} "
                                               f"(known: {', '.join(DEFAULT_RULES)})")
    changes = {name: RuleChange(c.threshold, c.enabled) for name, c in body.rules.items()}
    try:
        alert_store(request).set_rules(pseudonym, changes, _defaults(request), changed_by=user)
    except RegistryError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    summary = "; ".join(f"{name}: threshold={c.threshold} enabled={c.enabled}" for name, c in body.rules.items())
    audit(request, pseudonym, "change_alert_rules", care_role=member["care_role"], reason=summary[:300])
    return {"patient": pseudonym, "rules": _rules_view(request, pseudonym)}
