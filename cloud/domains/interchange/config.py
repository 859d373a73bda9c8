"""``domains.interchange`` in cloud.yaml: communities, their participants and meters, the agreed
price and the allocation rule per month (README.md in this folder)."""

from __future__ import annotations

from operator import attrgetter
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.domains._greencity.calendar import parse_month
from cloud.domains._greencity.energy import MeterRef

SITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Meter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(pattern=SITE_PATTERN)
    metric: str = Field(default="energy_import", pattern=r"^[a-z][a-z0-9_]{0,63}$")


class Meters(BaseModel):
    """Producer: generation (required), export and consumption (optional). Consumer: consumption."""

    model_config = ConfigDict(extra="forbid")

    generation: Meter | None = None
    export: Meter | None = None
    consumption: Meter | None = None


class Charging(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(pattern=SITE_PATTERN, description="the edge agent that runs the OCPP source")
    source: str = Field(pattern=SITE_PATTERN, description="the OCPP source's name: the command's target")
    max_kw: float = Field(gt=0, le=10_000, description="the site target is never above this")


class Participant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(pattern=SITE_PATTERN)
    role: Literal["producer", "consumer"]
    meters: Meters
    static_share: float | None = Field(default=None, ge=0, le=1,
                                       description="consumer's fixed share of the shareable energy (static rule)")
    priority: int = Field(default=100, ge=0, le=10_000, description="priority rule: lower takes first")
    charging: Charging | None = None

    @model_validator(mode="after")
    def _meters_fit_the_role(self):
        if self.role == "producer" and self.meters.generation is None:
            raise ValueError(f"participant {self.site}: a producer needs meters.generation")
        if self.role == "consumer":
            if self.meters.consumption is None:
                raise ValueError(f"participant {self.site}: a consumer needs meters.consumption")
            if self.meters.generation is not None or self.meters.export is not None:
                raise ValueError(f"participant {self.site}: a consumer takes only meters.consumption")
        return self

    def meter_refs(self) -> dict[str, MeterRef]:
        """kind (generation/export/consumption) -> the meter."""
        return {kind: MeterRef(self.site, meter.device, meter.metric)
                for kind in ("generation", "export", "consumption")
                if (meter := getattr(self.meters, kind)) is not None}


class RuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_month: str = Field(description="YYYY-MM: the rule applies from this month on")
    rule: Literal["static", "pro_rata", "priority"]

    @field_validator("from_month")
    @classmethod
    def _month(cls, value: str) -> str:
        parse_month(value)
        return value


class Community(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=SITE_PATTERN)
    name: str = ""
    price_yen_per_kwh: float = Field(ge=0, le=1000, description="agreed price, paid by receivers to producers")
    grace_s: int = Field(default=7200, ge=0, le=7 * 86400,
                         description="a slot still incomplete this long after its end is settled provisionally")
    resettle_days: int = Field(default=2, ge=0, le=31,
                               description="each run re-settles the provisional slots of this many past days")
    rules: list[RuleEntry] = Field(min_length=1)
    participants: list[Participant] = Field(min_length=2)

    @model_validator(mode="after")
    def _check(self):
        sites = [p.site for p in self.participants]
        twice = sorted({s for s in sites if sites.count(s) > 1})
        if twice:
            raise ValueError(f"community {self.id}: participants list site(s) {', '.join(twice)} more than once")
        if not any(p.role == "producer" for p in self.participants):
            raise ValueError(f"community {self.id}: participants need at least one producer")
        if not any(p.role == "consumer" for p in self.participants):
            raise ValueError(f"community {self.id}: participants need at least one consumer")
        shares = sum(p.static_share or 0.0 for p in self.participants if p.role == "consumer")
        if shares > 1 + 1e-9:
            raise ValueError(f"community {self.id}: participants' static_share sum to {shares:g}; "
                             "expected at most 1")
        months = [r.from_month for r in self.rules]
        if len(set(months)) != len(months):
            raise ValueError(f"community {self.id}: rules list a from_month twice")
        return self

    def rule_for(self, month: str) -> str:
        """The rule of the entry with the latest from_month <= month (the earliest entry before that)."""
        applicable = [r for r in self.rules if r.from_month <= month]
        by_month = attrgetter("from_month")
        chosen = max(applicable, key=by_month) if applicable else min(self.rules, key=by_month)
        return chosen.rule

    def meters(self) -> list[MeterRef]:
        return [ref for p in self.participants for ref in p.meter_refs().values()]

    def participant(self, site: str) -> Participant | None:
        return next((p for p in self.participants if p.site == site), None)


class InterchangeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    communities: list[Community] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self):
        ids = [c.id for c in self.communities]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"community id(s) {', '.join(twice)} listed more than once")
        return self

    def community(self, community_id: str) -> Community | None:
        return next((c for c in self.communities if c.id == community_id), None)
