"""``domains.forecast`` in cloud.yaml: what is forecast, from which meters."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.domains._greencity.energy import MeterRef
from cloud.domains.forecast.models import TargetSpec
from hinode.contract import Ident, MetricName


class ForecastMeter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Ident
    metric: MetricName = "energy_import"


class ForecastTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: Ident
    target: Literal["demand", "pv"] = Field(description="demand: kWh drawn per slot; pv: kWh generated per slot")
    meters: list[ForecastMeter] = Field(min_length=1, description="energy counters summed per slot "
                                                                  "(demand: imports; pv: the inverter's export)")
    kwp: float | None = Field(default=None, gt=0, le=1_000_000, description="pv: rated power of the modules (kWp)")
    extra_holidays: list[date] = Field(default_factory=list, description="days the site is closed besides the "
                                                                         "common calendar")

    @model_validator(mode="after")
    def _pv_needs_kwp(self):
        if self.target == "pv" and self.kwp is None:
            raise ValueError(f"target pv of site {self.site!r} needs kwp (the rated power in kWp, e.g. kwp: 400)")
        return self

    def meter_refs(self) -> list[MeterRef]:
        return [MeterRef(self.site, m.device, m.metric) for m in self.meters]

    def spec(self) -> TargetSpec:
        return TargetSpec(self.target, self.kwp, frozenset(self.extra_holidays))


class ForecastConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[ForecastTarget] = Field(default_factory=list)
    weather_csv: Path | None = Field(default=None, description="optional CSV time,ghi_w_m2,temp_c (hourly or 30-min; "
                                                               "time ISO 8601, JST when it has no offset)")
    history_days: int = Field(default=365, ge=28, le=1096, description="days of energy_slot history a forecast "
                                                                      "trains on")
    retrain_every_days: int = Field(default=7, ge=1, le=366, description="POST /run over several days: retrain "
                                                                          "the model every this many days")

    @model_validator(mode="after")
    def _unique_targets(self):
        seen = set()
        for t in self.targets:
            if (t.site, t.target) in seen:
                raise ValueError(f"targets: site {t.site!r} has target {t.target!r} twice; list it once")
            seen.add((t.site, t.target))
        return self

    def target(self, site: str, target: str) -> ForecastTarget | None:
        return next((t for t in self.targets if t.site == site and t.target == target), None)
