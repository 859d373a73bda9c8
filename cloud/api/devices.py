"""Service functions behind /api/devices, /api/latest and /api/sites.

InfluxDB says which devices exist and when each last sent data; the status tracker
says what the agents think of them. A device is online only when both agree: its
agent reports it online AND its last data is younger than ``offline_after_s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from cloud.influx import AsyncInfluxClient, quote_string
from cloud.status import KnownStatus
from cloud.ingest.records import CATALOG_MEASUREMENT
from hinode.contract import RECORD_KINDS, DeviceKind, is_personal

# The general endpoints read every kind but the personal ones (which live in their own database
# anyway): naming them here keeps a misrouted point from ever showing up in a general answer.
# Devices, not records (a charging session is an event at a charger, not a device of its own).
_GENERAL_KINDS = [kind.value for kind in DeviceKind if not is_personal(kind) and kind not in RECORD_KINDS]
KINDS_FROM = ",".join(f'"{kind}"' for kind in _GENERAL_KINDS)
DEVICE_KINDS = frozenset(_GENERAL_KINDS)
# How far back the general endpoints (devices, newest values, catalog, positions, rates) look:
# bounded, so the board's every-second refresh never scans a device's whole history. A device
# silent for longer is still listed (offline) while its agent's status or catalog names it;
# agents resend their catalog at least every 6 h (edge_agent.agent.CATALOG_REFRESH_S).
LOOKBACK_DAYS = 30
LOOKBACK = f"{LOOKBACK_DAYS}d"
NO_RECENT_DATA = f"no data in the last {LOOKBACK_DAYS} d"
# Fields the ingest adds to every point that are bookkeeping, not readings.
BOOKKEEPING_FIELDS = {"seq", "bad_metrics", "uncertain_metrics"}


@dataclass(frozen=True)
class DataSeen:
    site: str
    device: str
    kind: str
    agent: str
    profile: str
    last_seen_ms: int


def _where(site: str | None, device: str | None = None) -> str:
    conditions = [f"time > now() - {LOOKBACK}"]
    conditions += [f'"{tag}" = {quote_string(value)}' for tag, value in (("site", site), ("device", device)) if value]
    return f" WHERE {' AND '.join(conditions)}"


def index_statement(site: str | None) -> str:
    return f'SELECT last("seq") AS seq FROM {KINDS_FROM}{_where(site)} GROUP BY "site","agent","device","profile"'


def parse_index(series) -> dict[tuple[str, str], DataSeen]:
    """Keep the newest (agent, profile) per (site, device): a device may have moved agents."""
    seen: dict[tuple[str, str], DataSeen] = {}
    for s in series:
        for row in s.rows():
            item = DataSeen(s.tags.get("site", ""), s.tags.get("device", ""), s.name,
                            s.tags.get("agent", ""), s.tags.get("profile", ""), int(row["time"]))
            key = (item.site, item.device)
            if key not in seen or seen[key].last_seen_ms < item.last_seen_ms:
                seen[key] = item
    return seen


async def data_index(reader: AsyncInfluxClient, site: str | None) -> dict[tuple[str, str], DataSeen]:
    (series,) = await reader.query(index_statement(site))
    return parse_index(series)


def catalog_statement(site: str | None, device: str | None = None) -> str:
    """What each device measures, from the catalogs agents send (any profile, shipped or site-local)."""
    # One selector: the row keeps its catalog's time (newest wins in parse_catalog) and "counter"
    # comes from that same point.
    return (f'SELECT last("unit") AS unit, "counter" AS counter FROM "{CATALOG_MEASUREMENT}"'
            f'{_where(site, device)} GROUP BY "site","agent","device","kind","profile","metric"')


def parse_catalog(series) -> dict[tuple[str, str], dict[str, dict]]:
    """(site, device) -> metric -> {"unit", "counter", "kind", "agent", "profile", "ts"}: the newest
    catalog's entry when a device moved agents or profiles."""
    catalog: dict[tuple[str, str], dict[str, dict]] = {}
    for s in series:
        for row in s.rows():
            key, metric = (s.tags.get("site", ""), s.tags.get("device", "")), s.tags.get("metric", "")
            known = catalog.get(key, {}).get(metric)
            if known is not None and known["ts"] > int(row["time"]):
                continue
            catalog.setdefault(key, {})[metric] = {
                "unit": row.get("unit") or "", "counter": bool(row.get("counter")), "kind": s.tags.get("kind", ""),
                "agent": s.tags.get("agent", ""), "profile": s.tags.get("profile", ""), "ts": int(row["time"])}
    return catalog


