"""``domains.co2`` in cloud.yaml: the participating sites, their retailer and meters (README.md)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.domains._greencity.energy import MeterRef
from cloud.domains.co2.factors import ElectricityFactor, FactorSet

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class OwnFactor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    basic_kg_per_kwh: float | None = Field(default=None, ge=0, le=2)
    adjusted_kg_per_kwh: float | None = Field(default=None, ge=0, le=2)
    source: str = Field(default="site configuration (own_factor)", min_length=1)


class GridMeter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(pattern=_ID)
    metric: str = Field(default="energy_import", pattern=_ID)


class Co2Site(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID, description="the agents' site id")
    name: str = ""
    retailer: str = Field(default="default", description="key in factors/electricity.yaml; default = 代替値")
    menu: str = "standard"
    own_factor: OwnFactor | None = None
    grid_meters: list[GridMeter] = Field(default_factory=list, description="bought electricity (Scope 2)")
    baseline_fy: int | None = Field(default=None, ge=2000, le=2100,
                                    description="baseline fiscal year; unset: the first year with data")
    baseline_t_co2: float | None = Field(default=None, ge=0, description="known baseline emissions (t-CO2)")
    production_unit: str | None = None
    extra_holidays: list[date] = Field(default_factory=list)

    def meters(self) -> list[MeterRef]:
        return [MeterRef(self.id, m.device, m.metric) for m in self.grid_meters]

    def factor(self, factors: FactorSet, fiscal_year: int) -> ElectricityFactor:
        """The site's own factor if configured, else its retailer's (or the national default)."""
        if self.own_factor is not None:
            return ElectricityFactor(self.retailer, self.menu, fiscal_year, self.own_factor.basic_kg_per_kwh,
                                     self.own_factor.adjusted_kg_per_kwh, self.own_factor.source,
                                     "the site's own factor (domains.co2.sites[].own_factor)")
        return factors.electricity(self.retailer, self.menu, fiscal_year)


class Co2Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location_factor_kg_per_kwh: float | None = Field(
        default=None, ge=0, le=2, description="national average for location-based; null: the shipped file's value")
    factors_dir: str | None = Field(default=None, description="a directory with electricity.yaml and fuels.yaml "
                                                              "instead of the shipped ones")
    sites: list[Co2Site] = Field(default_factory=list)
    max_recompute_days: int = Field(default=400, ge=1, le=800)

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, sites: list[Co2Site]) -> list[Co2Site]:
        seen: set[str] = set()
        for site in sites:
            if site.id in seen:
                raise ValueError(f"site {site.id!r} is configured twice")
            seen.add(site.id)
        return sites

    def site(self, site_id: str) -> Co2Site | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def location_factor(self, factors: FactorSet, fiscal_year: int) -> ElectricityFactor:
        """The configured national average if set, else the shipped one."""
        if self.location_factor_kg_per_kwh is not None:
            value = self.location_factor_kg_per_kwh
            return ElectricityFactor("location", "national_average", fiscal_year, value, value,
                                     "domains.co2.location_factor_kg_per_kwh", "configured by the operator")
        return factors.location(fiscal_year)
