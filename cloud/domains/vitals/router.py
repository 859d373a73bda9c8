"""/api/vitals: the patients I may see and their readings, each read checked against consent and audited."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from cloud.domains.vitals import readings
from cloud.domains.vitals.access import (NAMED_ROLES, acting_user, audit, patients_visible_to, registry_of,
                                         require_grant)
from cloud.domains.vitals.registry import now_ms
from hinode.vitals import Category

router = APIRouter()

CATEGORY_QUERY = Query(None, description="one of blood_pressure, spo2, temperature, weight, glucose, heart_rate; "
                                         "unset: every category my consent covers (the rest listed in left_out)")
START_QUERY = Query(None, description="RFC3339, relative (-7d) or now; default: the configured range before end")
END_QUERY = Query(None, description="RFC3339, relative or now (default)")


def _left_out(grant) -> list[str]:
    return sorted(c.value for c in set(Category) - grant.categories)


@router.get("/patients", summary="Patients whose vitals I may see: pseudonym, care role, categories")
def patients(request: Request) -> dict:
    user, via = acting_user(request)
    registry = registry_of(request)
    listed = []
    for grant in patients_visible_to(registry, user, now_ms()):
        entry = {"pseudonym": grant.pseudonym, "care_role": grant.care_role,
                 "categories": sorted(c.value for c in grant.categories), "consent_id": grant.consent_id,
                 "valid_until": grant.valid_until_ms}
        if grant.care_role in NAMED_ROLES and via == "api":
            patient = registry.patient(grant.pseudonym)
            entry["display_name"] = patient["display_name"] if patient else None
            audit(request, grant.pseudonym, "read_display_name", care_role=grant.care_role, consent_id=grant.consent_id)
        listed.append(entry)
    return {"user": user, "via": via, "patients": listed}


@router.get("/patients/{pseudonym}/readings", summary="Readings of the categories my consent covers, in a range")
async def patient_readings(request: Request, pseudonym: str, category: str | None = CATEGORY_QUERY,
                           start: str | None = START_QUERY, end: str | None = END_QUERY) -> dict:
    asked = readings.parse_category(category)
    start_ms, end_ms = readings.time_range(request, start, end)
    grant = await asyncio.to_thread(require_grant, request, pseudonym, "read_readings", [asked] if asked else None)
    categories = [asked] if asked else sorted(grant.categories)
    fields = readings.fields_for(categories)
    frame = await readings.fetch_vitals(request, pseudonym, fields, start_ms, end_ms)
    return {"patient": pseudonym, "care_role": grant.care_role, "consent_id": grant.consent_for(categories),
            "categories": [c.value for c in categories], "left_out": [] if asked else _left_out(grant),
            "start": start_ms, "end": end_ms, "units": readings.units_of(fields), "rows": readings.rows_of(frame)}


@router.get("/patients/{pseudonym}/latest", summary="The newest reading of each category my consent covers")
async def patient_latest(request: Request, pseudonym: str, category: str | None = CATEGORY_QUERY) -> dict:
    asked = readings.parse_category(category)
    config = request.app.state.domain_configs["vitals"]
    start_ms, end_ms = readings.time_range(request, None, None, default_days=config.latest_lookback_days)
    grant = await asyncio.to_thread(require_grant, request, pseudonym, "read_latest", [asked] if asked else None)
    categories = [asked] if asked else sorted(grant.categories)
    frame = await readings.fetch_vitals(request, pseudonym, readings.fields_for(categories), start_ms, end_ms)
    return {"patient": pseudonym, "care_role": grant.care_role, "consent_id": grant.consent_for(categories),
            "left_out": [] if asked else _left_out(grant),
            "latest": {c.value: readings.latest_of(frame, c) for c in categories}}


@router.get("/patients/{pseudonym}/summary",
            summary="Per category my consent covers: latest values and trend points; the last visit (care view)")
async def patient_summary(request: Request, pseudonym: str, start: str | None = START_QUERY,
                          end: str | None = END_QUERY) -> dict:
    start_ms, end_ms = readings.time_range(request, start, end)
    grant = await asyncio.to_thread(require_grant, request, pseudonym, "read_summary")
    categories = sorted(grant.categories)
    frame = await readings.fetch_vitals(request, pseudonym, readings.fields_for(categories), start_ms, end_ms)
    return {"patient": pseudonym, "care_role": grant.care_role, "consent_id": grant.consent_for(categories),
            "valid_until": grant.valid_until_ms, "start": start_ms, "end": end_ms, "left_out": _left_out(grant),
            "last_visit": readings.last_visit_of(frame),
            "categories": {c.value: {"latest": readings.latest_of(frame, c), "trends": readings.trends_of(frame, c),
                                     "units": readings.units_of(readings.fields_for([c]))}
                           for c in categories}}
