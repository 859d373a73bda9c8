"""Cloud configuration: one YAML file (optional), overridable by CLI flags.

Errors name the file, the key path and what was expected, like the edge config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from hinode.metrics import parse_listen


class CloudConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttTls(_Strict):
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False


def _read_password_file(self):
    if self.password_file is not None and self.password is None:
        try:
            self.password = SecretStr(self.password_file.read_text().strip())
        except OSError as exc:
            raise ValueError(f"password_file: cannot read {str(self.password_file)!r}: {exc.strerror}") from None
    return self


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(default=None, description="read the password from this file (0600)")
    tls: MqttTls | None = None
    # Stable per process: the broker keeps this session's unacknowledged messages across restarts.
    client_id: str = "hinode-ingest-1"
    share_group: str = "hinode-ingest"
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    keepalive_s: int = Field(default=30, ge=5)

    _read_password_file = model_validator(mode="after")(_read_password_file)


class ApiMqttIdentity(_Strict):
    """The API's own MQTT identity (``api.mqtt``) when ``cloud serve`` also runs the ingest, whose
    identity is ``mqtt``: the generated ACL lets only the API identity send commands."""
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = Field(default=None, description="read the password from this file (0600)")
    tls: MqttTls | None = Field(default=None, description="default: mqtt.tls")

    _read_password_file = model_validator(mode="after")(_read_password_file)


class PersonalDataConfig(_Strict):
    """Where readings of personal kinds (vitals) go: a database of their own, with its own retention."""
    database: str = Field(default="hinode_personal", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    retention_policy: str = Field(default="personal", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    retention: str = Field(default="400d", pattern=r"^(INF|\d+[hdw])$",
                           description="InfluxQL duration (e.g. 90d, 52w) or INF; applied at ingest start")


class InfluxConfig(_Strict):
    url: str = "http://127.0.0.1:8086"
    database: str = "hinode"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="InfluxDB 2.x/3.x token, sent as 'Authorization: Token ...'")
    create_database: bool = Field(default=True, description="send CREATE DATABASE at start (1.x); off for 2.x/3.x")
    timeout_s: float = Field(default=10.0, gt=0)
    personal: PersonalDataConfig = Field(default_factory=PersonalDataConfig)


def _retry_ordered(model):
    """retry_max_s below retry_initial_s is a typo, refused at load (hinode.backoff needs max >= initial)."""
    if model.retry_max_s < model.retry_initial_s:
        raise ValueError(f"retry_max_s ({model.retry_max_s}) must be at least retry_initial_s ({model.retry_initial_s})")
    return model


class IngestConfig(_Strict):
    enabled: bool = True
    batch_max_messages: int = Field(default=500, ge=1)
    batch_max_ms: int = Field(default=100, ge=1)
    queue_max_messages: int = Field(default=20_000, ge=10)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=10.0, gt=0)
    max_inflight: int = Field(default=1000, ge=1, description="MQTT receive maximum: unacked messages the broker may send")
    max_pending_dead_letters: int = Field(default=1000, ge=1, description="dead letters awaiting the broker's "
                                          "PUBACK before the writer takes no new batch (bounds memory in a flood)")
    heartbeat_s: float = Field(default=1.0, gt=0, description="how often a subscribed ingest tells agents it listens")
    health_interval_s: float = Field(default=10.0, gt=0, description="how often the ingest writes its own health to "
                                     "InfluxDB (measurements hinode_ingest and hinode_ingest_dead_letters)")
    max_future_s: float = Field(default=300.0, gt=0, description="readings further ahead of the ingest's clock are "
                                "dead-lettered as clock_skew")
    max_past_s: float = Field(default=30 * 86400.0, gt=0, description="readings further behind the ingest's clock are "
                              "dead-lettered as clock_skew")
    meta_max_values: int = Field(default=10_000, ge=1, description="distinct values one meta tag key of one kind may "
                                 "take in this process; beyond it new values are refused and counted")
    metrics_listen: str | None = Field(default="127.0.0.1:9109", description="host:port where `python -m cloud "
                                       "ingest` serves /metrics and /healthz (each ingest process its own port; "
                                       "0 = any free port); null disables. `cloud serve` uses its API /metrics")

    @field_validator("metrics_listen")
    @classmethod
    def _hostport(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    _check_retry_order = model_validator(mode="after")(_retry_ordered)


def _scope_names_only(scopes: list[str] | None) -> list[str] | None:
    """Scope names are checked against the registry when the API starts (cloud/api/auth.py);
    here only their form. Reported by position, not value: a secret pasted here must not be echoed."""
    bad = [i for i, s in enumerate(scopes or ()) if not re.fullmatch(r"[a-z][a-z0-9_]*:(read|write)", s)]
    if bad:
        raise ValueError(f"scopes {bad}: not a scope name like 'meters:read' (<domain>:read|write)")
    return scopes


class ApiToken(_Strict):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "admin"] = "viewer"
    hash: str = Field(pattern=r"^sha256:[0-9a-fA-F]{64}$", description="python -m hinode.security hash-token")
    scopes: list[str] | None = Field(default=None, description="None: the role's default scopes; a list: exactly "
                                     "these (cloud/api/scopes.py; personal scopes such as vitals:read only so)")

    _scope_names = field_validator("scopes")(_scope_names_only)


class ApiUser(_Strict):
    username: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "admin"] = "viewer"
    password_hash: str = Field(pattern=r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$",
                               description="python -m hinode.security add-user")
    scopes: list[str] | None = Field(default=None, description="None: the role's default scopes; a list: exactly "
                                     "these, also in the tokens issued to the user")

    _scope_names = field_validator("scopes")(_scope_names_only)


class LoginLimitConfig(_Strict):
    """Failed sign-ins (/token, /login) allowed per user name and per client address (cloud/api/login_limits.py)."""
    max_failures_per_user: int = Field(default=5, ge=1)
    max_failures_per_address: int = Field(default=20, ge=1)
    window_s: float = Field(default=300.0, gt=0)
    max_keys: int = Field(default=10_000, ge=100, description="user names and addresses tracked at most")


class ApiAuthConfig(_Strict):
    """API authentication (cloud/api/auth.py). ``enabled``: true, false, or unset = on when any
    token or user is configured; unset with none configured is allowed only on a loopback host."""
    enabled: bool | None = None
    tokens: list[ApiToken] = Field(default_factory=list)
    users: list[ApiUser] = Field(default_factory=list)
    secret_file: Path | None = Field(default=None, description="HMAC key for issued tokens (else env HINODE_API_SECRET)")
    token_ttl_s: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)
    login: LoginLimitConfig = Field(default_factory=LoginLimitConfig)


class DeadLetterConfig(_Strict):
    """What the API keeps of the ingest's dead letters (cloud/dead_letters.py)."""
    enabled: bool = True
    path: Path | None = Field(default=None, description="SQLite file; default $HINODE_STATE_DIR/dead-letters.db, "
                              "HINODE_STATE_DIR defaulting to ~/.local/state/hinode")
    keep_per_reason: int = Field(default=100, ge=1, le=100_000)
    client_id: str = Field(default="hinode-api-dead-letters", description="stable: the broker keeps letters sent "
                           "while the API restarts; give each API process its own")
    session_expiry_s: int = Field(default=7 * 86400, ge=0)

    def resolved_path(self) -> Path:
        import os
        state_dir = os.environ.get("HINODE_STATE_DIR") or Path.home() / ".local" / "state" / "hinode"
        return self.path or Path(state_dir) / "dead-letters.db"


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    completeness_window_s: int = Field(default=3600, ge=10)
    offline_after_s: int = Field(default=30, ge=1, description="a device with no data for this long shows offline")
    auth: ApiAuthConfig = Field(default_factory=ApiAuthConfig)
    dead_letters: DeadLetterConfig = Field(default_factory=DeadLetterConfig)
    mqtt: ApiMqttIdentity | None = Field(default=None, description="the API's MQTT identity when the ingest runs "
                                         "in the same process; unset: the mqtt identity")

    @model_validator(mode="after")
    def _auth_explicit_off_the_loopback(self) -> "ApiConfig":
        auth = self.auth
        if auth.enabled is True and not (auth.tokens or auth.users):
            raise ValueError("auth.enabled is true but no auth.tokens or auth.users are configured")
        if auth.enabled is None and not (auth.tokens or auth.users) and not _is_loopback(self.host):
            raise ValueError(f"host {self.host!r} is reachable from other machines: configure auth.tokens/users "
                             f"or set auth.enabled: false explicitly")
        return self


