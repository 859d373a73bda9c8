"""``domains.charging`` in cloud.yaml (all keys optional)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChargingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_range_days: int = Field(default=93, ge=1, le=400,
                                description="the longest from..to range GET /api/charging/sessions answers")
    max_sessions: int = Field(default=10_000, ge=1, le=1_000_000,
                              description="session records read per request; more answers 422 (narrow the range)")
    connector_lookback_days: int = Field(default=7, ge=1, le=90,
                                         description="how far back GET /api/charging/chargers looks for a "
                                                     "connector's newest values (an idle charger reports only "
                                                     "when its status changes)")
