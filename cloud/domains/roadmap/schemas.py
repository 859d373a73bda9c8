"""Request bodies of /api/roadmap/* (pydantic, extra keys refused)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_NAME = r"^[^\x00-\x1f\x7f]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeasureIn(_Strict):
    measure: str = Field(description="a measure id of GET /api/roadmap/measures")
    params: dict[str, Any] = Field(default_factory=dict, description="overrides of the library's parameters")


class StepIn(MeasureIn):
    fy: int = Field(ge=2000, le=2050, description="the fiscal year the measure starts counting")


class Prices(_Strict):
    site: str = Field(pattern=_ID, description="a site of domains.co2.sites with grid meters")
    fy: int | None = Field(default=None, ge=2000, le=2050,
                           description="fiscal year of the electricity factor (and a roadmap's first year); "
                                       "default: the current one")
    electricity_price_yen_per_kwh: float | None = Field(default=None, gt=0, le=200)
    factor_kg_per_kwh: float | None = Field(default=None, ge=0, le=2,
                                            description="instead of the site's factor from the co2 domain")


class EvaluateIn(Prices):
    measures: list[MeasureIn] = Field(min_length=1)


class RoadmapIn(_Strict):
    name: str = Field(pattern=_NAME)
    steps: list[StepIn] = Field(description="measures placed on fiscal years; [] = do nothing (a reference)")
    scope1_kg_per_year: float | None = Field(
        default=None, ge=0, description="the site's current fuel CO2 (Scope 1); default: the fuel the roadmap's "
                                        "heat pumps and company EVs replace")


class RoadmapRef(_Strict):
    name: str = Field(pattern=_NAME, description="a roadmap saved for the site")


class SaveIn(_Strict):
    site: str = Field(pattern=_ID)
    roadmap: RoadmapIn


class TrajectoryIn(Prices):
    roadmap: RoadmapIn | RoadmapRef


class CompareIn(Prices):
    a: RoadmapIn | RoadmapRef
    b: RoadmapIn | RoadmapRef
