"""The visits schedule file on the gateway (provisioned by the care office, see VISITS.md).

```yaml
visits:
  - {date: 2026-11-29, time: "10:00", pseudonym: p-7f3a9c, display_name: "山田 花子"}
```
Display names live only here (and in the cloud registry): they are shown to the nurse and never
logged or sent. :class:`ScheduleWatcher` reloads the file when its modification time changes; a
broken edit keeps the previous schedule and reports the error (file and key) until it is fixed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hinode.contract import Ident

TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _TextDatesLoader(yaml.SafeLoader):
    """Dates stay text for the schema to check (PyYAML would raise on 2026-13-01 without a key)."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class ScheduleError(ValueError):
    """A schedule file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class ScheduledVisit:
    date: dt.date
    time: str              # "HH:MM", the kit's local time
    pseudonym: str
    display_name: str = ""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: dt.date
    time: str = Field(default="", description="HH:MM")
    pseudonym: Ident
    display_name: str = Field(default="", max_length=64)

    @field_validator("display_name", mode="before")
    @classmethod
    def _no_name(cls, value):
        return "" if value is None else value

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value) -> str:
        if isinstance(value, int):   # YAML 1.1 reads an unquoted 10:00 as the sexagesimal 600
            value = f"{value // 60:02d}:{value % 60:02d}"
        if value in ("", None):
            return ""
        if not isinstance(value, str) or not TIME_RE.match(value):
            raise ValueError(f"expected a time HH:MM, got {value!r}")
        return value


class _ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kit: Ident | None = Field(default=None, description="optional: the kit this schedule was rendered for")
    visits: list[_Entry] = Field(default_factory=list)


def parse_schedule(text: str, origin: str, kit: str | None = None) -> list[ScheduledVisit]:
    try:
        data = yaml.load(text, Loader=_TextDatesLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{origin}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    try:
        parsed = _ScheduleFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_key(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ScheduleError(f"{origin}: {problems}") from None
    if kit is not None and parsed.kit is not None and parsed.kit != kit:
        raise ScheduleError(f"{origin}: kit: the schedule is for kit {parsed.kit!r}, this gateway is {kit!r}")
    return [ScheduledVisit(e.date, e.time, e.pseudonym, e.display_name) for e in parsed.visits]


def _key(loc: tuple) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def load_schedule(path: Path, kit: str | None = None) -> list[ScheduledVisit]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScheduleError(f"{path}: cannot read the schedule file: {exc.strerror or exc}") from None
    return parse_schedule(text, str(path), kit)


class ScheduleWatcher:
    """The schedule of a file, reloaded when the file's modification time (or size) changes.

    ``error`` holds the last problem (file missing, bad key) while ``visits`` keeps the last good
    schedule. ``strict=True`` makes a broken file at start-up raise :class:`ScheduleError`.
    """

    def __init__(self, path: Path | None, kit: str | None = None, strict: bool = True):
        self.path = Path(path) if path is not None else None
        self.kit = kit
        self.visits: list[ScheduledVisit] = []
        self.error = ""
        self.loads = 0
        self._stamp: tuple[int, int] | None = None
        if self.path is not None:
            self.refresh()
            if strict and self.error and self.path.exists():
                raise ScheduleError(self.error)

    def refresh(self) -> bool:
        """Reload when the file changed; True when the schedule was (re)loaded."""
        if self.path is None:
            return False
        try:
            stat = self.path.stat()
        except OSError:
            self.error = f"{self.path}: schedule file not found (only unscheduled visits are possible)"
            self._stamp = None
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.visits = load_schedule(self.path, self.kit)
        except ScheduleError as exc:
            self.error = str(exc)
            return False
        self.error = ""
        self.loads += 1
        return True
