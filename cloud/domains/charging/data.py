"""What the charging domain reads from InfluxDB: session records and each connector's newest values.

Names are the OCPP source's (edge_agent/sources/ocpp/README.md, "What it sends"). Every user value
reaching a statement is quoted (``quote_string``); times are integer milliseconds.
"""

from __future__ import annotations

import polars as pl

from cloud.domains.charging.service import SESSIONS_SCHEMA
from cloud.influx import AsyncInfluxClient, Series, quote_identifier, quote_string
from hinode.contract import SESSION_DEVICE_SUFFIX, DeviceKind

SESSIONS = quote_identifier(DeviceKind.CHARGING_SESSION.value)
CHARGERS = quote_identifier(DeviceKind.CHARGER.value)
# record field -> SESSIONS_SCHEMA column
SESSION_FIELDS = {"session_id": "session_id", "start_ts": "start_ms", "stop_ts": "stop_ms", "duration": "duration_s",
                  "energy": "energy_kwh", "peak_power": "peak_w", "pv_energy": "pv_kwh", "pv_share": "pv_share",
                  "stop_reason": "stop_reason"}
# charger field -> the name the API answers with
CONNECTOR_FIELDS = {"status": "status", "error_code": "error_code", "power_total": "power_w",
                    "session_energy": "session_energy_kwh", "mode": "mode", "target_current": "target_current_a",
                    "target_phases": "target_phases", "decision": "decision"}
ONLY_WITH_NEWEST_STATUS = ("session_energy_kwh", "error_code")


def sessions_statement(site: str, start_ms: int, end_ms: int, id_tag: str | None = None, limit: int = 10_000) -> str:
    """Records that ended in [start, end), one series per (device, station, evse, id_tag)."""
    fields = ", ".join(quote_identifier(name) for name in SESSION_FIELDS)
    tag = f' AND "id_tag" = {quote_string(id_tag)}' if id_tag is not None else ""
    return (f'SELECT {fields} FROM {SESSIONS} WHERE "site" = {quote_string(site)}{tag} '
            f'AND time >= {start_ms}ms AND time < {end_ms}ms GROUP BY "device", "station", "evse", "id_tag" '
            f'LIMIT {int(limit)}')


def _charger_of(tags: dict[str, str]) -> str:
    station = tags.get("station")
    if station:
        return station
    device = tags.get("device", "")
    return device[:-len(SESSION_DEVICE_SUFFIX)] if device.endswith(SESSION_DEVICE_SUFFIX) else device


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value) -> str | None:
    return None if value is None else str(value)


def parse_sessions(series: list[Series]) -> pl.DataFrame:
    rows = []
    for s in series:
        context = {"charger": _charger_of(s.tags), "evse": s.tags.get("evse", ""), "id_tag": s.tags.get("id_tag", "")}
        for row in s.rows():
            record = {column: row.get(name) for name, column in SESSION_FIELDS.items()}
            for column in ("start_ms", "stop_ms"):
                number = _number(record[column])
                record[column] = int(number) if number is not None else None
            if record["stop_ms"] is None:
                record["stop_ms"] = int(row["time"])       # the record is written at the session's stop
            for column in ("duration_s", "energy_kwh", "peak_w", "pv_kwh", "pv_share"):
                record[column] = _number(record[column])
            for column in ("session_id", "stop_reason"):
                record[column] = _text(record[column])
            rows.append({**context, **record})
    return pl.DataFrame(rows, schema=SESSIONS_SCHEMA, orient="row") if rows else pl.DataFrame(schema=SESSIONS_SCHEMA)


async def fetch_sessions(reader: AsyncInfluxClient, site: str, start_ms: int, end_ms: int,
                         id_tag: str | None = None, limit: int = 10_000) -> pl.DataFrame:
    (series,) = await reader.query(sessions_statement(site, start_ms, end_ms, id_tag, limit))
    return parse_sessions(series)


def connector_statements(site: str, since_ms: int) -> list[str]:
    """One statement per field: each answers that field's newest value *and its time* per connector
    (several selectors in one SELECT would lose the times)."""
    where = f'WHERE "site" = {quote_string(site)} AND time >= {since_ms}ms'
    return [f'SELECT last({quote_identifier(name)}) AS "value" FROM {CHARGERS} {where} GROUP BY "device", "evse"'
            for name in CONNECTOR_FIELDS]


def parse_connectors(results: list[list[Series]]) -> list[dict]:
    """Per (charger, evse): every field's newest value and ``updated`` (the newest time of any). Every batch
    carries the status; ``session_energy`` only while a session runs and ``error_code`` only while there is
    an error, so those two count only when they came with the newest status."""
    connectors: dict[tuple[str, str], dict] = {}
    times: dict[tuple[str, str], dict[str, int]] = {}
    for name, series in zip(CONNECTOR_FIELDS.values(), results):
        for s in series:
            key = (s.tags.get("device", ""), s.tags.get("evse", ""))
            entry = connectors.setdefault(key, {"charger": key[0], "evse": key[1],
                                                **{field: None for field in CONNECTOR_FIELDS.values()}})
            for row in s.rows()[:1]:
                entry[name] = row["value"]
                times.setdefault(key, {})[name] = int(row["time"])
    out = []
    for key, entry in sorted(connectors.items()):
        seen = times.get(key, {})
        entry["status_ts"] = seen.get("status")
        for name in ONLY_WITH_NEWEST_STATUS:
            # Older than the newest status: from a session that has ended, an error that has cleared.
            # (The charger sends its state when it changes; meter values in between are newer.)
            if name in seen and seen.get("status") is not None and seen[name] < seen["status"]:
                entry[name] = None
        entry["updated"] = max(seen.values()) if seen else None
        out.append(entry)
    return out


async def fetch_connectors(reader: AsyncInfluxClient, site: str, since_ms: int) -> list[dict]:
    return parse_connectors(await reader.query(*connector_statements(site, since_ms)))
