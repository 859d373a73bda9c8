"""``domains.roadmap`` in cloud.yaml (all keys optional). The sites, their grid meters, factor and
baseline come from ``domains.co2.sites``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RoadmapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    electricity_price_yen_per_kwh: float | None = Field(
        default=None, gt=0, le=200, description="price of a bought kWh when a request gives none; "
                                                 "unset: the measures library's value")
    profile_days: int = Field(default=365, ge=7, le=400,
                              description="days of measured 30-minute load before today that stand for the year")
    max_steps: int = Field(default=40, ge=1, le=200, description="measures per request or roadmap")
