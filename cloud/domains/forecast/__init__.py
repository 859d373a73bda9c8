"""Forecast: day-ahead demand and PV per 30-minute slot (README.md in this folder)."""

from cloud.domains import Domain
from cloud.domains.forecast.config import ForecastConfig
from cloud.domains.forecast.jobs import DAY_AHEAD_JOB
from cloud.domains.forecast.router import router

DOMAIN = Domain(
    name="forecast",
    router=router,
    config_model=ForecastConfig,
    scopes={"forecast:read": ("day-ahead demand and PV forecasts and their accuracy: GET /api/forecast/*", False),
            "forecast:write": ("make and store forecasts now: POST /api/forecast/run", False)},
    jobs=[DAY_AHEAD_JOB],
)