def _catalog_devices(catalog: dict[tuple[str, str], dict[str, dict]]) -> dict[tuple[str, str], dict]:
    """(site, device) -> the newest catalog entry naming it (kind, agent, profile), general kinds only."""
    out = {}
    for key, metrics in catalog.items():
        newest = max(metrics.values(), key=lambda info: info["ts"])
        if newest["kind"] in DEVICE_KINDS:
            out[key] = newest
    return out


async def device_catalog(reader: AsyncInfluxClient, site: str | None,
                         device: str | None = None) -> dict[tuple[str, str], dict[str, dict]]:
    (series,) = await reader.query(catalog_statement(site, device))
    return parse_catalog(series)


def units_of(catalog: dict[tuple[str, str], dict[str, dict]], site: str, device: str) -> dict[str, str]:
    return {metric: info["unit"] for metric, info in sorted(catalog.get((site, device), {}).items())}


def counters_of(catalog: dict[tuple[str, str], dict[str, dict]], site: str, device: str) -> list[str]:
    return sorted(metric for metric, info in catalog.get((site, device), {}).items() if info["counter"])


def _status_devices(statuses: dict[tuple[str, str], KnownStatus]) -> dict[tuple[str, str], tuple[KnownStatus, object]]:
    listed = {}
    for (site, _agent), known in statuses.items():
        for state in known.status.devices:
            if not is_personal(state.kind):     # an agent's status lists its vitals devices too
                listed[(site, state.device)] = (known, state)
    return listed


def _status_problem(kind: str, agent: str, known: KnownStatus | None, state) -> str:
    if known is None:
        return f"no status from agent {agent or '?'}"
    if known.status.state != "online":
        return f"agent {known.status.agent} is offline"
    if kind != DeviceKind.AGENT.value and state is None:
        return f"agent {known.status.agent} does not list this device"
    if state is not None and not state.online:
        return "agent reports device offline" + (f": {state.error}" if state.error else "")
    return ""


def judge_device(site: str, device: str, kind: str, agent: str, last_seen_ms: int | None,
                 statuses: dict[tuple[str, str], KnownStatus] | None, listed: dict, now_ms: int,
                 offline_after_s: int) -> dict:
    """online + a reason a factory manager can act on when it is not.

    ``statuses`` None means no status tracker runs: only the age of the data counts.
    """
    known, state = listed.get((site, device), ((statuses or {}).get((site, agent)), None))
    if kind == DeviceKind.AGENT.value and known is None:
        known = (statuses or {}).get((site, device))
    age_s = None if last_seen_ms is None else max(0.0, (now_ms - last_seen_ms) / 1000)
    error = state.error if state is not None else ""
    reason = "" if statuses is None else _status_problem(kind, agent, known, state)
    if not reason and age_s is None:
        reason = NO_RECENT_DATA     # never sent any, or not within the lookback: the query cannot tell
    elif not reason and age_s > offline_after_s:
        reason = f"no data for {age_s:.0f} s"
    return {"online": reason == "", "reason": reason, "error": error,
            "agent": known.status.agent if known is not None and not agent else agent,
            "age_s": None if age_s is None else round(age_s, 1)}


def empty_completeness() -> dict:
    return {"expected": 0, "received": 0, "missing": 0, "ratio": None}


