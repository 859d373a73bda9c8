"""/api/roadmap/*: the measures library, measures evaluated on a site's measured load, saved
roadmaps, a roadmap's trajectory and two roadmaps compared (JSON, CSV, Excel). Thin: validate,
read (data.py), compute (build.py, service.py, plan.py)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains._greencity.calendar import DAY_MS, day_start, fiscal_year, local_date
from cloud.domains.co2.config import Co2Config, Co2Site
from cloud.domains.co2.factors import load_factors
from cloud.domains.roadmap import build, data, export, plan
from cloud.domains.roadmap.config import RoadmapConfig
from cloud.domains.roadmap.library import load_library
from cloud.domains.roadmap.schemas import CompareIn, EvaluateIn, Prices, RoadmapIn, RoadmapRef, SaveIn, TrajectoryIn
from cloud.domains.roadmap.service import SiteState, baseline_summary, check_profile

router = APIRouter()
FORMATS = ("json", "csv", "xlsx")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def require_write(request: Request):
    """Saving needs roadmap:write on top of the router's roadmap:read."""
    return await request.app.state.auth.require_scope("roadmap:write")(request)

require_write.required_scope = "roadmap:write"     # seen by the route walk (cloud.api.auth.route_scopes)


def _config(request: Request) -> RoadmapConfig:
    return domain_config(request, "roadmap") or RoadmapConfig()


def _co2(request: Request) -> Co2Config:
    """The co2 domain's section: the sites, their grid meters, factor and baseline."""
    return request.app.state.domain_configs.get("co2") or Co2Config()


def _site(request: Request, site_id: str) -> Co2Site:
    co2 = _co2(request)
    site = co2.site(site_id)
    if site is None:
        raise HTTPException(404, f"site {site_id!r} is not in domains.co2.sites (known: "
                                 f"{', '.join(s.id for s in co2.sites) or 'none'})")
    return site


def _factors(request: Request):
    co2 = _co2(request)
    return load_factors(None if co2.factors_dir is None else Path(co2.factors_dir))


def _fuel_lookup(factors):
    def lookup(fuel_id: str):
        fuel = factors.fuel(fuel_id)
        return fuel.gj_per_unit, fuel.kg_co2_per_unit, fuel.unit, fuel.source
    return lookup


async def _state(request: Request, body: Prices) -> tuple[SiteState, dict, Co2Site, int]:
    """The site's measured profile of the last profile_days, its factor and the price; 422 without data."""
    site = _site(request, body.site)
    config, library = _config(request), load_library()
    fy = body.fy or fiscal_year(local_date(int(time.time() * 1000)))
    factors = _factors(request)
    if body.factor_kg_per_kwh is not None:
        factor = {"kg_per_kwh": body.factor_kg_per_kwh, "source": "request (factor_kg_per_kwh)", "note": ""}
    else:
        known = site.factor(factors, fy)
        value = known.adjusted_kg_per_kwh if known.adjusted_kg_per_kwh is not None else known.basic_kg_per_kwh
        if value is None:
            raise HTTPException(422, f"no electricity factor known for site {site.id!r} (retailer {site.retailer!r}, "
                                     f"FY{fy}: {known.note}); give factor_kg_per_kwh or set own_factor in "
                                     "domains.co2.sites")
        factor = {"kg_per_kwh": value, "retailer": known.retailer, "menu": known.menu,
                  "kind": "adjusted" if known.adjusted_kg_per_kwh is not None else "basic",
                  "source": known.source, "note": known.note}
    if not site.meters():
        raise HTTPException(422, f"site {site.id!r} has no grid_meters in domains.co2.sites: the measures need "
                                 "its measured 30-minute load")
    end_ms = day_start(int(time.time() * 1000)) + DAY_MS
    start_ms = end_ms - config.profile_days * DAY_MS
    profile = await data.fetch_profile(request.app.state.reader, site.meters(), start_ms, end_ms)
    if profile.height == 0:
        raise HTTPException(422, f"site {site.id!r} has no measured energy (energy_slot of "
                                 f"{', '.join(m.device + '/' + m.metric for m in site.meters())}) from "
                                 f"{local_date(start_ms)} to {local_date(end_ms - 1)}: nothing to evaluate on")
    price = body.electricity_price_yen_per_kwh or config.electricity_price_yen_per_kwh \
        or library.electricity_price_yen_per_kwh.value
    state = SiteState(check_profile(profile), factor["kg_per_kwh"], price)
    context = {"site": site.id, "fy": fy, "factor": factor, "electricity_price_yen_per_kwh": price,
               "profile": {"start": start_ms, "end": end_ms, **baseline_summary(state)}}
    return state, context, site, fy


def _steps(request: Request, measures, with_fy: bool):
    if len(measures) > _config(request).max_steps:
        raise params.InvalidParameter("measures", f"at most {_config(request).max_steps} measures "
                                                  "(domains.roadmap.max_steps)")
    library, lookup = load_library(), _fuel_lookup(_factors(request))
    try:
        steps = [build.make_step(library, m.measure, m.params, lookup) for m in measures]
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return [(m.fy, s) for m, s in zip(measures, steps)] if with_fy else steps


