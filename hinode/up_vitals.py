"""``hinode up``'s digital-health demo (issue 11): one visiting nurse's kit and two patients.

For ``hinode.up.Platform``::

    demo = NurseVisits(data_dir, say)
    demo.api_section()          # api.auth for cloud.yaml: demo logins (data/demo-logins.yaml, 0600),
                                # hinode up's own admin token, the Grafana service token
    demo.domain_section()       # domains.vitals: the registry in the data directory
    demo.prepare(api_url, influx_url)   # after the cloud is up: registry, care teams, consents, today's
                                        # visits (through the API), the kit's schedule file, 8 weeks of history
    demo.simulator_argv(python, hci_port, control_port)   # python -m simulators ble ...
    demo.kit_site_config(mqtt_port, hci_port, metrics_port, page_port)   # the nurse gateway's site.yaml

People (all logins in data/demo-logins.yaml): the care office (registry, consents), doctor dr-sato
(consent for all vitals of both patients), nurse nurse-ito, care manager cm-kato (blood pressure and
weight only), son-yamada (in Hanako's care team, no consent: sees nothing), daughter-yamada (Hanako's
proxy: sees her data and who read it). Patients are pseudonyms on every wire; their names live only in
the cloud registry and the kit's schedule file.
"""

from __future__ import annotations

import json
import random
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import yaml

from hinode.security import api_secrets

JST = timezone(timedelta(hours=9))
KIT = "kit-01"
NURSE_SITE = "visiting-nurses"
SEED = 11
HISTORY_DAYS = 56
MARKER = "vitals-backfill.json"

# username -> (API role, explicit scopes or None for the role's defaults)
PEOPLE: dict[str, tuple[str, list[str] | None]] = {
    "admin": ("admin", None),
    "care-office": ("viewer", ["vitals:read", "vitals:write"]),
    "dr-sato": ("viewer", ["vitals:read"]),
    "nurse-ito": ("viewer", ["vitals:read"]),
    "cm-kato": ("viewer", ["vitals:read"]),
    "son-yamada": ("viewer", ["vitals:read"]),
    "daughter-yamada": ("viewer", ["vitals:read"]),
}
UP_TOKEN_NAME = "hinode-up"
GRAFANA_TOKEN_NAME = "grafana"


@dataclass(frozen=True)
class DemoPatient:
    pseudonym: str
    name: str
    display_name: str
    birth_date: str
    visit_time: str
    weight_kg: float
    systolic: float


PATIENTS = (
    DemoPatient("p-7f3a9c", "山田 花子", "山田さん", "1941-05-12", "10:00", 52.0, 142.0),
    DemoPatient("p-41b2e0", "田中 一郎", "田中さん", "1938-11-02", "14:00", 64.0, 128.0),
)

# (patient, username, care role); consents: (patient, care role, categories or "all")
CARE_TEAMS = (
    ("p-7f3a9c", "dr-sato", "doctor"), ("p-7f3a9c", "nurse-ito", "nurse"), ("p-7f3a9c", "cm-kato", "care_manager"),
    ("p-7f3a9c", "son-yamada", "family"), ("p-7f3a9c", "daughter-yamada", "proxy"),
    ("p-41b2e0", "dr-sato", "doctor"), ("p-41b2e0", "nurse-ito", "nurse"),
)
CONSENTS = (
    ("p-7f3a9c", "doctor", "all"), ("p-7f3a9c", "nurse", "all"),
    ("p-7f3a9c", "care_manager", ["blood_pressure", "weight"]),
    ("p-41b2e0", "doctor", "all"), ("p-41b2e0", "nurse", "all"),
)
KIT_DEVICES = (   # the virtual kit's devices (simulators/ble): id, category
    ("bp-cuff-1", "blood_pressure"), ("thermometer-1", "temperature"), ("oximeter-1", "spo2"),
    ("scale-1", "weight"), ("glucometer-1", "glucose"), ("hr-strap-1", "heart_rate"),
)


def _secret_file(path: Path, make: Callable[[], str]) -> str:
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


