"""/api/co2/*: sites, summaries, progress, the city aggregate, slots, the monthly report and inputs.
Thin: validate, read (data.py / figures.py), compute (accounting.py / summary.py), answer."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import date

import polars as pl
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains._greencity.calendar import (DAY_MS, date_start_ms, fiscal_months, fiscal_year, local_date,
                                               parse_month, slot_start)
from cloud.domains.co2 import accounting, data, exports, figures, inputs, jobs, summary
from cloud.domains.co2.config import Co2Config, Co2Site
from cloud.domains.co2.factors import FactorSet

router = APIRouter()
WRITE_SCOPE = "co2:write"
PERIODS = ("day", "month", "fy")
FORMATS = ("json", "csv", "xlsx")


async def require_write(request: Request):
    return await request.app.state.auth.require_scope(WRITE_SCOPE)(request)

require_write.required_scope = WRITE_SCOPE     # seen by the route walk (cloud.api.auth.route_scopes)


def _config(request: Request) -> Co2Config:
    return domain_config(request, "co2") or Co2Config()


def _site(config: Co2Config, site_id: str) -> Co2Site:
    site = config.site(site_id)
    if site is None:
        known = ", ".join(s.id for s in config.sites) or "none"
        raise HTTPException(404, f"site {site_id!r} is not configured for CO2 accounting "
                                 f"(domains.co2.sites: {known})")
    return site


def _now() -> int:
    return int(time.time() * 1000)


def _fy(value: int | None, now_ms: int) -> int:
    return value if value is not None else fiscal_year(local_date(now_ms))


def _factor_dict(factor) -> dict:
    return {k: v for k, v in asdict(factor).items() if k != "fiscal_year"}


def _rows(frame: pl.DataFrame) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "slots"} for row in frame.iter_rows(named=True)]


def _export(rows: list[dict], columns, fmt: str, name: str, preamble: list) -> Response:
    if fmt == "csv":
        return Response(exports.table_csv(rows, columns, preamble), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return Response(exports.table_xlsx([(name, rows, columns)], preamble), media_type=exports.XLSX_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise params.InvalidParameter(name, f"{value!r} must be one of {', '.join(choices)}")
    return value


@router.get("/sites", summary="Sites in CO2 accounting, their retailer and whether they have meters or bills")
async def sites(request: Request) -> dict:
    config = _config(request)
    billed = await data.sites_with_bills(request.app.state.reader)
    return {"sites": [{"site": s.id, "name": s.name or s.id, "retailer": s.retailer, "menu": s.menu,
                       "meters": len(s.grid_meters), "has_bills": s.id in billed,
                       "production_unit": s.production_unit} for s in config.sites]}


async def _baseline(request: Request, config: Co2Config, site: Co2Site, factors: FactorSet, now_ms: int) -> dict:
    if site.baseline_t_co2 is not None:
        return summary.baseline(pl.DataFrame(), site.baseline_fy, site.baseline_t_co2)
    fy = site.baseline_fy or await figures.first_fiscal_year(request.app.state.reader, site)
    if fy is None:
        return summary.baseline(pl.DataFrame(), None, None)
    years = await figures.fiscal_year_rows(request.app.state.reader, config, site, factors, fy, fy, now_ms)
    return summary.baseline(years, fy, None)


@router.get("/sites/{site}/summary", summary="Scope 1 and 2 of a site per day, month or fiscal year")
async def site_summary(request: Request, site: str,
                       period: str = Query("month", description="day | month | fy"),
                       fy: int | None = Query(None, ge=2000, le=2100, description="fiscal year (April-March)"),
                       format: str = Query("json", description="json | csv | xlsx")):
    config, now_ms = _config(request), _now()
    the_site, factors = _site(config, site), jobs.factors_of(config)
    period, fmt, year = _check_choice("period", period, PERIODS), _check_choice("format", format, FORMATS), _fy(fy, now_ms)
    reader = request.app.state.reader
    months = fiscal_months(year)
    if period == "day":
        start_ms, end_ms = figures.fy_range(year)
        slots = await figures.slots_co2(reader, config, the_site, factors, start_ms, end_ms, now_ms)
        rows = [{"period": r["date"].isoformat(), "kwh": r["kwh"], "kwh_metered": r["kwh"], "kwh_billed": None,
                 "electricity_source": "meters", "scope1_kg": None, "scope2_location_kg": r["kg_location"],
                 "scope2_market_kg": r["kg_market"], "scope2_basic_kg": r["kg_basic"], "total_kg": None,
                 "completeness": r["completeness"], "production": None, "intensity_kg_per_unit": None}
                for r in accounting.daily(slots).iter_rows(named=True)]
    else:
        month_frame = await figures.month_rows(reader, config, the_site, factors, months, now_ms)
        rows = _rows(month_frame if period == "month" else summary.fiscal_years(month_frame))
    base = await _baseline(request, config, the_site, factors, now_ms)
    factor = the_site.factor(factors, year)
    if fmt != "json":
        return _export(rows, exports.SUMMARY_COLUMNS, fmt, f"co2-{site}-{period}-FY{year}",
                       [("site", site), ("fy", year)])
    return {"site": site, "fy": year, "period": period, "rows": rows, "baseline": base,
            "target_fy2030_t_co2": summary.target_2030(base), "factor": _factor_dict(factor),
            "location_factor": _factor_dict(config.location_factor(factors, year))}


@router.get("/sites/{site}/progress", summary="Fiscal-year totals against the baseline and the -46 % / net-zero line")
async def progress(request: Request, site: str) -> dict:
    config, now_ms = _config(request), _now()
    the_site, factors = _site(config, site), jobs.factors_of(config)
    base = await _baseline(request, config, the_site, factors, now_ms)
    current = fiscal_year(local_date(now_ms))
    first = base["fy"] if base["fy"] is not None else current
    years = await figures.fiscal_year_rows(request.app.state.reader, config, the_site, factors,
                                           min(first, current), current, now_ms)
    by_fy = {int(r["period"]): r for r in years.iter_rows(named=True)}
    return {"site": site, "baseline": base,
            "years": [{"fy": fy, "t_co2": None if by_fy.get(fy, {}).get("total_kg") is None
                       else by_fy[fy]["total_kg"] / 1000, "completeness": by_fy.get(fy, {}).get("completeness")}
                      for fy in range(min(first, current), current + 1)],
            "target_line": summary.target_line(base["fy"], base["t_co2"]) if base["t_co2"] is not None else []}


@router.get("/city", summary="The consortium's fiscal year: all configured sites, and how many are complete")
async def city(request: Request, fy: int | None = Query(None, ge=2000, le=2100),
               format: str = Query("json", description="json | csv | xlsx")):
    config, now_ms = _config(request), _now()
    factors, year, fmt = jobs.factors_of(config), _fy(fy, now_ms), _check_choice("format", format, FORMATS)
    start_ms, end_ms = figures.fy_range(year)
    reader = request.app.state.reader
    all_inputs = await data.fetch_inputs(reader, [s.id for s in config.sites], start_ms, end_ms)
    per_site = {s.id: await figures.month_rows(reader, config, s, factors, fiscal_months(year), now_ms,
                                               inputs=all_inputs) for s in config.sites}
    body = summary.city(year, per_site)
    if fmt == "csv":
        return _export(body["months"], exports.CITY_COLUMNS, fmt, f"co2-city-FY{year}", [("fy", year)])
    if fmt == "xlsx":
        content = exports.table_xlsx([("months", body["months"], exports.CITY_COLUMNS),
                                      ("sites", body["per_site"], exports.CITY_SITE_COLUMNS)], [("fy", year)])
        return Response(content, media_type=exports.XLSX_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="co2-city-FY{year}.xlsx"'})
    return body


@router.get("/sites/{site}/slots", summary="The 48 slots of one day: kWh, kg-CO2 and completeness")
async def slots(request: Request, site: str, day: date = Query(..., alias="date", description="YYYY-MM-DD (JST)")):
    config, now_ms = _config(request), _now()
    the_site, factors = _site(config, site), jobs.factors_of(config)
    start_ms = date_start_ms(day)
    frame = await figures.slots_co2(request.app.state.reader, config, the_site, factors, start_ms, start_ms + DAY_MS,
                                    now_ms)
    return {"site": site, "date": day.isoformat(), "meters": len(the_site.grid_meters),
            "slots": [{"slot_start": r["slot_start"], "slot": r["slot"], "kwh": r["kwh"],
                       "kg_location": r["kg_location"], "kg_market": r["kg_market"], "kg_basic": r["kg_basic"],
                       "meters_expected": r["meters_expected"], "meters_measured": r["meters_measured"],
                       "completeness": r["meters_measured"] / r["meters_expected"] if r["meters_expected"] else None}
                      for r in frame.iter_rows(named=True)]}


@router.get("/sites/{site}/report", summary="Printable monthly report (HTML, Japanese and English)",
            response_class=HTMLResponse)
async def report(request: Request, site: str, month: str = Query(..., description="YYYY-MM")):
    config, now_ms = _config(request), _now()
    the_site, factors = _site(config, site), jobs.factors_of(config)
    try:
        year, mon = parse_month(month)
    except ValueError as exc:
        raise params.InvalidParameter("month", str(exc)) from None
    last = f"{year - 1:04d}-{mon:02d}"
    reader = request.app.state.reader
    rows = await figures.month_rows(reader, config, the_site, factors, [month], now_ms)
    before = await figures.month_rows(reader, config, the_site, factors, [last], now_ms)
    fy = fiscal_year(date(year, mon, 1))
    page = exports.monthly_report_html(
        {"id": site, "name": the_site.name, "production_unit": the_site.production_unit}, month,
        rows.row(0, named=True), before.row(0, named=True), _factor_dict(the_site.factor(factors, fy)),
        _factor_dict(config.location_factor(factors, fy)))
    return HTMLResponse(page)


@router.get("/sites/{site}/inputs", summary="Monthly inputs (bills, fuels, production) of a fiscal year")
async def list_inputs(request: Request, site: str, fy: int | None = Query(None, ge=2000, le=2100)) -> dict:
    config, now_ms = _config(request), _now()
    _site(config, site)
    year = _fy(fy, now_ms)
    frame = await data.fetch_inputs(request.app.state.reader, [site], *figures.fy_range(year))
    return {"site": site, "fy": year, "inputs": frame.drop("site").to_dicts()}


def _entered_by(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return getattr(principal, "name", None) or "anonymous"


async def _store(request: Request, site: Co2Site, rows: list[tuple[int, dict]], source: str) -> dict:
    frame, errors = inputs.check_entries(rows, site, jobs.factors_of(_config(request)), source, _entered_by(request))
    rejected = [e.as_dict() for e in errors]
    metrics = getattr(request.app.state, "metrics", None)
    for _ in rejected:     # counted in hinode_api_invalid_parameters_total{parameter="co2_input_row"}
        if metrics is not None:
            metrics.invalid("co2_input_row")
    if frame.height == 0:
        raise HTTPException(422, {"message": "no valid row; nothing written", "written": 0, "rejected": rejected})
    written = await data.write_inputs(request.app.state.reader, frame)
    return {"site": site.id, "written": written, "rejected": rejected, "source": source}


@router.post("/sites/{site}/inputs", dependencies=[Depends(require_write)],
             summary="Enter monthly bills, fuel deliveries or production (JSON list); bad rows are listed")
async def post_inputs(request: Request, site: str) -> dict:
    the_site = _site(_config(request), site)
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise HTTPException(422, "expected a JSON list of {kind, item, month, amount, unit, cost_yen?}") from None
    if not isinstance(body, list) or not all(isinstance(e, dict) for e in body):
        raise HTTPException(422, "expected a JSON list of {kind, item, month, amount, unit, cost_yen?}")
    if len(body) > inputs.MAX_ROWS:
        raise HTTPException(422, f"at most {inputs.MAX_ROWS} entries per request")
    return await _store(request, the_site, list(enumerate(body, start=1)), "api")


@router.post("/sites/{site}/inputs/import", dependencies=[Depends(require_write)],
             summary="Import a CSV or .xlsx of monthly bills / fuel deliveries / production (raw request body)")
async def import_inputs(request: Request, site: str,
                        filename: str = Query("upload.csv", max_length=200, description="the file's name (.csv/.xlsx)"),
                        kind: str = Query("electricity", description="kind of rows without a kind column")) -> dict:
    the_site = _site(_config(request), site)
    _check_choice("kind", kind, inputs.KINDS)
    content = await request.body()
    if not content:
        raise HTTPException(422, "empty body: send the file's bytes (curl --data-binary @bills.csv)")
    try:
        rows = inputs.read_table(content, filename, {"kind": kind})
    except inputs.InputFileError as exc:
        raise HTTPException(422, str(exc)) from None
    safe_name = "".join(c for c in filename if c.isalnum() or c in "._-")[:100] or "upload"
    kind_of_file = "xlsx" if content[:4] == b"PK\x03\x04" else "csv"
    return await _store(request, the_site, rows, f"{kind_of_file}:{safe_name}")


@router.post("/recompute", dependencies=[Depends(require_write)],
             summary="Compute co2_slot for a range (up to max_recompute_days) in one go from energy_slot")
async def recompute(request: Request, start: str = Query(..., description="RFC3339 or relative (-365d)"),
                    end: str = Query("now", description="RFC3339, relative or now")) -> dict:
    config, now_ms = _config(request), _now()
    start_ms = params.parse_time_ms("start", start, now_ms)
    end_ms = params.parse_time_ms("end", end, now_ms)
    start_ms, end_ms = slot_start(start_ms), min(end_ms, figures.cutoff(now_ms))
    if end_ms <= start_ms:
        raise params.InvalidParameter("end", "must be after start (and in the past)")
    if end_ms - start_ms > config.max_recompute_days * DAY_MS:
        raise params.InvalidParameter("start", f"the range may span at most {config.max_recompute_days} days "
                                               "(domains.co2.max_recompute_days)")
    started = time.perf_counter()
    points = await jobs.recompute(request.app.state.reader, config, start_ms, end_ms)
    return {"points": points, "start": start_ms, "end": end_ms, "sites": len(config.sites),
            "seconds": round(time.perf_counter() - started, 3)}
