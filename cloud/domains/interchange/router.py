"""/api/interchange/*: communities, a day's slots and flows, monthly statements (JSON, CSV, xlsx),
the day/night x weekday/holiday breakdown, per-participant slots and the range settlement.
Thin: validate, read (data.py), compute (statements.py), answer."""

from __future__ import annotations

import time
from datetime import date

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains._greencity.calendar import (DAY_MS, SLOT_MS, date_start_ms, fiscal_year, local_date,
                                               month_of_ms, month_range_ms, slot_start)
from cloud.domains.interchange import charging, data, jobs, statements
from cloud.domains.interchange.config import Community, InterchangeConfig

router = APIRouter()

MAX_SETTLE_DAYS = 400
FORMATS = ("json", "csv", "xlsx")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def require_write(request: Request):
    """The settle route needs interchange:write on top of the router's interchange:read."""
    return await request.app.state.auth.require_scope(WRITE_SCOPE)(request)


WRITE_SCOPE = "interchange:write"
require_write.required_scope = WRITE_SCOPE      # seen by cloud.api.auth.route_scopes (docs, route checks)


def _community(request: Request, community_id: str) -> Community:
    config: InterchangeConfig = domain_config(request, "interchange") or InterchangeConfig()
    community = config.community(community_id)
    if community is None:
        known = ", ".join(c.id for c in config.communities) or "none configured"
        raise HTTPException(404, f"no community {community_id[:64]!r} (domains.interchange.communities: {known})")
    return community


def _day(value: str | None) -> tuple[str, int, int]:
    try:
        day = date.fromisoformat(value) if value else local_date(int(time.time() * 1000))
    except ValueError:
        raise params.InvalidParameter("date", f"{value[:20]!r} is not a date (expected YYYY-MM-DD)") from None
    start = date_start_ms(day)
    return day.isoformat(), start, start + DAY_MS


def _month(value: str | None) -> tuple[str, int, int]:
    month = value or month_of_ms(int(time.time() * 1000))
    try:
        start, end = month_range_ms(month)
    except ValueError as exc:
        raise params.InvalidParameter("month", str(exc)) from None
    return month, start, end


def consumer_factors(request: Request, sites: list[str], fy: int) -> dict[str, float | None]:
    """site -> adjusted kg-CO2/kWh of its retailer (co2 domain's site config; else the national
    default); None when the co2 domain or the factor is not there."""
    try:
        from cloud.domains.co2.factors import load_factors
        factors = load_factors()
    except ImportError:
        return {site: None for site in sites}
    co2 = request.app.state.domain_configs.get("co2")
    out = {}
    for site in sites:
        co2_site = co2.site(site) if co2 is not None else None
        factor = co2_site.factor(factors, fy) if co2_site else factors.electricity("default", "standard", fy)
        out[site] = factor.adjusted_kg_per_kwh
    return out


@router.get("/communities", summary="Communities, their current rule and participants")
async def communities(request: Request) -> dict:
    config: InterchangeConfig = domain_config(request, "interchange") or InterchangeConfig()
    month = month_of_ms(int(time.time() * 1000))
    return {"communities": [{"id": c.id, "name": c.name, "rule": c.rule_for(month), "price_yen_per_kwh":
                             c.price_yen_per_kwh, "participants": [{"site": p.site, "role": p.role}
                                                                   for p in c.participants]}
                            for c in config.communities]}


@router.get("/communities/{community_id}/day", summary="A day's 48 slots (totals) and flows per pair")
async def day(request: Request, community_id: str, date: str | None = Query(None, description="YYYY-MM-DD (JST)")):
    community = _community(request, community_id)
    day_text, start, end = _day(date)
    reader = request.app.state.reader
    settled = await data.fetch_settled(reader, community.id, start, end)
    slots, flows = statements.day_view(settled, await data.fetch_flows(reader, community.id, start, end))
    return {"community": community.id, "date": day_text, "rule": community.rule_for(month_of_ms(start)),
            "slots": slots, "flows": flows}


@router.get("/communities/{community_id}/slots", summary="A day's allocation per participant per slot")
async def participant_slots(request: Request, community_id: str,
                            date: str | None = Query(None, description="YYYY-MM-DD (JST)")):
    community = _community(request, community_id)
    day_text, start, end = _day(date)
    settled = await data.fetch_settled(request.app.state.reader, community.id, start, end)
    return {"community": community.id, "date": day_text, "rule": community.rule_for(month_of_ms(start)),
            "slots": settled.to_dicts()}


