"""GET /api/toy/peaks: thin - validate, read, call the service."""

import time

from fastapi import APIRouter, Query, Request

from cloud.api import params
from cloud.domains import domain_config

from .jobs import read_gauge
from .service import peaks

router = APIRouter()


@router.get("/peaks", summary="Peak of the configured gauge per device and 10 minutes")
async def get_peaks(request: Request, site: str = Query(...), start: str = Query("-1h"),
                    end: str = Query("now")) -> dict:
    now_ms = int(time.time() * 1000)
    site = params.check_id("site", site)
    start_ms, end_ms = params.parse_time_ms("start", start, now_ms), params.parse_time_ms("end", end, now_ms)
    params.check_range(start_ms, end_ms, 600_000)
    frame = await read_gauge(request.app.state.reader, domain_config(request, "toy"), start_ms, end_ms, site)
    return {"peaks": peaks(frame, 600).to_dicts()}