def list_devices(seen: dict[tuple[str, str], DataSeen], statuses: dict[tuple[str, str], KnownStatus] | None,
                 site: str | None, now_ms: int, offline_after_s: int,
                 catalog: dict[tuple[str, str], dict[str, dict]] | None = None) -> list[dict]:
    """Devices with data in the lookback, plus devices an agent's status or catalog names that sent
    none in it (listed offline, completeness left empty)."""
    listed = _status_devices(statuses or {})
    devices: dict[tuple[str, str], dict] = {}
    for key, item in seen.items():
        devices[key] = {"site": item.site, "device": item.device, "kind": item.kind, "profile": item.profile,
                        "agent": item.agent, "last_seen": item.last_seen_ms}
    for (dev_site, dev_id), (known, state) in listed.items():
        if (dev_site, dev_id) not in devices:
            devices[(dev_site, dev_id)] = {"site": dev_site, "device": dev_id, "kind": state.kind.value,
                                           "profile": "", "agent": known.status.agent, "last_seen": None}
    for key, info in _catalog_devices(catalog or {}).items():
        if key not in devices:
            devices[key] = {"site": key[0], "device": key[1], "kind": info["kind"], "profile": info["profile"],
                            "agent": info["agent"], "last_seen": None}
        elif not devices[key]["profile"]:
            devices[key]["profile"] = info["profile"]
    out = []
    for key in sorted(devices):
        dev = devices[key]
        if site and dev["site"] != site:
            continue
        dev.update(judge_device(dev["site"], dev["device"], dev["kind"], dev["agent"], dev["last_seen"],
                                statuses, listed, now_ms, offline_after_s))
        dev["completeness"] = empty_completeness()
        dev["units"] = units_of(catalog or {}, dev["site"], dev["device"])
        dev["counters"] = counters_of(catalog or {}, dev["site"], dev["device"])
        out.append(dev)
    return out


def completeness_by_device(per_device: pl.DataFrame) -> dict[tuple[str, str], dict]:
    return {(row["site"], row["device"]): {k: row[k] for k in ("expected", "received", "missing", "ratio")}
            for row in per_device.iter_rows(named=True)}


def known_devices_frame(devices: list[dict]) -> pl.DataFrame:
    return pl.DataFrame([{"site": d["site"], "device": d["device"]} for d in devices],
                        schema={"site": pl.String, "device": pl.String})


# ---------------------------------------------------------------- latest values

def latest_statements(site: str | None, device: str | None = None) -> list[str]:
    where = _where(site, device)
    group = ' GROUP BY "site","device"'
    return [
        f"SELECT last(*) FROM {KINDS_FROM}{where}{group}",
        f'SELECT last("seq") AS seq FROM {KINDS_FROM}{where} GROUP BY "site","agent","device","profile"',
        f'SELECT last("bad_metrics") AS metrics FROM {KINDS_FROM}{where}{group}',
        f'SELECT last("uncertain_metrics") AS metrics FROM {KINDS_FROM}{where}{group}',
    ]


def _split_metrics(text) -> list[str]:
    return [m for m in re.split(r"[,\s]+", text or "") if m]


def parse_latest(results) -> list[dict]:
    values_series, index_series, bad_series, uncertain_series = results
    seen = parse_index(index_series)
    values: dict[tuple[str, str], dict] = {}
    for s in values_series:
        key = (s.tags.get("site", ""), s.tags.get("device", ""))
        for row in s.rows():
            for column, value in row.items():
                if not column.startswith("last_") or value is None:
                    continue
                metric = column[len("last_"):]
                if metric not in BOOKKEEPING_FIELDS:
                    values.setdefault(key, {})[metric] = value
    quality: dict[tuple[str, str], dict] = {}
    for label, series in (("uncertain", uncertain_series), ("bad", bad_series)):
        for s in series:
            key = (s.tags.get("site", ""), s.tags.get("device", ""))
            for row in s.rows():
                # A flag only counts when it belongs to the newest point of that device.
                if key in seen and int(row["time"]) == seen[key].last_seen_ms:
                    for metric in _split_metrics(row["metrics"]):
                        quality.setdefault(key, {})[metric] = label
    out = []
    for key in sorted(seen):
        item = seen[key]
        out.append({"site": item.site, "device": item.device, "kind": item.kind, "agent": item.agent,
                    "ts": item.last_seen_ms, "values": dict(sorted(values.get(key, {}).items())),
                    "quality": quality.get(key, {})})
    return out


