"""Helpers for the vitals domain's tests (no tests here): the real app on a real InfluxDB holding vitals
in the personal database, tokens with explicit scopes, a demo registry and realistic line protocol.

    people = demo_people()
    with vitals_app(tmp_path, people, vitals_lines(), setup=seed_demo) as (base, registry):
        with api(base, people["dr-sato"][0]) as doctor:
            doctor.get("/api/vitals/patients/p-7f3a9c/readings").json()
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import httpx

from hinode import services
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app, write_lines

PERSONAL_DB = "hinode_personal"
PATIENT_A, PATIENT_B = "p-7f3a9c", "p-41b2e0"
READ, WRITE = "vitals:read", "vitals:write"
DAY_MS, HOUR_MS = 86_400_000, 3_600_000

# name -> (token, scopes); every demo person is an API principal of role viewer with exactly these scopes.
DEMO_PEOPLE: dict[str, tuple[str, list[str]]] = {
    "dr-sato": ("tok-dr-sato", [READ]),                   # doctor of both patients, consent: all
    "nurse-ito": ("tok-nurse-ito", [READ]),               # nurse of p-7f3a9c, consent: all
    "cm-kato": ("tok-cm-kato", [READ]),                   # care manager of p-7f3a9c: blood_pressure, weight
    "son-yamada": ("tok-son-yamada", [READ]),             # family of p-7f3a9c, NO consent
    "daughter-yamada": ("tok-daughter-yamada", [READ]),   # proxy of p-7f3a9c
    "hanako-yamada": ("tok-hanako-yamada", [READ]),       # p-7f3a9c herself (self)
    "office-suzuki": ("tok-office-suzuki", [READ, WRITE]),  # care-office staff, in no care team
    "meter-viewer": ("tok-meter-viewer", ["meters:read"]),  # no vitals scope at all
}


def demo_people(**extra: tuple[str, list[str]]) -> dict[str, tuple[str, list[str]]]:
    """The demo principals plus ``extra`` (name=(token, scopes))."""
    return {**DEMO_PEOPLE, **extra}


@dataclass
class Demo:
    consents: dict[tuple[str, str], str] = field(default_factory=dict)   # (pseudonym, care_role) -> consent id
    members: dict[tuple[str, str], int] = field(default_factory=dict)    # (pseudonym, username) -> member id


def seed_demo(registry) -> Demo:
    """Two patients; p-7f3a9c's care team: doctor, nurse, care manager (blood_pressure, weight), family
    without consent, proxy and self; p-41b2e0's: the same doctor (all categories)."""
    demo = Demo()
    registry.add_patient(PATIENT_A, "山田 花子", "山田 花子", "1941-04-03")
    registry.add_patient(PATIENT_B, "田中 一郎", "田中 一郎", "1938-09-12")
    for pseudonym, username, role in ((PATIENT_A, "dr-sato", "doctor"), (PATIENT_A, "nurse-ito", "nurse"),
                                      (PATIENT_A, "cm-kato", "care_manager"), (PATIENT_A, "son-yamada", "family"),
                                      (PATIENT_A, "daughter-yamada", "proxy"), (PATIENT_A, "hanako-yamada", "self"),
                                      (PATIENT_B, "dr-sato", "doctor")):
        demo.members[(pseudonym, username)] = registry.add_member(pseudonym, username, role, added_by="seed")["id"]
    start = int(time.time() * 1000) - 60_000
    for pseudonym, role, categories in ((PATIENT_A, "doctor", "all"), (PATIENT_A, "nurse", "all"),
                                        (PATIENT_A, "care_manager", ["blood_pressure", "weight"]),
                                        (PATIENT_B, "doctor", "all")):
        consent = registry.grant_consent(pseudonym, role, categories, granted_by="seed", valid_from_ms=start)
        demo.consents[(pseudonym, role)] = consent["id"]
    return demo


def vitals_line(pseudonym: str, device: str, category: str, fields: dict, ts_ms: int, *,
                visit_id: str = "v-kit-01-20261129-1", seq: int = 1, agent: str = "kit-01",
                time_source: str = "device") -> str:
    """One row as the ingest writes it (numbers as floats, strings quoted, seq an integer)."""
    def value(v):
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(float(v))
    body = dict(fields)
    body.setdefault(f"{category}_status", "")
    body.update(visit_id=visit_id, time_source=time_source)
    encoded = ",".join(f"{k}={value(v)}" for k, v in body.items())
    return (f"vitals,agent={agent},device={device},profile=ble-{category},site=visiting-nurses,subject={pseudonym} "
            f"{encoded},seq={seq}i {ts_ms}")