@dataclass
class NurseVisits:
    data_dir: Path
    say: Callable[[str], None]
    logins: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.data_dir = Path(self.data_dir)
        self.kit_dir = self.data_dir / "nurse-kit"
        self.kit_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "demo-logins.yaml"
        known = yaml.safe_load(path.read_text()) if path.exists() else {}
        self.logins = {name: known.get(name) or secrets.token_urlsafe(9) for name in PEOPLE}
        self.logins["nurse-pin"] = str(known.get("nurse-pin") or f"{secrets.randbelow(10**6):06d}")
        path.write_text("# hinode up's demo logins (board: /login; nurse's page: the PIN)\n"
                        + yaml.safe_dump(self.logins, sort_keys=True))
        path.chmod(0o600)
        self.up_token = _secret_file(self.data_dir / "up-token", api_secrets.new_token)
        self.grafana_token = _secret_file(self.data_dir / "grafana-token", api_secrets.new_token)

    # ---------------------------------------------------------------- cloud.yaml

    def api_section(self) -> dict:
        users = [{"username": name, "role": role, "password_hash": api_secrets.hash_password(self.logins[name]),
                  **({"scopes": scopes} if scopes is not None else {})} for name, (role, scopes) in PEOPLE.items()]
        tokens = [{"name": UP_TOKEN_NAME, "role": "admin", "hash": api_secrets.hash_token(self.up_token)},
                  {"name": GRAFANA_TOKEN_NAME, "role": "viewer", "hash": api_secrets.hash_token(self.grafana_token),
                   "scopes": ["vitals:read"]}]
        _secret_file(self.data_dir / "api-secret", lambda: secrets.token_hex(32))
        return {"auth": {"users": users, "tokens": tokens, "secret_file": str((self.data_dir / "api-secret").resolve())}}

    def domain_section(self) -> dict:
        return {"registry_path": str((self.data_dir / "personal" / "vitals-registry.sqlite").resolve()),
                "grafana": {"service_principals": [GRAFANA_TOKEN_NAME]}}

    # ---------------------------------------------------------------- after the cloud is up

    def prepare(self, api_url: str, influx_url: str) -> None:
        """Registry, care teams, consents and today's visits through the API (signed in as the care office),
        the kit's schedule file, then the history. The demo's extras must not take the platform down:
        failures are reported and the rest goes on."""
        try:
            token = self.login(api_url, "care-office")
            self.seed(api_url, token)
            self.write_schedule(api_url, token)
            self.backfill(influx_url)
            self.say("vitals: ready")
        except Exception as exc:
            self.say(f"vitals: failed: {type(exc).__name__}: {exc}")

    def seed(self, api_url: str, token: str) -> None:
        today = datetime.now(JST).date().isoformat()
        registry = self._call(api_url, "GET", "/api/vitals/registry", token=token) or {}
        known = {p["pseudonym"] for p in registry.get("patients", [])}
        calls = []
        if not {p.pseudonym for p in PATIENTS} <= known:     # a second run: only today's visits are new
            calls += [("POST", "/api/vitals/patients", {"pseudonym": p.pseudonym, "name": p.name,
                                                        "display_name": p.display_name, "birth_date": p.birth_date})
                      for p in PATIENTS if p.pseudonym not in known]
            calls += [("POST", f"/api/vitals/patients/{p}/members", {"username": user, "care_role": role})
                      for p, user, role in CARE_TEAMS]
            calls += [("POST", f"/api/vitals/patients/{p}/consents", {"care_role": role, "categories": categories})
                      for p, role, categories in CONSENTS]
        calls += [("POST", "/api/vitals/visits", {"date": today, "time": p.visit_time, "kit": KIT,
                                                  "pseudonym": p.pseudonym, "nurse": "nurse-ito"}) for p in PATIENTS]
        failures = 0
        for method, path, body in calls:
            try:
                self._call(api_url, method, path, body, token=token)
            except urllib.error.HTTPError as exc:
                if exc.code != 409:      # already there
                    failures += 1
                    self.say(f"vitals: {method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')[:200]}")
        self.results["seed"] = f"{len(calls) - failures}/{len(calls)} calls ok"

    def login(self, api_url: str, username: str) -> str:
        data = urllib.parse.urlencode({"username": username, "password": self.logins[username]}).encode()
        request = urllib.request.Request(api_url + "/token", data=data, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]

    def write_schedule(self, api_url: str, token: str) -> Path:
        """The kit's schedule file (display names stay on the gateway and in the registry, never on MQTT)."""
        today = datetime.now(JST).date().isoformat()
        request = urllib.request.Request(f"{api_url}/api/vitals/kits/{KIT}/schedule.yaml?date={today}",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            text = resp.read().decode()
        self.schedule_path.write_text(text)
        self.schedule_path.chmod(0o600)
        return self.schedule_path

    @property
    def schedule_path(self) -> Path:
        return self.kit_dir / "visits.yaml"

    @staticmethod
    def _call(api_url: str, method: str, path: str, body=None, token: str = ""):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(api_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    # ---------------------------------------------------------------- history

    def backfill(self, influx_url: str, now_ms: int | None = None) -> None:
        """Eight weeks of past visits (twice a week per patient) in the personal database, written the
        way the ingest writes them; once per data directory."""
        from cloud.config import InfluxConfig, PersonalDataConfig
        from cloud.influx import InfluxClient

        marker = self.data_dir / MARKER
        if marker.exists():
            self.say("vitals: history already backfilled; not redone")
            return
        now_ms = now_ms or int(time.time() * 1000)
        lines = history_lines(now_ms)
        personal = PersonalDataConfig()
        with InfluxClient(InfluxConfig(url=influx_url)) as client:
            db = personal.database
            client.query(f'CREATE DATABASE "{db}"')
            client.query(f'CREATE RETENTION POLICY "{personal.retention_policy}" ON "{db}" DURATION '
                         f'{personal.retention} REPLICATION 1 DEFAULT', database=db)
            client.write_lines(lines, database=db)
        marker.write_text(json.dumps({"seed": SEED, "end_ms": now_ms, "lines": len(lines)}))
        self.say(f"vitals: backfilled {len(lines)} past readings of {len(PATIENTS)} patients ({HISTORY_DAYS} days)")

    # ---------------------------------------------------------------- the kit

    def simulator_argv(self, python: list[str], hci_port: int, control_port: int) -> list[str]:
        return [*python, "-m", "simulators", "ble", "--hci", f"tcp-server:127.0.0.1:{hci_port}",
                "--control-port", str(control_port), "--kit", KIT, "--seed", str(SEED)]

    def kit_site_config(self, mqtt_port: int, hci_port: int, metrics_port: int, page_port: int) -> dict:
        """The nurse gateway's site.yaml: its own site and agent id, the bumble stack on the simulator's
        HCI-over-TCP port (a USB dongle would be ``hci: usb:0``), the nurse's page on ``page_port``."""
        return {
            "site": NURSE_SITE, "agent": KIT,
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "queue": {"path": str((self.kit_dir / "outbox.db").resolve()), "max_bytes": "64MiB"},
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
            "health_interval_s": 5,
            "sources": [{
                "type": "ble", "name": "visit-kit", "kit": KIT, "stack": "bumble",
                "hci": f"tcp-client:127.0.0.1:{hci_port}", "timezone": "Asia/Tokyo",
                "devices": [{"id": device, "category": category, "name": device_name(device)}
                            for device, category in KIT_DEVICES],
                "page": {"listen": f"127.0.0.1:{page_port}", "language": "ja",
                         "schedule_file": str(self.schedule_path.resolve()),
                         "nurses": [{"id": "nurse-ito", "name": "伊藤",
                                     "pin_hash": api_secrets.hash_password(self.logins["nurse-pin"])}]},
            }],
        }


def device_name(device: str) -> str:
    """The advertised name of a virtual kit device (simulators/ble)."""
    from simulators.ble.kit import advertised_name
    return advertised_name(KIT, device)


def history_lines(now_ms: int) -> list[str]:
    """Past visits as the ingest writes them: measurement vitals, tags of the gateway, fields of hinode/vitals.py."""
    rng = random.Random(SEED)
    lines = []
    today = datetime.fromtimestamp(now_ms / 1000, JST).date()
    for p_index, patient in enumerate(PATIENTS):
        weight = patient.weight_kg
        for back in range(HISTORY_DAYS, 0, -1):
            day = today - timedelta(days=back)
            if day.weekday() not in ((0, 3) if p_index == 0 else (1, 4)):
                continue
            hour, minute = map(int, patient.visit_time.split(":"))
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST)
            visit = f"v-{KIT}-{day:%Y%m%d}-{p_index + 1}"
            weight += rng.uniform(-0.3, 0.35)
            readings = {
                ("bp-cuff-1", "blood_pressure"): {
                    "systolic": round(patient.systolic + rng.gauss(0, 7)), "diastolic": round(84 + rng.gauss(0, 5)),
                    "mean_arterial": 0, "pulse": round(70 + rng.gauss(0, 6))},
                ("thermometer-1", "temperature"): {"body_temp": round(36.5 + rng.gauss(0, 0.25), 1)},
                ("oximeter-1", "spo2"): {"spo2": round(min(99, 96 + rng.gauss(0, 1.2))), "spo2_pulse": round(70 + rng.gauss(0, 6))},
                ("scale-1", "weight"): {"weight": round(weight, 1)},
            }
            bp = readings[("bp-cuff-1", "blood_pressure")]
            bp["mean_arterial"] = round(bp["diastolic"] + (bp["systolic"] - bp["diastolic"]) / 3)
            for offset, ((device, category), fields) in enumerate(readings.items()):
                ts = int((at + timedelta(minutes=3 * offset)).timestamp() * 1000)
                values = ",".join(f"{k}={float(v)}" for k, v in fields.items())
                status = f',{category}_status=""' if category != "weight" else ""
                lines.append(f"vitals,agent={KIT},device={device},profile=ble-{category},site={NURSE_SITE},"
                             f'subject={patient.pseudonym} {values}{status},visit_id="{visit}",'
                             f'time_source="device" {ts}')
    return lines
