"""``domains.vitals`` in cloud.yaml (all keys optional)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.domains.vitals.alert_config import AlertsConfig


class GrafanaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_principals: list[str] = Field(default_factory=list, description="API principals (token or user names) "
                                          "of Grafana data sources: only their requests may name the acting user "
                                          "in user_header; without that header they act as nobody (403)")
    user_header: str = Field(default="X-Grafana-User", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$",
                             description="the header Grafana sends the signed-in user's login in "
                                         "(the data source's own header X-Grafana-User: ${__user.login}; README, Boards)")


class VitalsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registry_path: Path | None = Field(default=None, description="SQLite file of the patient registry, care teams, "
                                       "consents, visits and the audit log; default "
                                       "$HINODE_STATE_DIR/personal/vitals-registry.sqlite (HINODE_STATE_DIR "
                                       "defaulting to ~/.local/state/hinode)")
    max_range_days: int = Field(default=400, ge=1, le=3660,
                                description="the longest start..end range a readings request may span")
    default_range_days: int = Field(default=30, ge=1, le=3660,
                                    description="the range of GET .../readings and .../summary without start")
    latest_lookback_days: int = Field(default=400, ge=1, le=3660,
                                      description="how far back GET .../latest looks for a category's newest reading")
    max_rows: int = Field(default=20_000, ge=1, le=1_000_000,
                          description="rows one readings request returns at most (422 beyond: narrow the range)")
    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _ranges_fit(self) -> "VitalsConfig":
        for key in ("default_range_days", "latest_lookback_days"):
            if getattr(self, key) > self.max_range_days:
                raise ValueError(f"{key} ({getattr(self, key)}) must not exceed max_range_days ({self.max_range_days})")
        return self

    def resolved_registry_path(self) -> Path:
        if self.registry_path is not None:
            return self.registry_path
        state_dir = os.environ.get("HINODE_STATE_DIR") or Path.home() / ".local" / "state" / "hinode"
        return Path(state_dir) / "personal" / "vitals-registry.sqlite"
