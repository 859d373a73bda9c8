"""Demo data in the schema the boards read (cloud/lineproto.py, cloud/ingest/health.py,
cloud/domains/energy): two factory sites of power meters, their edge agents, the ingest's
health and the energy domain's 30-minute slots. Deterministic (seeded), about 100k points.

    write_demo_data("http://127.0.0.1:8086", now=datetime.now(timezone.utc))

Used by ``python -m dashboards.render --demo`` for the screenshots; anything that wants a
board with something on it can call it against a private InfluxDB (``hinode.services.influxdb``).
"""

from __future__ import annotations

import math
import random
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dashboards.demo_charging import charging_lines
from dashboards.demo_fleet import fleet_lines
from dashboards.demo_greencity import greencity_lines

DATABASE = "hinode"
JST = ZoneInfo("Asia/Tokyo")
# site -> (agent, [(device, base load W)])
SITES = {
    "plant-a": ("edge-a1", [("press-line-1", 42000), ("press-line-2", 35000), ("compressor", 18000),
                            ("paint-booth", 26000), ("office-hvac", 9000)]),
    "plant-b": ("edge-b1", [("furnace", 60000), ("cnc-cell", 22000)]),
}
SILENT = "paint-booth"              # stops 25 minutes before now: shows under "Silent devices"
LOSSY = {"compressor": 0.03}        # share of envelopes lost: shows under "Data completeness"
METER_STEP_S = 60
METER_DAYS = 8                      # today and the same weekday last week
SLOT_METRIC = "energy_import"


def _load_factor(t: datetime) -> float:
    """Factory shape in JST: night base, morning ramp, lunch dip, day shift until 17:00, weekends low."""
    local = t.astimezone(JST)
    h = local.hour + local.minute / 60
    day = 0.35 + 0.65 / (1 + math.exp(-(h - 8) * 3)) - 0.65 / (1 + math.exp(-(h - 17.5) * 2))
    if 12 <= h < 13:
        day -= 0.25
    return day * (0.45 if local.weekday() >= 5 else 1.0)


