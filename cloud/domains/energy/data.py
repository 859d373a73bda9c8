"""What the energy domain reads from InfluxDB: the metric catalog and counter readings."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cloud.domains.energy.service import READINGS_SCHEMA
from cloud.influx import AsyncInfluxClient, Series, quote_identifier, quote_string
from hinode.contract import is_personal

CATALOG_MEASUREMENT = "hinode_catalog"


@dataclass(frozen=True)
class CatalogEntry:
    site: str
    device: str
    kind: str
    metric: str
    unit: str
    counter: bool
    rollover: float | None      # None: never wraps (the catalog stores 0)


def _condition(tag: str, value: str) -> str:
    return f"{quote_identifier(tag)} = {quote_string(value)}"


def catalog_statement(site: str | None = None, device: str | None = None, metric: str | None = None) -> str:
    """The newest catalog entry per (site, device, kind, metric), whichever agent or profile sent it."""
    conditions = [_condition(tag, value) for tag, value in (("site", site), ("device", device), ("metric", metric))
                  if value is not None]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (f'SELECT "counter", "rollover", "unit" FROM {quote_identifier(CATALOG_MEASUREMENT)}{where} '
            f'GROUP BY "site", "device", "kind", "metric" ORDER BY time DESC LIMIT 1')


def parse_catalog(series: list[Series]) -> list[CatalogEntry]:
    """Entries of non-personal kinds only, sorted; personal devices are never this domain's business."""
    entries = []
    for s in series:
        kind = s.tags.get("kind", "")
        if not kind or is_personal(kind):
            continue
        for row in s.rows()[:1]:
            rollover = row.get("rollover")
            entries.append(CatalogEntry(
                site=s.tags.get("site", ""), device=s.tags.get("device", ""), kind=kind,
                metric=s.tags.get("metric", ""), unit=row.get("unit") or "", counter=row.get("counter") is True,
                rollover=float(rollover) if isinstance(rollover, (int, float)) and rollover > 0 else None))
    return sorted(entries, key=lambda e: (e.site, e.device, e.kind, e.metric))


async def catalog_entry(reader: AsyncInfluxClient, site: str, device: str, metric: str) -> CatalogEntry | None:
    (series,) = await reader.query(catalog_statement(site, device, metric))
    entries = parse_catalog(series)
    return entries[0] if entries else None


async def counters(reader: AsyncInfluxClient) -> list[CatalogEntry]:
    """Every counter metric of every non-personal device in the catalog."""
    (series,) = await reader.query(catalog_statement())
    return [entry for entry in parse_catalog(series) if entry.counter]


def readings_statements(kind: str, metric: str, devices: list[tuple[str, str]], start_ms: int, end_ms: int,
                        lookback_ms: int) -> list[str]:
    """Readings in [start, end), the last one before start and the first one at/after end (within lookback)."""
    field = quote_identifier(metric)
    which = " OR ".join(f"({_condition('site', site)} AND {_condition('device', device)})" for site, device in devices)
    source = f"FROM {quote_identifier(kind)} WHERE ({which})"
    group = ' GROUP BY "site", "device"'
    start_ms, end_ms, lookback_ms = int(start_ms), int(end_ms), int(lookback_ms)
    return [
        f"SELECT {field} AS value {source} AND time >= {start_ms}ms AND time < {end_ms}ms{group}",
        f"SELECT last({field}) AS value {source} AND time >= {start_ms - lookback_ms}ms AND time < {start_ms}ms{group}",
        f"SELECT first({field}) AS value {source} AND time >= {end_ms}ms AND time < {end_ms + lookback_ms}ms{group}",
    ]


def parse_readings(results: list[list[Series]]) -> dict[tuple[str, str], pl.DataFrame]:
    rows: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for series in results:
        for s in series:
            key = (s.tags.get("site", ""), s.tags.get("device", ""))
            rows.setdefault(key, []).extend(
                (int(ts), float(value)) for ts, value in s.values if isinstance(value, (int, float))
                and not isinstance(value, bool))
    return {key: pl.DataFrame(found, schema=READINGS_SCHEMA, orient="row") for key, found in rows.items()}


async def fetch_readings(reader: AsyncInfluxClient, kind: str, metric: str, devices: list[tuple[str, str]],
                         start_ms: int, end_ms: int, lookback_ms: int) -> dict[tuple[str, str], pl.DataFrame]:
    """(site, device) -> (ts, value) frame of one counter, with the bracketing readings."""
    if not devices:
        return {}
    results = await reader.query(*readings_statements(kind, metric, devices, start_ms, end_ms, lookback_ms))
    return parse_readings(results)
