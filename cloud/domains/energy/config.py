"""``domains.energy`` in cloud.yaml (all keys optional)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hinode.contract import MetricName


class EnergyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_gap_s: int = Field(default=6 * 3600, ge=60, le=7 * 86400,
                           description="how far before a slot (or range) and after it to look for the reading that "
                                       "brackets it; the consumption of a longer gap at the edge is left out")
    metrics: list[MetricName] | None = Field(default=None, description="counter metrics the energy.slots job "
                                             "computes; unset: every counter in the catalog")
    devices_per_query: int = Field(default=50, ge=1, le=1000,
                                   description="devices whose readings the job fetches in one InfluxDB request")