def _is_loopback(host: str) -> bool:
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SchedulerConfig(_Strict):
    """Periodic jobs of the domains (cloud/scheduler.py), run inside ``python -m cloud serve``."""
    enabled: bool = True
    max_catchup_slots: int = Field(default=96, ge=1, description="after a down time, run at most this many missed "
                                   "slots per job (the newest ones); older ones are left out and logged")
    retry_initial_s: float = Field(default=5.0, gt=0, description="first wait before retrying a failed slot")
    retry_max_s: float = Field(default=300.0, gt=0, description="longest wait between retries of a slot")
    max_attempts: int = Field(default=5, ge=1, description="a slot failing this often for a reason other than "
                              "InfluxDB being unavailable is skipped, so newer slots can run")
    poll_max_s: float = Field(default=60.0, gt=0, description="longest sleep between checks for due slots")

    _check_retry_order = model_validator(mode="after")(_retry_ordered)


class CloudConfig(_Strict):
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    influx: InfluxConfig = Field(default_factory=InfluxConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    # One section per domain (cloud/domains/<name>/config.py), checked against the domain's model.
    domains: dict[str, dict] = Field(default_factory=dict)

    def api_mqtt(self) -> MqttConfig:
        """What the API's own clients (status tracker and command sender, dead-letter reader) connect
        with: ``mqtt`` with the identity of ``api.mqtt`` when that is set."""
        identity = self.api.mqtt
        if identity is None:
            return self.mqtt
        return self.mqtt.model_copy(update={"username": identity.username, "password": identity.password,
                                            "password_file": identity.password_file,
                                            "tls": identity.tls or self.mqtt.tls})


def load_cloud_config(path: Path | str | None, *, check_domains: bool = True) -> CloudConfig:
    """``check_domains``: check a ``domains:`` section against the domains' models now (this imports
    the domain modules - the API's code; an ingest-only process passes False and skips it)."""
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
        config = CloudConfig.model_validate(data)
    except ValidationError as exc:
        raise CloudConfigError("\n".join(validation_error_lines(exc, str(path)))) from None
    if check_domains and "domains" in data:
        from cloud.domains import check_domain_configs  # late: the domains import the API modules
        check_domain_configs(config, source=str(path))
    return config


def validation_error_lines(exc: ValidationError, source: str, prefix: tuple[str, ...] = ()) -> list[str]:
    """``<source>: <key.path>: <what was expected> (got <value>)``, one line per error."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in (*prefix, *err["loc"])) or "(top level)"
        got = err.get("input")
        # A token or password pasted into the wrong key must not be echoed back.
        secretish = any(word in key for word in ("password", "hash", "token", "secret"))
        got_text = "" if isinstance(got, (dict, list)) or secretish else f" (got {got!r})"
        lines.append(f"{source}: {key}: {err['msg']}{got_text}")
    return lines
