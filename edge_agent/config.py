"""Site configuration (YAML), validated by pydantic.

Every error names the file, the key path and what was expected, e.g.::

    site.yaml: sources[0].devices[2].unit: Input should be less than or equal to 247 (got 300)

Source sections are validated by their plugin's own ``Config`` model, found by the
section's ``type`` key in ``edge_agent/sources/<type>/``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from hinode.contract import Ident

import edge_agent.sources as sources_pkg


class ConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6, "mib": 1024**2,
          "g": 10**9, "gb": 10**9, "gib": 1024**3, "t": 10**12, "tb": 10**12, "tib": 1024**4}


def parse_size(value: Any) -> int:
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError("expected a size like 512MiB, 2GB or a number of bytes")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()])


class MqttTls(_Strict):
    ca: Path | None = Field(default=None, description="CA certificate (PEM) that signed the broker's certificate")
    cert: Path | None = Field(default=None, description="client certificate (PEM), for certificate auth")
    key: Path | None = Field(default=None, description="client private key (PEM)")
    insecure: bool = Field(default=False, description="skip broker hostname check (testing only)")


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: MqttTls | None = None
    client_id: str | None = Field(default=None, description="default: hinode-<site>-<agent>")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    max_inflight: int = Field(default=200, ge=1, le=65535, description="QoS 1 messages awaiting PUBACK")
    wait_for_ingest: bool = Field(default=True, description="publish telemetry only while a cloud ingest heartbeat is heard")
    ingest_timeout_s: float = Field(default=5.0, gt=0, description="heartbeat silence after which publishing pauses")
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    # The broker keeps the agent's session (its command subscription and the QoS 1 commands sent
    # meanwhile) this long after a disconnect: a site outage shorter than this loses no command.
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0, le=0xFFFFFFFF,
                                  description="how long the broker keeps commands for an offline agent")

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_not_below_min(cls, value: float, info) -> float:
        if value < info.data.get("reconnect_min_s", 0):
            raise ValueError(f"expected at least reconnect_min_s ({info.data['reconnect_min_s']})")
        return value


class CommandsConfig(_Strict):
    enabled: bool = Field(default=True, description="subscribe to this agent's commands")
    ledger: Path | None = Field(default=None, description="executed command ids (default: next to the outbox)")
    timeout_s: float = Field(default=30.0, gt=0, le=3600, description="longest a source may take for one command")
    keep_days: int = Field(default=90, ge=1, description="how long executed ids are remembered")


class QueueConfig(_Strict):
    path: Path = Field(default=Path("queue.db"), description="relative paths are relative to the config file")
    max_bytes: int = Field(default=256 * 1024**2,
                           description="drop-oldest beyond this many payload bytes waiting to be sent "
                                       "(the in-flight window is on top)")
    commit_interval_ms: int = Field(default=100, ge=1, le=10_000, description="one fsync per interval, not per reading")
    resend_window_s: float = Field(default=5.0, ge=0, le=3600,
                                   description="acknowledged envelopes resent after a connection loss within this window")

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        size = parse_size(value)
        if size < 64 * 1024:
            raise ValueError("expected at least 64KiB")
        return size


class MetricsConfig(_Strict):
    listen: str | None = Field(default="127.0.0.1:9108", description="host:port for /metrics; null disables")

    @field_validator("listen")
    @classmethod
    def _hostport(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected host:port, e.g. 127.0.0.1:9108")
        return value


class SiteConfig(_Strict):
    site: Ident
    agent: Ident
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    health_interval_s: float = Field(default=10.0, ge=0.5)
    profile_dirs: list[Path] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(min_length=1)
    # Filled by load_site_config: the validated plugin configs, in order.
    source_configs: list[Any] = Field(default_factory=list, exclude=True)
    config_path: Path | None = Field(default=None, exclude=True)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"hinode-{self.site}-{self.agent}"


def available_source_types() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(sources_pkg.__path__) if m.ispkg)


def source_plugin(type_name: str):
    """The plugin module ``edge_agent.sources.<type>`` (with ``Config`` and ``Source``)."""
    if type_name not in available_source_types():
        raise KeyError(type_name)
    return importlib.import_module(f"edge_agent.sources.{type_name}")


def key_text(key: object) -> str:
    """A key as it can stand in a one-line message: odd characters (line breaks ...) escaped."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def _loc(parts) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + key_text(part)
    return out or "(top level)"