def _meter_lines(now: datetime, rng: random.Random) -> list[str]:
    lines = []
    start = now - timedelta(days=METER_DAYS)
    steps = int((now - start).total_seconds() // METER_STEP_S)
    for site, (agent, devices) in SITES.items():
        for device, base_w in devices:
            seq = 0
            for i in range(steps + 1):
                t = start + timedelta(seconds=i * METER_STEP_S)
                seq += 1
                if device == SILENT and t > now - timedelta(minutes=25):
                    break
                if rng.random() < LOSSY.get(device, 0.0):
                    continue
                p = base_w * _load_factor(t) * (1 + rng.gauss(0, 0.04))
                pf = min(0.99, 0.93 + 0.04 * _load_factor(t) + rng.gauss(0, 0.01) - (0.1 if device == "compressor" else 0))
                volts = [202 + phase + rng.gauss(0, 0.3) - 5 * _load_factor(t) for phase in (0.8, 0, -0.6)]
                lines.append(
                    f"meter,agent={agent},device={device},profile=demo-meter,site={site} "
                    f"power_total={p:.1f},power_factor={pf:.3f},voltage_l1={volts[0]:.1f},"
                    f"voltage_l2={volts[1]:.1f},voltage_l3={volts[2]:.1f},seq={seq}i {int(t.timestamp() * 1000)}")
    return lines


def _slot_lines(now: datetime) -> list[str]:
    """30-minute consumption since the start of the fiscal year (April, JST), from the same load shape."""
    local = now.astimezone(JST)
    fy_start = local.replace(month=4, day=1, hour=0, minute=0, second=0, microsecond=0)
    if fy_start > local:
        fy_start = fy_start.replace(year=fy_start.year - 1)
    lines = []
    t = fy_start
    while t + timedelta(minutes=30) <= local:
        f = _load_factor(t + timedelta(minutes=15))
        season = 1 + 0.15 * math.cos((t.timetuple().tm_yday - 20) / 365 * 2 * math.pi)
        for site, (_agent, devices) in SITES.items():
            for device, base_w in devices:
                kwh = base_w * f * season / 1000 * 0.5
                lines.append(f"energy_slot,device={device},metric={SLOT_METRIC},site={site} "
                             f"consumption={kwh:.3f},readings=30i {int(t.timestamp() * 1000)}")
        t += timedelta(minutes=30)
    return lines


def _operations_lines(now: datetime, rng: random.Random) -> list[str]:
    """Agents' status, the ingest's health and dead letters over the last day, every 30 s."""
    lines = []
    start = now - timedelta(days=1)
    dropped = {agent: 0.0 for agent, _ in SITES.values()}
    dead = {"invalid_payload": 0.0, "unknown_device": 0.0}
    for i in range(int((now - start).total_seconds() // 30) + 1):
        t = start + timedelta(seconds=i * 30)
        ms = int(t.timestamp() * 1000)
        hours_ago = (now - t).total_seconds() / 3600
        for site, (agent, devices) in SITES.items():
            outage = agent == "edge-b1" and 2.0 < hours_ago < 2.6          # a 35-minute uplink outage
            queue = 0 if not outage else (2.6 - hours_ago) * 3600 * len(devices) / 60
            if agent == "edge-b1" and 1.6 < hours_ago <= 2.0:
                queue = max(0.0, (hours_ago - 1.6) / 0.4 * 0.6 * 3600 * len(devices) / 60)
            if outage and rng.random() < 0.2:
                dropped[agent] += rng.randint(1, 4)
            online = len(devices) - (1 if agent == "edge-a1" and t > now - timedelta(minutes=25) else 0)
            lines.append(
                f"agent,agent={agent},device={agent},profile=hinode-agent,site={site} "
                f"uptime_s={86400 * 3 + i * 30:.1f},readings_per_s={online * 5 / METER_STEP_S:.3f},"
                f"devices_online={online:.1f},devices_total={len(devices):.1f},queue_envelopes={queue:.1f},"
                f"queue_bytes={queue * 410:.1f},dropped_readings_total={dropped[agent]:.1f},seq={i + 1}i {ms}")
        burst = 2.0 < hours_ago < 2.6
        lag = max(0.05, rng.gauss(0.35, 0.08)) + (0 if not (1.6 < hours_ago < 2.0) else 40 * (hours_ago - 1.6))
        if rng.random() < 0.02:
            dead["invalid_payload"] += 1
        if burst and rng.random() < 0.3:
            dead["unknown_device"] += rng.randint(1, 3)
        lines.append(f"hinode_ingest,ingest=ingest-1 lag_p50_seconds={lag:.3f},"
                     f"queue_depth={max(0.0, rng.gauss(3, 2)) + (400 if 1.6 < hours_ago < 2.0 else 0):.1f} {ms}")
        for reason, total in dead.items():
            lines.append(f"hinode_ingest_dead_letters,ingest=ingest-1,reason={reason} total={total:.1f} {ms}")
    return lines + _device_status_lines(now)


def _device_status_lines(now: datetime) -> list[str]:
    """device_status as the API's status tracker writes it: all online a day ago, then SILENT offline."""
    lines = []
    for site, (agent, devices) in SITES.items():
        for device, _ in devices:
            lines.append(f"device_status,agent={agent},device={device},kind=meter,site={site} "
                         f'online=true,reason="",error="" {int((now - timedelta(days=1)).timestamp() * 1000)}')
            if device == SILENT:
                error = "modbus: no answer from unit 4 (timeout 2.0 s)"
                lines.append(f"device_status,agent={agent},device={device},kind=meter,site={site} "
                             f'online=false,reason="agent reports device offline: {error}",error="{error}" '
                             f"{int((now - timedelta(minutes=25)).timestamp() * 1000)}")
    return lines


def _post(url: str, path: str, params: dict, body: bytes | None = None) -> None:
    req = urllib.request.Request(f"{url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}", data=body or b"",
                                 method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()


def write_demo_data(influx_url: str, now: datetime | None = None, database: str = DATABASE, seed: int = 7) -> int:
    """Create ``database`` and write the demo points ending at ``now``; returns the number of points."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    rng = random.Random(seed)
    _post(influx_url, "/query", {"q": f'CREATE DATABASE "{database}"'})
    lines = (_meter_lines(now, rng) + _slot_lines(now) + _operations_lines(now, rng) + charging_lines(now)
             + greencity_lines(now) + fleet_lines(now))
    for i in range(0, len(lines), 20000):
        _post(influx_url, "/write", {"db": database, "precision": "ms"}, "\n".join(lines[i:i + 20000]).encode())
    return len(lines)