@router.get("/communities/{community_id}/statements", summary="Monthly statement per participant")
async def month_statements(request: Request, community_id: str,
                           month: str | None = Query(None, description="YYYY-MM (JST); default this month"),
                           format: str = Query("json", description="json, csv or xlsx")):
    community = _community(request, community_id)
    if format not in FORMATS:
        raise params.InvalidParameter("format", f"{format[:20]!r} is not one of {', '.join(FORMATS)}")
    month, start, end = _month(month)
    reader = request.app.state.reader
    settled = await data.fetch_settled(reader, community.id, start, end)
    flows = await data.fetch_flows(reader, community.id, start, end)
    sites = [p.site for p in community.participants]
    factors = consumer_factors(request, sites, fiscal_year(local_date(start)))
    rows = statements.statements(settled, flows, [{"site": p.site, "role": p.role} for p in community.participants],
                                 community.price_yen_per_kwh, factors)
    price, name = community.price_yen_per_kwh, f"interchange-{community.id}-{month}"
    if format == "csv":
        return Response(statements.statements_csv(rows, community.id, month, price),
                        media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if format == "xlsx":
        body = statements.statements_xlsx(rows, statements.breakdown(settled), community.id, month, price)
        return Response(body, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    slots_settled = settled["slot_start"].n_unique() if settled.height else 0
    provisional = bool(settled["provisional"].any()) if settled.height else False
    return {"community": community.id, "month": month, "rule": community.rule_for(month),
            "price_yen_per_kwh": price, "provisional": provisional,
            "slots_expected": statements.expected_slots(start, end), "slots_settled": slots_settled,
            "participants": rows}


@router.get("/communities/{community_id}/breakdown", summary="Day/night x weekday/holiday: where sharing pays")
async def month_breakdown(request: Request, community_id: str,
                          month: str | None = Query(None, description="YYYY-MM (JST); default this month")):
    community = _community(request, community_id)
    month, start, end = _month(month)
    settled = await data.fetch_settled(request.app.state.reader, community.id, start, end)
    return {"community": community.id, "month": month, "rule": community.rule_for(month),
            "groups": statements.breakdown(settled)}


@router.post("/communities/{community_id}/settle", dependencies=[Depends(require_write)],
             summary="Settle a range (at most 400 days) in one go from stored energy_slot")
async def settle(request: Request, community_id: str,
                 start: str = Query(..., description="RFC3339 or relative (-365d); widened to a slot start"),
                 end: str = Query("now", description="RFC3339, relative or now")):
    community = _community(request, community_id)
    now_ms = int(time.time() * 1000)
    start_ms = slot_start(params.parse_time_ms("start", start, now_ms))
    end_ms = slot_start(params.parse_time_ms("end", end, now_ms) + SLOT_MS - 1)
    if end_ms <= start_ms:
        raise params.InvalidParameter("end", "must be after start")
    if end_ms - start_ms > MAX_SETTLE_DAYS * DAY_MS:
        raise params.InvalidParameter("start", f"the range may span at most {MAX_SETTLE_DAYS} days")
    reader = request.app.state.reader
    points, chosen = await jobs.settle_range(reader, community, start_ms, end_ms, now_ms)
    await data.write(reader, points)
    return {"community": community.id, "start": start_ms, "end": end_ms, "points": len(points),
            "slots": chosen.height, "provisional": int(chosen["provisional"].sum()) if chosen.height else 0,
            "unsettled": (end_ms - start_ms) // SLOT_MS - chosen.height}


@router.post("/communities/{community_id}/charging-target", dependencies=[Depends(require_write)],
             summary="Send a day's expected surplus to the community's charging sites now (site_target command)")
async def charging_target(request: Request, community_id: str,
                          date: str | None = Query(None, description="YYYY-MM-DD (JST): the day to charge; "
                                                                      "default tomorrow")):
    """What the ``interchange.charging_target`` job does at 20:00 JST, on request: after a config
    change, or to see the window the job would choose. Each charging participant gets its own
    target; ``command`` is null (with the reason) when nothing was sent."""
    from cloud.api.commands import CommandUnavailable, issue_command

    community = _community(request, community_id)
    day_text, start, _ = _day(date or (local_date(int(time.time() * 1000) + DAY_MS)).isoformat())
    expected = await jobs.expected_surplus(request.app.state.reader, community, start)
    principal = getattr(request.state, "principal", None)
    answers = []
    for p in community.participants:
        if p.charging is None:
            continue
        target = charging.choose_window(expected, p.charging.max_kw)
        answer = {"site": p.site, "agent": p.charging.agent, "source": p.charging.source,
                  "target": target.params() if target else None, "command": None, "reason": ""}
        if target is None:
            answer["reason"] = "no expected surplus that day"
        elif target.until_ms <= time.time() * 1000:
            answer["reason"] = "the window is over already"
        else:
            try:
                answer["command"] = await issue_command(
                    request.app.state, site=p.site, agent=p.charging.agent, target=p.charging.source,
                    name="site_target", params=target.params(),
                    expires_in_s=max(60, int(target.until_ms - time.time() * 1000) // 1000),
                    issued_by=principal.name if principal else "local (auth off)")
            except CommandUnavailable as exc:
                answer["reason"] = str(exc)
        answers.append(answer)
    if not answers:
        raise params.InvalidParameter("community_id", f"community {community.id} has no participant with a "
                                                      "charging section")
    return {"community": community.id, "date": day_text, "targets": answers}
