"""/api/charging/*: session records, the monthly settlement per employee tag (JSON or CSV) and each
connector's newest state. Thin: validate, read (data.py), compute (service.py)."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains.charging import data, service
from cloud.domains.charging.config import ChargingConfig

router = APIRouter()

DAY_MS = 86_400_000
FORMATS = ("json", "csv")
# id_tag is a tag value the charger sent (OCPP idTag / IdToken: at most 36 characters); it is quoted anyway.
_ID_TAG = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")


def _config(request: Request) -> ChargingConfig:
    return domain_config(request, "charging") or ChargingConfig()


def check_id_tag(value: str | None) -> str | None:
    if value is not None and not _ID_TAG.fullmatch(value):
        raise params.InvalidParameter("id_tag", "expected the RFID tag as the charger sent it (1-128 characters, "
                                                "no control characters)")
    return value


def check_month(value: str | None, now_ms: int) -> tuple[str, int, int]:
    month = value or service.month_of(now_ms)
    try:
        start_ms, end_ms = service.month_range_ms(month)
    except ValueError as exc:
        raise params.InvalidParameter("month", str(exc)) from None
    return month, start_ms, end_ms


async def _sessions(request: Request, site: str, start_ms: int, end_ms: int, id_tag: str | None):
    limit = _config(request).max_sessions
    frame = await data.fetch_sessions(request.app.state.reader, site, start_ms, end_ms, id_tag, limit + 1)
    if frame.height > limit:
        raise params.InvalidParameter("from", f"more than {limit} sessions in this range; choose a shorter one "
                                              "(domains.charging.max_sessions)")
    return service.clean_sessions(frame)


@router.get("/sessions", summary="Finished charging sessions of a site, newest last")
async def sessions(
    request: Request,
    site: str = Query(..., description="site id"),
    start: str = Query("-30d", alias="from", description="RFC3339, relative (-30d) or now: sessions that ended from"),
    end: str = Query("now", alias="to", description="RFC3339, relative or now: sessions that ended before"),
    id_tag: str | None = Query(None, description="only this employee's RFID tag"),
) -> dict:
    now_ms = int(time.time() * 1000)
    site, id_tag = params.check_id("site", site), check_id_tag(id_tag)
    start_ms, end_ms = params.parse_time_ms("from", start, now_ms), params.parse_time_ms("to", end, now_ms)
    params.check_range(start_ms, end_ms, DAY_MS)
    max_days = _config(request).max_range_days
    if end_ms - start_ms > max_days * DAY_MS:
        raise params.InvalidParameter("from", f"the range may span at most {max_days} days "
                                              "(domains.charging.max_range_days)")
    frame = await _sessions(request, site, start_ms, end_ms, id_tag)
    records = [{"charger": r["charger"], "evse": r["evse"], "id_tag": r["id_tag"], "session_id": r["session_id"],
                "start": r["start_ms"], "stop": r["stop_ms"], "duration_s": r["duration_s"],
                "energy_kwh": r["energy_kwh"], "peak_w": r["peak_w"], "pv_kwh": r["pv_kwh"],
                "pv_share": r["pv_share"], "stop_reason": r["stop_reason"]} for r in frame.iter_rows(named=True)]
    return {"site": site, "from": start_ms, "to": end_ms, "id_tag": id_tag, "count": len(records),
            "energy_kwh": round(float(frame["energy_kwh"].fill_null(0.0).sum()), service.DECIMALS),
            "sessions": records}


@router.get("/sessions/summary", summary="Sessions, kWh and PV share per employee tag for one month (JST)")
async def summary(
    request: Request,
    site: str = Query(..., description="site id"),
    month: str | None = Query(None, description="YYYY-MM in Asia/Tokyo; default: the current month"),
    format: str = Query("json", description="json, or csv: the settlement sheet for payroll / expenses"),
):
    now_ms = int(time.time() * 1000)
    site = params.check_id("site", site)
    if format not in FORMATS:
        raise params.InvalidParameter("format", f"{format[:20]!r} is not one of {', '.join(FORMATS)}")
    month, start_ms, end_ms = check_month(month, now_ms)
    per_tag = service.summary_per_tag(await _sessions(request, site, start_ms, end_ms, None))
    if format == "csv":
        return Response(service.summary_csv(per_tag, site, month), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="charging-{site}-{month}.csv"'})
    return {"site": site, "month": month, "timezone": service.TIMEZONE, "from": start_ms, "to": end_ms,
            "tags": per_tag.to_dicts(), "total": service.totals(per_tag)}


@router.get("/chargers", summary="Each connector's newest status, power, mode, target current and decision")
async def chargers(request: Request, site: str = Query(..., description="site id")) -> dict:
    site = params.check_id("site", site)
    since_ms = int(time.time() * 1000) - _config(request).connector_lookback_days * DAY_MS
    connectors = await data.fetch_connectors(request.app.state.reader, site, since_ms)
    return {"site": site, "since": since_ms, "connectors": connectors}
