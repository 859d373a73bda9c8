"""Cloud configuration: one YAML file (optional), overridable by CLI flags.

Errors name the file, the key path and what was expected, like the edge config.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError


class CloudConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttTls(_Strict):
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: MqttTls | None = None
    # Stable per process: the broker keeps this session's unacknowledged messages across restarts.
    client_id: str = "hinode-ingest-1"
    share_group: str = "hinode-ingest"
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    keepalive_s: int = Field(default=30, ge=5)


class InfluxConfig(_Strict):
    url: str = "http://127.0.0.1:8086"
    database: str = "hinode"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="InfluxDB 2.x/3.x token, sent as 'Authorization: Token ...'")
    create_database: bool = Field(default=True, description="send CREATE DATABASE at start (1.x); off for 2.x/3.x")
    timeout_s: float = Field(default=10.0, gt=0)


class IngestConfig(_Strict):
    enabled: bool = True
    batch_max_messages: int = Field(default=500, ge=1)
    batch_max_ms: int = Field(default=100, ge=1)
    queue_max_messages: int = Field(default=20_000, ge=10)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=10.0, gt=0)
    max_inflight: int = Field(default=1000, ge=1, description="MQTT receive maximum: unacked messages the broker may send")
    heartbeat_s: float = Field(default=1.0, gt=0, description="how often a subscribed ingest tells agents it listens")


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    completeness_window_s: int = Field(default=3600, ge=10)
    offline_after_s: int = Field(default=30, ge=1, description="a device with no data for this long shows offline")


class CloudConfig(_Strict):
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    influx: InfluxConfig = Field(default_factory=InfluxConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)


def load_cloud_config(path: Path | str | None) -> CloudConfig:
    if path is None:
        return CloudConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise CloudConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CloudConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return CloudConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            got = err.get("input")
            got_text = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"{path}: {key}: {err['msg']}{got_text}")
        raise CloudConfigError("\n".join(lines)) from None
