"""The endpoints Grafana's vitals data source calls (Infinity plugin, ``dashboards/vitals.py``).

Only a Grafana service principal (``domains.vitals.grafana.service_principals``, holding vitals:read)
may call them, and always for the signed-in Grafana user it forwards in the user header
(``access.acting_user``): consent is that user's, checked on every request, and every request is an
audited ``grafana_query`` with via ``grafana``. Anything else (another principal, no forwarded user,
the header twice, a user outside the care team or without consent) is a 403 with the reason, audited
as denied: Grafana shows it as the panel's error, never as an empty "no data" chart. Design and
limits: BOARDS.md.
"""

from __future__ import annotations

import asyncio

import math

from fastapi import APIRouter, HTTPException, Query, Request

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains.vitals.access import acting_user, audit, patients_visible_to, registry_of, require_grant
from cloud.domains.vitals.registry import now_ms
from cloud.domains.vitals.readings import fetch_vitals
from hinode.vitals import VITAL_METRICS, Category, metrics_of

router = APIRouter(prefix="/grafana", tags=["vitals: Grafana data source"])

ACTION = "grafana_query"
DAY_MS = 86_400_000


def _deny_unattributed(request: Request, pseudonym: str | None, reason: str) -> HTTPException:
    """A refusal before there is an acting user: audited under the calling principal's own name."""
    if pseudonym is not None:
        registry_of(request).append_audit(actor=request.state.principal.name, via="grafana", care_role="",
                                          pseudonym=pseudonym, action=ACTION, outcome="denied", reason=reason)
    return HTTPException(403, reason)


def grafana_user(request: Request, pseudonym: str | None = None) -> str:
    """The forwarded Grafana user, or 403 (audited when a patient is named) if this is not Grafana asking."""
    config = domain_config(request, "vitals").grafana
    principal = request.state.principal
    if len(request.headers.getlist(config.user_header)) > 1:
        raise _deny_unattributed(request, pseudonym, f"the {config.user_header} header appears more than once: "
                                                     f"the acting user is ambiguous")
    try:
        user, via = acting_user(request)
    except HTTPException as exc:           # a service principal that forwards no user acts as nobody
        raise _deny_unattributed(request, pseudonym, exc.detail) from None
    if via != "grafana":
        reason = (f"{principal.name!r} is not a Grafana service principal (domains.vitals.grafana."
                  f"service_principals): the Grafana endpoints answer only Grafana's data source")
        if pseudonym is not None:
            audit(request, pseudonym, ACTION, outcome="denied", reason=reason)
        raise HTTPException(403, reason)
    return user


@router.get("/patients", summary="Patients the forwarded Grafana user may see (the board's $patient variable)")
def grafana_patients(request: Request) -> dict:
    user = grafana_user(request)
    grants = patients_visible_to(registry_of(request), user, now_ms())
    return {"rows": [{"pseudonym": g.pseudonym, "care_role": g.care_role,
                      "categories": sorted(c.value for c in g.categories)} for g in grants]}


def _metrics(category: str, metric: str | None) -> tuple[Category, list[str]]:
    try:
        wanted = Category(category)
    except ValueError:
        raise HTTPException(422, f"category: expected one of {', '.join(c.value for c in Category)}, "
                                 f"got {category!r}") from None
    if not metric:
        return wanted, metrics_of(wanted)
    names = [m.strip() for m in metric.split(",") if m.strip()]
    wrong = [m for m in names if m not in VITAL_METRICS or VITAL_METRICS[m].category != wanted]
    if wrong:
        raise HTTPException(422, f"metric: {', '.join(wrong)} not a metric of {wanted.value} "
                                 f"(expected some of {', '.join(metrics_of(wanted))})")
    return wanted, names


def _range(request: Request, start: int | None, end: int | None) -> tuple[int, int]:
    config = domain_config(request, "vitals")
    end_ms = end if end is not None else now_ms()
    start_ms = start if start is not None else end_ms - config.default_range_days * DAY_MS
    if start_ms >= end_ms:
        raise HTTPException(422, "from must be before to (epoch milliseconds, Grafana's ${__from} / ${__to})")
    if end_ms - start_ms > config.max_range_days * DAY_MS:
        raise HTTPException(422, f"from..to spans more than {config.max_range_days} days "
                                 f"(domains.vitals.max_range_days): narrow the board's time range")
    return start_ms, end_ms


def _number(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


@router.get("/series", summary="One patient's series of one category for the forwarded Grafana user")
async def grafana_series(request: Request, patient: str, category: str,
                         metric: str | None = Query(None, description="some metrics of the category, comma-separated"),
                         start: int | None = Query(None, alias="from", description="epoch ms (Grafana ${__from})"),
                         end: int | None = Query(None, alias="to", description="epoch ms (Grafana ${__to})")) -> dict:
    params.check_id("patient", patient)
    await asyncio.to_thread(grafana_user, request, patient)    # registry and audit: off the event loop
    wanted, metrics = _metrics(category, metric)
    start_ms, end_ms = _range(request, start, end)
    # 403 + audited denial, or audited as allowed
    await asyncio.to_thread(require_grant, request, patient, ACTION, [wanted])
    frame = await fetch_vitals(request, patient, metrics, start_ms, end_ms)
    rows = []
    for record in frame.select(["time", *[m for m in metrics if m in frame.columns]]).iter_rows(named=True):
        values = {m: _number(record.get(m)) for m in metrics}
        if any(v is not None for v in values.values()):
            rows.append({"time": record["time"], **values})
    return {"patient": patient, "category": wanted.value, "rows": rows}
