"""Config section of the GBFS source: one operator's feed, polled over HTTP.

Everything checkable before the first request is checked here: the URL is http(s), intervals
are ordered, the device id prefix leaves room for the slot number. Errors name the key.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from edge_agent.sources.base import SourceConfigBase
from edge_agent.sources.modbus.config import Backoff
from hinode.contract import ID_PATTERN

SLOT_DIGITS = 4
# device id = prefix + "-" + 4 digits, and a device id is at most 64 characters
PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}$" % (63 - 1 - SLOT_DIGITS)


class Config(SourceConfigBase):
    type: Literal["gbfs"]
    url: str = Field(description="the feed's discovery file (gbfs.json)")
    language: str | None = Field(default=None, description="GBFS 2.x: which data.{language} to follow "
                                 "(default: the first one listed)")
    fleet: str | None = Field(default=None, pattern=ID_PATTERN,
                              description="fleet id sent as meta.fleet (default: system_information.system_id)")
    device_prefix: str | None = Field(default=None, pattern=PREFIX_PATTERN,
                                      description="slot device ids are <prefix>-0001 ... (default: the fleet id)")
    min_interval_s: float = Field(default=5.0, gt=0, description="never poll more often than this")
    max_interval_s: float = Field(default=60.0, gt=0, description="poll at least this often whatever the ttl says")
    stale_after_s: float = Field(default=300.0, gt=0, description="last_updated older than this: the feed is stale")
    keepalive_s: float = Field(default=20.0, gt=0,
                               description="resend an unchanged vehicle this often (under the cloud's "
                                           "api.offline_after_s and the fleet's comms_lost_s)")
    timeout_s: float = Field(default=10.0, gt=0, description="per HTTP request")
    same_spot_m: float = Field(default=25.0, ge=0,
                               description="a new id this close to a vanished one is the same vehicle (id rotation)")
    max_vehicles: int = Field(default=5000, ge=1, description="at most this many slot devices")
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="extra request headers (an API key); values are never logged")
    backoff: Backoff = Field(default_factory=Backoff, description="retry delays after a failed poll or discovery")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an http(s) URL of the feed's gbfs.json (got {url!r})")
        return url

    @model_validator(mode="after")
    def _intervals(self) -> "Config":
        if self.max_interval_s < self.min_interval_s:
            raise ValueError(f"max_interval_s ({self.max_interval_s}) must be at least min_interval_s "
                             f"({self.min_interval_s})")
        return self
