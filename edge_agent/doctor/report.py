"""What a doctor check found, for the installer (text), for tools (JSON) and as a draft site.yaml."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Level = Literal["ok", "warn", "fail"]
_MARK = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    check: str
    message: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)     # per check, machine-readable (JSON output)
    profile_dirs: list[str] = field(default_factory=list)     # where suggested profiles outside the shipped ones live

    def add(self, level: Level, check: str, message: str) -> None:
        if level not in _MARK:
            raise ValueError(f"level must be ok, warn or fail, got {level!r}")
        self.findings.append(Finding(level, check, message))

    def ok(self, check: str, message: str) -> None:
        self.add("ok", check, message)

    def warn(self, check: str, message: str) -> None:
        self.add("warn", check, message)

    def fail(self, check: str, message: str) -> None:
        self.add("fail", check, message)

    def suggest_source(self, section: dict[str, Any]) -> dict[str, Any]:
        """Add a draft source section; its name and device ids are made unique within the draft."""
        section = copy.deepcopy(section)
        names = {s["name"] for s in self.sources}
        base, n = section.get("name") or section.get("type", "source"), 1
        section["name"] = base
        while section["name"] in names:
            n += 1
            section["name"] = f"{base}-{n}"
        taken = {d["id"] for s in self.sources for d in s.get("devices", []) if "id" in d}
        for device in section.get("devices", []):
            if "id" in device:
                device_id, n = device["id"], 1
                while device["id"] in taken:
                    n += 1
                    device["id"] = f"{device_id}-{n}"
                taken.add(device["id"])
        self.sources.append(section)
        return section

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)

    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def draft_site(self, site: str, agent: str, mqtt: dict[str, Any] | None = None) -> dict[str, Any]:
        """A whole site.yaml (as a dict) with the suggested sources; ValueError if none were suggested."""
        if not self.sources:
            raise ValueError("nothing was found to put into a draft site.yaml (no source suggested)")
        draft: dict[str, Any] = {"site": site, "agent": agent}
        if mqtt:
            draft["mqtt"] = copy.deepcopy(mqtt)
        if self.profile_dirs:
            draft["profile_dirs"] = list(self.profile_dirs)
        draft["sources"] = copy.deepcopy(self.sources)
        return draft

    def to_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "findings": [asdict(f) for f in self.findings],
                "sources": copy.deepcopy(self.sources), "details": self.details}

    def to_text(self) -> str:
        lines: list[str] = []
        check = None
        for finding in self.findings:
            if finding.check != check:
                check = finding.check
                lines.append(f"== {check}")
            lines.append(f"  {_MARK[finding.level]} {finding.message}")
        if not self.findings:
            lines.append("(nothing checked)")
        if self.sources:
            lines.append(f"== draft: {len(self.sources)} source section(s)")
        counts = {level: sum(f.level == level for f in self.findings) for level in _MARK}
        lines.append(f"-- {counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failures")
        return "\n".join(lines) + "\n"