async def latest_values(reader: AsyncInfluxClient, site: str | None, device: str | None = None) -> list[dict]:
    return parse_latest(await reader.query(*latest_statements(site, device)))


# ---------------------------------------------------------------- sites

def positions_statement(site: str | None) -> str:
    # One selector: "lon" then comes from the very point whose lat is last, with that point's time.
    return (f'SELECT last("lat") AS lat, "lon" AS lon FROM "{DeviceKind.VEHICLE.value}"{_where(site)} '
            f'GROUP BY "site","device"')


def parse_positions(series) -> list[dict]:
    """The newest position of each vehicle (``lat`` and ``lon`` of one reading ts are one point)."""
    out = []
    for s in series:
        for row in s.rows():
            if isinstance(row.get("lat"), (int, float)) and isinstance(row.get("lon"), (int, float)):
                out.append({"site": s.tags.get("site", ""), "device": s.tags.get("device", ""), "ts": int(row["time"]),
                            "lat": row["lat"], "lon": row["lon"]})
    return sorted(out, key=lambda p: (p["site"], p["device"]))


def agent_rates_statement(site: str | None = None) -> str:
    return f'SELECT last("readings_per_s") AS rate FROM "{DeviceKind.AGENT.value}"{_where(site)} GROUP BY "site","device"'


def parse_agent_rates(series) -> dict[tuple[str, str], float]:
    return {(s.tags.get("site", ""), s.tags.get("device", "")): float(row["rate"])
            for s in series for row in s.rows() if isinstance(row["rate"], (int, float))}


def summarize_sites(devices: list[dict], statuses: dict[tuple[str, str], KnownStatus],
                    site_rollup: pl.DataFrame, agent_rates: dict[tuple[str, str], float] | None = None) -> list[dict]:
    """Per site: agents and their state, device and online counts, completeness, readings/s."""
    rollup = {row["site"]: {k: row[k] for k in ("expected", "received", "missing", "ratio")}
              for row in site_rollup.iter_rows(named=True)}
    sites: dict[str, dict] = {}

    def site_entry(name: str) -> dict:
        return sites.setdefault(name, {"site": name, "agents": {}, "devices": 0, "devices_online": 0})

    for (site, agent), known in statuses.items():
        status = known.status
        site_entry(site)["agents"][agent] = {"agent": agent, "state": status.state, "version": status.version,
                                             "status_ts": status.ts, "devices": len(status.devices)}
    rates: dict[str, float] = {}
    for dev in devices:
        entry = site_entry(dev["site"])
        if dev["kind"] != DeviceKind.AGENT.value:
            entry["devices"] += 1
            entry["devices_online"] += int(dev["online"])
            continue
        entry["agents"].setdefault(dev["device"], {"agent": dev["device"], "state": "unknown", "version": "",
                                                   "status_ts": None, "devices": 0})
        # Only agents that are live now add to the site's current rate.
        rate = (agent_rates or {}).get((dev["site"], dev["device"]))
        if dev["online"] and rate is not None:
            rates[dev["site"]] = rates.get(dev["site"], 0.0) + rate
    out = []
    for name in sorted(sites):
        entry = sites[name]
        agents = [entry["agents"][a] for a in sorted(entry["agents"])]
        out.append({"site": name, "agents": agents,
                    "agents_online": sum(1 for a in agents if a["state"] == "online"),
                    "devices": entry["devices"], "devices_online": entry["devices_online"],
                    "readings_per_s": rates.get(name),
                    "completeness": rollup.get(name, empty_completeness())})
    return out