@router.get("/measures", summary="The measures library: parameters with their sources, investment, lifetime")
async def measures() -> dict:
    return load_library().model_dump()


@router.post("/evaluate", summary="kWh, CO2 and yen saved per year, investment and payback of measures, "
                                  "applied in order on the site's measured load of the last year")
async def evaluate(request: Request, body: EvaluateIn) -> dict:
    steps = _steps(request, body.measures, with_fy=False)
    state, context, _, _ = await _state(request, body)
    try:
        results = build.evaluate(state, steps)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    totals = {key: sum(r[key] for r in results) for key in ("kwh_saved", "co2_saved_kg", "scope3_saved_kg",
                                                            "yen_saved", "investment_yen")}
    return {**context, "measures": results, "total": totals}


async def _resolve(request: Request, site: str, roadmap: RoadmapIn | RoadmapRef) -> RoadmapIn:
    if isinstance(roadmap, RoadmapIn):
        return roadmap
    saved = await data.fetch_roadmaps(request.app.state.reader, site, roadmap.name)
    if not saved:
        raise HTTPException(404, f"no roadmap {roadmap.name!r} saved for site {site!r} (POST /api/roadmap/roadmaps)")
    return RoadmapIn.model_validate(saved[0]["roadmap"])


async def _outcome(request: Request, roadmap: RoadmapIn, state: SiteState, site: Co2Site, fy: int):
    steps = _steps(request, roadmap.steps, with_fy=True)
    try:
        return build.roadmap(state, roadmap.name, steps, fy, roadmap.scope1_kg_per_year, site.baseline_fy,
                             site.baseline_t_co2)
    except ValueError as exc:
        raise HTTPException(422, f"roadmap {roadmap.name!r}: {exc}") from None


def _baseline(site: Co2Site, outcome) -> dict:
    if site.baseline_t_co2 is not None and site.baseline_fy is not None:
        return {"fy": site.baseline_fy, "t_co2": site.baseline_t_co2, "source": "domains.co2.sites[].baseline_t_co2"}
    first = outcome.rows.row(0, named=True)
    return {"fy": first["fy"], "t_co2": first["target_t_co2"],
            "source": "current emissions (no baseline_fy/baseline_t_co2 configured for the site in domains.co2)"}


@router.post("/roadmaps", summary="Save a roadmap for a site (replaces one of the same name)",
             dependencies=[Depends(require_write)])
async def save_roadmap(request: Request, body: SaveIn) -> dict:
    _site(request, body.site)
    _steps(request, body.roadmap.steps, with_fy=True)          # refuse what could not be evaluated later
    principal = getattr(request.state, "principal", None)
    saved_by = principal.name if principal is not None else "anonymous"
    now_ms = int(time.time() * 1000)
    await request.app.state.reader.write_points([data.roadmap_point(body.site, body.roadmap.name,
                                                                    body.roadmap.model_dump(), saved_by, now_ms)])
    return {"site": body.site, "name": body.roadmap.name, "saved_at": now_ms, "saved_by": saved_by}


@router.get("/roadmaps", summary="The roadmaps saved for a site (newest version of each name)")
async def list_roadmaps(request: Request, site: str = Query(..., description="site id")) -> dict:
    site = params.check_id("site", site)
    return {"site": site, "roadmaps": await data.fetch_roadmaps(request.app.state.reader, site)}


@router.post("/trajectory", summary="One roadmap's CO2 trajectory to FY2050 and its cost")
async def trajectory(request: Request, body: TrajectoryIn) -> dict:
    roadmap = await _resolve(request, body.site, body.roadmap)
    state, context, site, fy = await _state(request, body)
    outcome = await _outcome(request, roadmap, state, site, fy)
    return {**context, "baseline": _baseline(site, outcome), **outcome.as_dict()}


@router.post("/compare", summary="Two roadmaps of a site side by side: CO2 and cost per FY, FY2030, cost per t-CO2")
async def compare(request: Request, body: CompareIn,
                  format: str = Query("json", description="json, csv or xlsx")):
    if format not in FORMATS:
        raise params.InvalidParameter("format", f"{format[:20]!r} is not one of {', '.join(FORMATS)}")
    a, b = await _resolve(request, body.site, body.a), await _resolve(request, body.site, body.b)
    state, context, site, fy = await _state(request, body)
    outcome_a = await _outcome(request, a, state, site, fy)
    outcome_b = await _outcome(request, b, state, site, fy)
    comparison = plan.compare(a.name, outcome_a.rows, b.name, outcome_b.rows)
    filename = f"roadmaps-{body.site}-FY{fy}"
    if format == "csv":
        return Response(export.comparison_csv(comparison), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})
    if format == "xlsx":
        return Response(export.comparison_xlsx(comparison), media_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{filename}.xlsx"'})
    return {**context, "baseline": _baseline(site, outcome_a), **comparison,
            "roadmaps": [outcome_a.as_dict(), outcome_b.as_dict()]}
