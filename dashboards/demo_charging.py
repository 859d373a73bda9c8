"""Demo data for the charging board, in the names the OCPP source writes (edge_agent/sources/ocpp/README.md):
site ``plant-a``'s three connectors on two chargers charging from PV surplus over the last day
(kinds ``charger`` and ``site``), and finished sessions of six employees' RFID tags every workday of
this fiscal year (kind ``charging_session``). Deterministic (seeded).

    lines = charging_lines(datetime.now(timezone.utc))      # written by dashboards.demo
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")
SITE = "plant-a"
AGENT = "edge-a1"
CONTROLLER = "ev-control"
# (charger, evse, mode, employee tag charging there on workdays)
CONNECTORS = [("cp-01", "1", "pv", "04A1B2C3"), ("cp-02", "1", "minpv", "04D4E5F6"), ("cp-02", "2", "now", "0477AA10")]
TAGS = ["04A1B2C3", "04D4E5F6", "0477AA10", "04BEEF01", "04C0FFEE", "04FACADE"]
STEP_S = 60
MAX_KW = 11.0                   # 16 A, 3 phases
MIN_KW = 4.14                   # 6 A, 3 phases: below this a charger cannot charge
PV_PEAK_KW = 60.0
BATTERY_KWH = 40.0             # what a car takes before it stops drawing


def _hours(t: datetime) -> float:
    local = t.astimezone(JST)
    return local.hour + local.minute / 60


def _pv_kw(t: datetime, rng: random.Random) -> float:
    h = _hours(t)
    if not 6 <= h <= 18:
        return 0.0
    clouds = 0.75 + 0.25 * math.sin(t.timestamp() / 1700) * rng.uniform(0.9, 1.0)
    return PV_PEAK_KW * math.sin((h - 6) / 12 * math.pi) ** 1.5 * clouds


def _load_kw(t: datetime) -> float:
    h = _hours(t)
    weekend = t.astimezone(JST).weekday() >= 5
    return (12.0 if weekend else 18.0) + (0 if weekend or not 8 <= h < 17.5 else 22.0)


def _line(measurement: str, tags: dict[str, str], fields: dict[str, object], t: datetime) -> str:
    def value(v: object) -> str:
        return f'"{v}"' if isinstance(v, str) else f"{float(v):.3f}"
    tag_text = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    field_text = ",".join(f"{k}={value(v)}" for k, v in fields.items())
    return f"{measurement},{tag_text} {field_text} {int(t.timestamp() * 1000)}"


def _live_lines(now: datetime, rng: random.Random) -> list[str]:
    """The last 24 h, one batch a minute per connector and for the site controller."""
    lines = []
    start = now - timedelta(days=1)
    session_kwh = {c: 0.0 for c in CONNECTORS}
    for i in range(int((now - start).total_seconds() // STEP_S) + 1):
        t = start + timedelta(seconds=i * STEP_S)
        h = _hours(t)
        pv, load = _pv_kw(t, rng), _load_kw(t)
        surplus = max(0.0, pv - load)
        ev_total = 0.0
        for connector in CONNECTORS:
            charger, evse, mode, _tag = connector
            plugged = 8.5 <= h < 17.0              # every day, weekends too: the screenshot always has a day shift
            share = surplus / len(CONNECTORS)
            if not plugged:
                status, kw, decision, session_kwh[connector] = "Available", 0.0, "no vehicle", 0.0
            elif session_kwh[connector] >= BATTERY_KWH:
                status, kw, decision = "SuspendedEV", 0.0, "vehicle full"
            elif mode == "now":
                status, kw, decision = "Charging", MAX_KW, "mode now: full current"
            elif share >= MIN_KW or mode == "minpv":
                kw = min(MAX_KW, max(MIN_KW, share))
                status, decision = "Charging", f"pv surplus {share:.1f} kW: {kw / 0.69:.0f} A"
            else:
                status, kw, decision = "SuspendedEVSE", 0.0, f"surplus {share:.1f} kW below {MIN_KW} kW: paused"
            session_kwh[connector] += kw * STEP_S / 3600
            ev_total += kw
            fields: dict[str, object] = {"status": status, "power_total": kw * 1000, "mode": mode,
                                         "target_current": kw / 0.69, "target_phases": 3.0, "decision": decision}
            if plugged:
                fields["session_energy"] = session_kwh[connector]
            lines.append(_line("charger", {"site": SITE, "agent": AGENT, "device": charger, "profile": "ocpp",
                                           "station": charger, "evse": evse}, fields, t))
        site_decision = "surplus shared by 3 connectors" if surplus else "no PV surplus"
        lines.append(_line("site", {"site": SITE, "agent": AGENT, "device": CONTROLLER, "profile": "ocpp"},
                           {"pv_power": pv * 1000, "load_power": load * 1000, "ev_power": ev_total * 1000,
                            "grid_power": (load + ev_total - pv) * 1000, "surplus": surplus * 1000, "decision": site_decision}, t))
    for charger in ("cp-01", "cp-02"):
        lines.append(_line("charger", {"site": SITE, "agent": AGENT, "device": charger, "profile": "ocpp",
                                       "station": charger, "evse": "0"}, {"status": "Available"}, start))
    return lines


def _session_line(session_id: int, tag: str, start: datetime, stop: datetime, energy: float, pv: float) -> str:
    charger, evse, _mode, _tag = CONNECTORS[TAGS.index(tag) % len(CONNECTORS)]
    return _line("charging_session", {
        "site": SITE, "agent": AGENT, "device": f"{charger}.sessions", "profile": "ocpp", "station": charger,
        "evse": evse, "id_tag": tag}, {
        "session_id": str(session_id), "start_ts": start.timestamp() * 1000, "stop_ts": stop.timestamp() * 1000,
        "duration": (stop - start).total_seconds(), "energy": energy, "peak_power": MAX_KW * 1000, "pv_energy": pv,
        "pv_share": pv / energy, "stop_reason": "EVDisconnected"}, stop)


def _session_lines(now: datetime, rng: random.Random) -> list[str]:
    """One session per tag on most workdays since the start of the fiscal year (April, JST), ending 17:00,
    and one that has just ended, so that "this month" has a session even on the 1st before 17:00."""
    local = now.astimezone(JST)
    day = local.replace(month=4, day=1, hour=0, minute=0, second=0, microsecond=0)
    if day > local:
        day = day.replace(year=day.year - 1)
    lines, session_id = [], 1000
    while day < local:
        stop = day + timedelta(hours=17)
        if day.weekday() < 5 and stop < local:
            sunny = 0.35 + 0.45 * math.sin((day.timetuple().tm_yday - 80) / 365 * 2 * math.pi) ** 2
            for tag in TAGS:
                if rng.random() > 0.7:
                    continue
                energy = rng.uniform(6, 24)
                pv = energy * min(1.0, max(0.0, sunny + rng.gauss(0, 0.1)))
                session_id += 1
                lines.append(_session_line(session_id, tag, day + timedelta(hours=8, minutes=30 + rng.randint(0, 40)),
                                           stop, energy, pv))
        day += timedelta(days=1)
    stop = local - timedelta(seconds=1)
    start = max(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0), stop - timedelta(hours=2))
    lines.append(_session_line(session_id + 1, TAGS[-1], start, stop, 3.5, 1.4))
    return lines


def charging_lines(now: datetime, seed: int = 11) -> list[str]:
    """Line protocol (ms precision) for the charging board, ending at ``now``."""
    rng = random.Random(seed)
    return _live_lines(now, rng) + _session_lines(now, rng)
