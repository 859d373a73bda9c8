"""The ``forecast.day_ahead`` job and the forecast run shared with ``POST /api/forecast/run``.

Timing: the job's slots are whole JST days (every_s = 86400, aligned to JST midnight). The
slot of day X ends at X+1 00:00 and is due ``delay_s`` = 10 h later, at X+1 10:00 JST (the
JEPX day-ahead gate closure): the job then forecasts day X+2 = slot end + 1 day, issued at
X+1 10:00, from the ``energy_slot`` history that had ended by then. A run caught up late
(after a down time) uses the same issue time and the same data cut, so it gives what the
live run would have (apart from readings that arrived late). Its points lie in day X+2, so the
job declares ``points_ahead_s`` of two days and the scheduler writes and counts them.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta


from cloud.domains._greencity.calendar import DAY_MS, local_date
from cloud.domains.forecast import backtest, data
from cloud.domains.forecast.config import ForecastConfig
from cloud.domains.forecast.features import ISSUE_OFFSET_MS
from cloud.influx import AsyncInfluxClient
from cloud.points import Point
from cloud.scheduler import Job, JobContext, fixed_utc_offset_s

ALIGN_OFFSET_S = fixed_utc_offset_s("Asia/Tokyo")
ISSUE_DELAY_S = ISSUE_OFFSET_MS // 1000          # 10:00 JST after the day's slot ends


async def run_forecasts(reader: AsyncInfluxClient, config: ForecastConfig, first_day: date, last_day: date,
                        issue_times: dict[date, int]) -> tuple[list[Point], list[dict]]:
    """Forecast every configured target for ``first_day`` .. ``last_day`` (issue time per day);
    the points to write and a summary per target."""
    weather = await asyncio.to_thread(data.load_weather, config.weather_csv) if config.weather_csv else None
    first_issue, last_issue = min(issue_times.values()), max(issue_times.values())
    points, summary = [], []
    for target in config.targets:
        history = await data.fetch_target_energy(reader, target, first_issue - config.history_days * DAY_MS,
                                                 last_issue)
        forecasts = await asyncio.to_thread(backtest.walk_forward, history, target.spec(), first_day, last_day,
                                            issue_times=issue_times, retrain_every_days=config.retrain_every_days,
                                            weather=weather)
        points += data.forecast_points(target.site, target.target, forecasts)
        counts = dict(forecasts.group_by("model").len().iter_rows())
        summary.append({"site": target.site, "target": target.target, "history_slots": history.height,
                        "slots": {model: int(counts.get(model, 0)) for model in ("gbr", "seasonal_naive")}})
    return points, summary


async def day_ahead(slot_start_ms: int, slot_end_ms: int, ctx: JobContext) -> list[Point]:
    config: ForecastConfig = ctx.config or ForecastConfig()
    day = local_date(slot_end_ms) + timedelta(days=1)
    issued_ms = slot_end_ms + ISSUE_DELAY_S * 1000
    points, summary = await run_forecasts(ctx.influx, config, day, day, {day: issued_ms})
    ctx.log.info("forecast of %s issued at %d: %d points, %s", day, issued_ms, len(points), summary)
    return points


DAY_AHEAD_JOB = Job(name="forecast.day_ahead", every_s=86_400, run=day_ahead, delay_s=ISSUE_DELAY_S,
                    align_offset_s=ALIGN_OFFSET_S, points_ahead_s=2 * 86_400)
