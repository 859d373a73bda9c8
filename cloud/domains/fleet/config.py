"""``domains.fleet`` in cloud.yaml (all keys optional; README.md in this folder, "Config").

```yaml
domains:
  fleet:
    zones_file: /etc/hinode/fleet/zones.geojson    # default: the shipped Hitachi City zones (data/)
    hubs_file: /etc/hinode/fleet/hubs.yaml
    comms_lost_s: 120
    webhooks:
      - {url: "https://ops.example/hooks/fleet", secret_env: FLEET_HOOK_KEY,
         event_types: [violation_start, violation_end, tipped_over, comms_lost]}
```
"""

from __future__ import annotations

import os

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.domains.fleet.tracker_rules import TrackerRules
from hinode.mobility import EventType

DATA_DIR = Path(__file__).resolve().parent / "data"


RULE_KEYS = ("comms_lost_s", "idle_too_long_s", "battery_low_pct", "battery_charged_pct", "trip_min_speed_kmh",
             "trip_start_s", "trip_end_idle_s")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GbfsConfig(_Strict):
    """What the platform's own GBFS 3.0 feed says about itself (router_gbfs.py, GBFS.md)."""
    system_id: str = Field(default="hinode-hitachi", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: dict[str, str] | str = Field(default_factory=lambda: {"ja": "日立市シェアモビリティ",
                                                                 "en": "Hitachi City shared mobility"},
                                       description="the system's name, per language or one string in `language`")
    operator: dict[str, str] | str = Field(default_factory=lambda: {"ja": "日立市", "en": "Hitachi City"})
    timezone: str = Field(default="Asia/Tokyo")
    language: str = Field(default="ja", pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", description="the feed's main language "
                          "(GBFS accepts a language and an optional region, e.g. ja or en-US)")
    fleets: list[str] = Field(default_factory=list, description="fleets published in the feed; empty: all. Fleets "
                              "read from other operators' GBFS feeds should not be republished under this system_id")
    ttl_s: int = Field(default=30, ge=0, le=300, description="GBFS ttl; data must be at most 5 min old")
    feed_contact_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$",
                                           description="required by GBFS 3.0 system_information")
    base_url: str | None = Field(default=None, pattern=r"^https?://\S+$", description="the public URL of the "
                                 "feed's folder, e.g. https://mobility.city.example/public/fleet/gbfs (what comes "
                                 "before /gbfs.json); default: the URL it was asked on")
    id_rotation_secret_file: Path | None = Field(default=None, description="HMAC key for the rotating vehicle ids "
                                                 "(default: a random key kept in state_dir)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (expected e.g. Asia/Tokyo)") from None
        return value


