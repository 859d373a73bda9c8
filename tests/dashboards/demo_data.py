"""Realistic demo data for the board and alert tests, written into a real InfluxDB 1.6.

Two windows, today's last 24 h and the same 24 h one week earlier, one point a minute:
- site ``hitachi-omika``, agent ``edge-01``: meters ``pm-1`` (complete), ``pm-2`` (every 50th
  envelope lost: completeness < 100 %) and ``pm-3`` (silent for the last 2 hours); the telemetry goes
  through ``cloud.lineproto`` exactly as the ingest writes it;
- agent health (kind ``agent``): ``edge-01`` (outbox growing over the last 15 min) and ``edge-02``
  (silent for the last 2 hours);
- ``device_status`` as the API's status tracker writes it (cloud.status): every device online a day
  ago; since ``pm-3`` went silent its agent reports it offline with an error, and ``edge-02`` is offline;
- ``energy_slot`` (the energy domain's 30-minute consumption) for every meter;
- ``hinode_ingest`` / ``hinode_ingest_dead_letters`` through ``cloud.ingest.health.health_lines``;
- the CO2 and interchange boards' series (``dashboards.demo_greencity``: co2_slot, co2_input,
  interchange_slot, interchange_flow).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

from cloud.config import InfluxConfig
from cloud.domains.energy.jobs import slot_point
from cloud.influx import InfluxClient
from cloud.ingest.health import health_lines
from cloud.lineproto import envelope_to_lines
from cloud.points import encode_points
from cloud.status import device_status_points
from dashboards.demo_charging import charging_lines
from dashboards.demo_fleet import fleet_lines
from dashboards.demo_greencity import greencity_lines
from hinode.contract import AgentStatus, DeviceState, Reading, TelemetryEnvelope

SITE = "hitachi-omika"
AGENT = "edge-01"
SILENT_AGENT = "edge-02"
METERS = ("pm-1", "pm-2", "pm-3")
GAPPY_METER = "pm-2"
SILENT_METER = "pm-3"
SILENT_FOR_MS = 2 * 3600_000
SILENT_METER_ERROR = "modbus: no answer from unit 3 (timeout 2.0 s)"
SILENT_METER_REASON = f"agent reports device offline: {SILENT_METER_ERROR}"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
DATABASE = "hinode"


def _windows(now_ms: int) -> list[tuple[int, int]]:
    """(start, end) in ms: the last 24 h, and the same hours a week earlier."""
    return [(now_ms - WEEK_MS - DAY_MS, now_ms - WEEK_MS), (now_ms - DAY_MS, now_ms)]


def _minutes(now_ms: int):
    for start, end in _windows(now_ms):
        ts = start - start % MINUTE_MS + MINUTE_MS
        while ts <= end:
            yield ts
            ts += MINUTE_MS


def _load_w(meter_index: int, ts: int) -> float:
    hour = (ts / 3600_000 + 9) % 24          # JST
    daytime = 1.0 if 8 <= hour < 18 else 0.35
    return (40_000 + 15_000 * meter_index) * daytime * (1 + 0.05 * math.sin(ts / 600_000))


def meter_lines(now_ms: int) -> list[str]:
    lines = []
    for index, meter in enumerate(METERS):
        energy = 100_000.0 * (index + 1)
        for seq, ts in enumerate(_minutes(now_ms), start=1):
            power = _load_w(index, ts)
            energy += power / 60 / 1000
            if meter == GAPPY_METER and seq % 50 == 0:
                continue                                 # lost on the way: a seq gap
            if meter == SILENT_METER and ts > now_ms - SILENT_FOR_MS:
                continue
            readings = [Reading(ts=ts, metric="power_total", value=power, unit="W"),
                        Reading(ts=ts, metric="energy_import", value=energy, unit="kWh"),
                        Reading(ts=ts, metric="power_factor", value=0.97 - 0.1 * index, unit="1")]
            readings += [Reading(ts=ts, metric=f"voltage_l{phase}", value=202.0 + phase - index, unit="V")
                         for phase in (1, 2, 3)]
            envelope = TelemetryEnvelope(site=SITE, agent=AGENT, device=meter, kind="meter",
                                         profile="hinode-sim-meter", seq=seq, readings=readings,
                                         meta={"zone": "hall-1"})
            lines += envelope_to_lines(envelope)
    return lines


def agent_lines(now_ms: int) -> list[str]:
    lines = []
    for agent in (AGENT, SILENT_AGENT):
        dropped = 0.0
        for seq, ts in enumerate(_minutes(now_ms), start=1):
            if agent == SILENT_AGENT and ts > now_ms - SILENT_FOR_MS:
                continue
            growing = agent == AGENT and ts > now_ms - 15 * MINUTE_MS
            queue = 200.0 * (15 - (now_ms - ts) / MINUTE_MS) if growing else 3.0
            dropped += 1 if seq % 120 == 0 else 0
            health = {"readings_per_s": 12.0, "readings_total": 720.0 * seq, "queue_envelopes": queue,
                      "queue_readings": queue * 6, "queue_bytes": queue * 900, "dropped_readings_total": dropped,
                      "published_readings_total": 720.0 * seq, "rejected_envelopes_total": 0.0,
                      "errors_total": 0.0, "devices_online": 3.0, "devices_total": 3.0,
                      "mqtt_reconnects": 0.0, "uptime_s": 60.0 * seq}
            envelope = TelemetryEnvelope(site=SITE, agent=agent, device=agent, kind="agent", profile="hinode-agent",
                                         seq=seq, readings=[Reading(ts=ts, metric=name, value=value)
                                                            for name, value in health.items()])
            lines += envelope_to_lines(envelope)
    return lines


def device_status_lines(now_ms: int) -> list[str]:
    silent_since = now_ms - SILENT_FOR_MS
    meters = {meter: "meter" for meter in METERS}

    def status(agent: str, state: str, ts: int, offline: str = "") -> AgentStatus:
        devices = [DeviceState(device=m, kind="meter", online=m != offline,
                               error=SILENT_METER_ERROR if m == offline else "") for m in METERS]
        return AgentStatus(site=SITE, agent=agent, state=state, ts=ts, devices=devices if agent == AGENT else [])

    points = []
    for agent in (AGENT, SILENT_AGENT):
        points += device_status_points(SITE, agent, status(agent, "online", now_ms - DAY_MS),
                                       meters if agent == AGENT else {}, now_ms - DAY_MS)
    points += device_status_points(SITE, AGENT, status(AGENT, "online", silent_since, SILENT_METER), meters,
                                   silent_since)
    points += device_status_points(SITE, SILENT_AGENT, status(SILENT_AGENT, "offline", silent_since), {},
                                   silent_since)
    return encode_points(points)


def energy_slot_lines(now_ms: int) -> list[str]:
    """The energy domain's slots, made by its own point writer, so a change there reaches the boards' tests."""
    points = []
    slot_ms = 30 * MINUTE_MS
    for start, end in _windows(now_ms):
        ts = start - start % slot_ms
        while ts < end:
            for index, meter in enumerate(METERS):
                points.append(slot_point(SITE, meter, "energy_import", ts, _load_w(index, ts) / 1000 / 2, 30))
            ts += slot_ms
    return encode_points(points)


def ingest_health_lines(now_ms: int) -> list[str]:
    lines = []
    for step, ts in enumerate(_minutes(now_ms)):
        stats = {"client_id": "hinode-ingest-1", "received": 1000 * step, "written_envelopes": 995 * step,
                 "dead_letter_total": step // 10 + step // 30, "lag_p50_ms": 80.0 + step % 7,
                 "queue_depth": step % 5,
                 "dead_letter": {"invalid": step // 10, "clock_skew": step // 30}}
        lines += health_lines(stats, ts)
    return lines


def write_demo_data(influx_url: str, now_ms: int | None = None) -> int:
    """Write every series above; returns the number of lines written."""
    now_ms = now_ms or time.time_ns() // 1_000_000
    lines = meter_lines(now_ms) + agent_lines(now_ms) + energy_slot_lines(now_ms) + ingest_health_lines(now_ms)
    lines += device_status_lines(now_ms)
    lines += charging_lines(datetime.fromtimestamp(now_ms / 1000, timezone.utc))
    lines += greencity_lines(datetime.fromtimestamp(now_ms / 1000, timezone.utc))
    lines += fleet_lines(datetime.fromtimestamp(now_ms / 1000, timezone.utc))
    with InfluxClient(InfluxConfig(url=influx_url, database=DATABASE)) as client:
        client.create_database()
        for start in range(0, len(lines), 5000):
            client.write_lines(lines[start:start + 5000])
    return len(lines)