def vitals_lines(pseudonym: str = PATIENT_A, *, days: int = 3, end_ms: int | None = None,
                 categories: tuple[str, ...] = ("blood_pressure", "spo2", "temperature", "weight", "glucose",
                                                 "heart_rate")) -> list[str]:
    """One visit per day for ``days`` days before ``end_ms`` (default now), each with one reading per category.

    Day i (0 = oldest) has systolic 130+4i, diastolic 80+2i, SpO2 97-i, 36.5+0.2i Cel, 52.0+0.5i kg,
    glucose 110+5i mg/dL, heart rate 70+i; visits at 10:00 local (01:00 UTC) ``end_ms - (days-i) days``.
    """
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    lines = []
    for i in range(days):
        day_start = end_ms - (days - i) * DAY_MS
        visit = f"v-kit-01-{time.strftime('%Y%m%d', time.gmtime(day_start / 1000))}-{i + 1}"
        readings = {
            "blood_pressure": ("bp-cuff-1", {"systolic": 130 + 4 * i, "diastolic": 80 + 2 * i,
                                             "mean_arterial": 97 + 3 * i, "pulse": 60 + i}),
            "spo2": ("oximeter-1", {"spo2": 97 - i, "spo2_pulse": 62 + i}),
            "temperature": ("thermo-1", {"body_temp": 36.5 + 0.2 * i, "temp_site": "armpit"}),
            "weight": ("scale-1", {"weight": 52.0 + 0.5 * i}),
            "glucose": ("glucometer-1", {"glucose": 110 + 5 * i, "glucose_sample": "capillary_whole_blood",
                                         "glucose_meal": "fasting"}),
            "heart_rate": ("hr-strap-1", {"heart_rate": 70 + i, "rr_interval": 0.85}),
        }
        for offset, category in enumerate(categories):
            device, fields = readings[category]
            lines.append(vitals_line(pseudonym, device, category, fields, day_start + offset * 60_000,
                                     visit_id=visit, seq=i * 10 + offset + 1))
    return lines


def _merge(base: dict, extra: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@contextlib.contextmanager
def vitals_app(tmp_path: Path, people: dict[str, tuple[str, list[str]]], lines: list[str] | tuple = (),
               setup: Callable | None = None, extra_config: dict | None = None) -> Iterator[tuple[str, object]]:
    """The real API (all domains) on a private InfluxDB holding ``lines`` in ``hinode_personal``.

    ``people``: principal name -> (bearer token, explicit scopes). ``setup(registry)`` runs on the
    registry (in ``tmp_path``) before the app serves; ``extra_config`` is merged into the cloud config
    (e.g. ``{"domains": {"vitals": {"grafana": {"service_principals": ["grafana"]}}}}``).
    Yields (base URL, the app's Registry).
    """
    from cloud.api import create_app
    from cloud.config import CloudConfig
    from cloud.domains.vitals.registry import Registry

    influx = services.influxdb(tmp_path / "influxdb")
    influx.start()
    try:
        write_lines(influx.url, list(lines) or [], database=PERSONAL_DB)
        registry_path = tmp_path / "state" / "personal" / "vitals-registry.sqlite"
        tokens = [{"name": name, "role": "viewer", "hash": api_secrets.hash_token(token), "scopes": list(scopes)}
                  for name, (token, scopes) in people.items()]
        config = _merge({"influx": {"url": influx.url}, "api": {"auth": {"tokens": tokens}},
                         "scheduler": {"enabled": False},
                         "domains": {"vitals": {"registry_path": str(registry_path)}}}, extra_config or {})
        registry = Registry(registry_path)
        if setup is not None:
            setup(registry)
        app = create_app(CloudConfig.model_validate(config))
        app.state.vitals_registry = registry
        with serve_app(app) as url:
            yield url, registry
    finally:
        influx.stop()


def api(base_url: str, token: str, **headers: str) -> httpx.Client:
    """An HTTP client for one principal (use as a context manager)."""
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}", **headers}, timeout=10)