class WebhookConfig(_Strict):
    url: str = Field(pattern=r"^https?://\S+$", description="where each matching event is POSTed as JSON")
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$",
                                   description="environment variable holding the HMAC-SHA256 signing key")
    event_types: list[EventType] = Field(default_factory=list, description="empty: every event type")

    @model_validator(mode="after")
    def _secret_present(self) -> "WebhookConfig":
        if self.secret_env is not None and not os.environ.get(self.secret_env, "").strip():
            raise ValueError(f"secret_env: environment variable {self.secret_env} is not set or empty "
                             f"(expected the webhook signing key)")
        return self

    def secret(self) -> bytes | None:
        return os.environ[self.secret_env].strip().encode() if self.secret_env else None

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class FleetConfig(_Strict):
    enabled: bool = Field(default=True, description="run the fleet worker in `python -m cloud serve`")
    zones_file: Path | None = Field(default=None, description="GeoJSON FeatureCollection of zones; default the "
                                    "shipped Hitachi City zones (data/zones_hitachi.geojson)")
    hubs_file: Path | None = Field(default=None, description="YAML list of mobility hubs; default the shipped "
                                   "Hitachi City hubs (data/hubs_hitachi.yaml)")
    state_dir: Path | None = Field(default=None, description="where the worker keeps its state (open trips and "
                                   "violations, unwritten events); default $HINODE_STATE_DIR/fleet")
    walking_radius_m: float = Field(default=500.0, gt=0, le=10_000)
    # The tracker's thresholds: the common ones here, the others (tracker_rules.py) under ``rules``.
    comms_lost_s: float = Field(default=120.0, gt=0, description="no fix for this long: comms_lost")
    idle_too_long_s: float = Field(default=86_400.0, gt=0, description="not moved for this long: idle_too_long")
    battery_low_pct: float = Field(default=15.0, ge=0, le=100, description="battery_low below this")
    battery_charged_pct: float = Field(default=90.0, ge=0, le=100, description="battery_charged at or above this")
    trip_min_speed_kmh: float = Field(default=3.0, ge=0, description="moving: faster than this")
    trip_start_s: float = Field(default=20.0, ge=0, description="moving this long starts a trip (vehicles that "
                                "send no state)")
    trip_end_idle_s: float = Field(default=120.0, ge=0, description="stopped this long ends a trip (vehicles "
                                   "that send no state)")
    rules: TrackerRules = Field(default_factory=TrackerRules)
    gbfs: GbfsConfig = Field(default_factory=GbfsConfig)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=5, ge=1, le=100)
    webhook_retry_initial_s: float = Field(default=2.0, ge=0)
    webhook_retry_max_s: float = Field(default=300.0, ge=0)
    webhook_queue_max: int = Field(default=10_000, ge=1, description="deliveries waiting at most; beyond, dropped "
                                   "and counted")
    share_group: str = Field(default="fleet", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                             description="MQTT shared-subscription group of the fleet workers")
    mqtt_client_id: str = Field(default="hinode-api-fleet", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                description="stable, so the broker keeps fixes sent while the API restarts; "
                                            "give each API process its own")
    mqtt_session_expiry_s: int = Field(default=3600, ge=0, le=7 * 86400,
                                       description="how long the broker keeps the worker's session (and queues "
                                                   "every telemetry message for it) while it is away; a restart "
                                                   "within this loses no fix")
    event_queue_max: int = Field(default=100_000, ge=10, description="points waiting for InfluxDB at most; "
                                 "beyond, the oldest are dropped and counted")
    write_batch_max: int = Field(default=5_000, ge=1)
    write_retry_initial_s: float = Field(default=0.5, gt=0)
    write_retry_max_s: float = Field(default=10.0, gt=0)
    snapshot_interval_s: float = Field(default=30.0, gt=0, description="how often the worker saves its state "
                                       "(a snapshot of 10,000 vehicles takes ~0.4 s of the API's loop)")

    @field_validator("rules", mode="before")
    @classmethod
    def _common_keys_at_the_top(cls, value):
        if isinstance(value, dict):
            misplaced = sorted(set(value) & set(RULE_KEYS))
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)}: set at domains.fleet.<key>, not under rules")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "FleetConfig":
        self.tracker_rules()      # the merged thresholds must be consistent too (battery low < charged)
        for low, high in (("webhook_retry_initial_s", "webhook_retry_max_s"),
                          ("write_retry_initial_s", "write_retry_max_s")):
            if getattr(self, high) < getattr(self, low):
                raise ValueError(f"{high} ({getattr(self, high)}) must be at least {low} ({getattr(self, low)})")
        return self

    @field_validator("zones_file", "hubs_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
        return path

    def tracker_rules(self) -> TrackerRules:
        return TrackerRules(**{**self.rules.model_dump(), **{key: getattr(self, key) for key in RULE_KEYS}})

    def resolved_zones_file(self) -> Path:
        return self.zones_file or DATA_DIR / "zones_hitachi.geojson"

    def resolved_hubs_file(self) -> Path:
        return self.hubs_file or DATA_DIR / "hubs_hitachi.yaml"

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        state_dir = os.environ.get("HINODE_STATE_DIR") or Path.home() / ".local" / "state" / "hinode"
        return Path(state_dir) / "fleet"