# A config error never repeats what was typed under these keys.
_SECRET_WORDS = ("password", "secret", "token", "key")


def _describe(path: Path, exc: ValidationError, prefix: tuple = ()) -> list[str]:
    lines = []
    for err in exc.errors():
        # pydantic adds the tag of a tagged union / function-validator names to loc; keep real keys
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        got = err.get("input")
        secret = any(isinstance(p, str) and any(w in p.lower() for w in _SECRET_WORDS) for p in loc)
        got_text = ("" if isinstance(got, (dict, list)) or err["type"] == "missing" or secret
                    else f" (got {got!r})")
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {_loc((*prefix, *loc))}: {message}{got_text}")
    return lines


def load_site_config(path: Path | str) -> SiteConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping with site, agent, mqtt, sources")
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(path, exc))) from None

    base = path.resolve().parent
    config.config_path = path
    if not config.queue.path.is_absolute():
        config.queue.path = base / config.queue.path
    if config.commands.ledger is not None and not config.commands.ledger.is_absolute():
        config.commands.ledger = base / config.commands.ledger
    config.profile_dirs = [d if d.is_absolute() else base / d for d in config.profile_dirs]
    problems: list[str] = []
    for index, directory in enumerate(config.profile_dirs):
        if not directory.is_dir():
            problems.append(f"{path}: profile_dirs[{index}]: expected an existing folder (got {str(directory)!r})")
    if config.mqtt.password_file is not None:
        pw_file = config.mqtt.password_file if config.mqtt.password_file.is_absolute() else base / config.mqtt.password_file
        if not pw_file.is_file():
            problems.append(f"{path}: mqtt.password_file: expected a readable file (got {str(pw_file)!r})")
        else:
            config.mqtt.password = SecretStr(pw_file.read_text().strip())
    if config.mqtt.tls:
        for key in ("ca", "cert", "key"):
            file = getattr(config.mqtt.tls, key)
            if file is not None:
                file = file if file.is_absolute() else base / file
                setattr(config.mqtt.tls, key, file)
                if not file.is_file():
                    problems.append(f"{path}: mqtt.tls.{key}: expected a readable file (got {str(file)!r})")

    names: set[str] = set()
    device_ids: dict[str, int] = {}
    context = {"profile_dirs": config.profile_dirs, "config_dir": base}
    for index, section in enumerate(config.sources):
        prefix = ("sources", index)
        type_name = section.get("type") if isinstance(section, dict) else None
        try:
            plugin = source_plugin(str(type_name))
        except KeyError:
            problems.append(f"{path}: sources[{index}].type: expected one of {available_source_types()} (got {type_name!r})")
            continue
        try:
            source_config = plugin.Config.model_validate(section, context=context)
        except ValidationError as exc:
            problems.extend(_describe(path, exc, prefix))
            continue
        if source_config.name in names:
            problems.append(f"{path}: sources[{index}].name: expected a unique source name (got {source_config.name!r} twice)")
        names.add(source_config.name)
        for device_index, device in enumerate(getattr(source_config, "devices", [])):
            if device.id in device_ids or device.id == config.agent:
                problems.append(f"{path}: sources[{index}].devices[{device_index}].id: expected an id unique in the site "
                                f"and different from the agent id (got {device.id!r} again)")
            device_ids[device.id] = index
        config.source_configs.append(source_config)
    if problems:
        raise ConfigError("\n".join(problems))
    return config
