"""A year of green-city history into InfluxDB in seconds (``hinode up``; model: simulators/greencity).

What it writes, in the shapes the live pipeline writes them (so the domains cannot tell):

* ``meter`` points every 30 minutes (at each JST slot start) with the counters of every demo meter
  (``energy_import`` / ``energy_export``, kWh, float) and ``power_total`` (W, float, the slot's mean),
  tags ``agent, device, profile, site`` as cloud/lineproto.py writes telemetry. No ``seq``: these
  are not envelopes, so the seq-based completeness of live data never sees a gap from them.
* ``energy_slot`` points (tags site, device, metric; fields consumption, readings) for every whole slot
  between two backfilled readings, computed with the energy domain's own counter functions
  (``cloud.domains.energy.service``), i.e. what its ``energy.slots`` job stores.
* ``hinode_catalog`` entries (counter=true, unit kWh) dated at the start of the history, so the energy
  domain treats the metrics as counters; an agent's own later catalog wins.

Lines go out in batches of ``BATCH_LINES`` over HTTP ``/write`` (``cloud.influx.InfluxClient``).
Rewriting a range writes the same points (same series and timestamps): nothing is duplicated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import polars as pl

from cloud.domains.energy import service
from cloud.domains.energy.jobs import ALIGN_OFFSET_S, SLOT_MEASUREMENT
from cloud.influx import InfluxClient
from cloud.ingest.records import CATALOG_MEASUREMENT
from simulators.greencity import model
from simulators.greencity.sites import SITES, SiteSpec

BATCH_LINES = 5_000
SLOT_S = model.SLOT_MS // 1000


@dataclass
class MeterHistory:
    site: str
    agent: str
    device: str
    profile: str
    ts: np.ndarray                                   # slot starts (ms)
    counters: dict[str, np.ndarray]                  # metric -> kWh at each ts
    power_w: np.ndarray                              # mean power of the slot starting at ts


@dataclass
class BackfillResult:
    start_ms: int
    end_ms: int
    sites: list[str]
    lines: int = 0
    seconds: float = 0.0
    slot_energy: dict[tuple[str, str, str], pl.DataFrame] = field(default_factory=dict)


def site_history(spec: SiteSpec, start_ms: int, end_ms: int, seed: int = 0,
                 live_start_kwh: dict[tuple[str, str], float] | None = None) -> list[MeterHistory]:
    """The site's meters at every slot start in [start, end).

    A meter-only site's counters are the model's (the same at the same instant, whatever the range).
    A PV site's counters end at ``live_start_kwh[(device, metric)]`` at ``end_ms`` (the live simulator's
    first values): the last slot counts pro rata up to ``end_ms``.
    """
    energy = model.site_energy(spec, start_ms, end_ms, seed)
    ts = energy.slot_start
    if len(ts) == 0:
        return []
    partial = (end_ms - int(ts[-1])) / model.SLOT_MS
    out = []
    for meter in spec.meters:
        counters = {}
        for metric in meter.metrics:
            kwh = energy.counter_energy(meter.device, metric)
            if spec.kwp:
                if live_start_kwh is None:
                    raise ValueError(f"{spec.id} has PV: give the live counters' start values (live_start_kwh)")
                kwh = np.concatenate([kwh[:-1], kwh[-1:] * partial])
                counters[metric] = model.anchored_counters(kwh, live_start_kwh[(meter.device, metric)])[:-1]
            else:
                counters[metric] = model.import_counters(spec, ts, seed)
        if meter.device == "pv-inverter":
            power = energy.pv_kwh
        elif spec.kwp:
            power = energy.import_kwh - energy.export_kwh
        else:
            power = energy.load_kwh
        out.append(MeterHistory(spec.id, spec.agent, meter.device, meter.profile, ts, counters,
                                power / model.SLOT_H * 1000))
    return out


def slot_energy(history: MeterHistory, metric: str) -> pl.DataFrame:
    """slot_start, consumption, readings of one counter: the energy domain's own computation."""
    readings = pl.DataFrame({"ts": history.ts, "value": history.counters[metric]},
                            schema=service.READINGS_SCHEMA)
    return service.per_slot(service.consumption(readings), SLOT_S, ALIGN_OFFSET_S)


def meter_lines(history: MeterHistory) -> Iterator[str]:
    prefix = f"meter,agent={history.agent},device={history.device},profile={history.profile},site={history.site} "
    metrics = list(history.counters)
    columns = [history.counters[m].tolist() for m in metrics]
    power = history.power_w.tolist()
    for i, ts in enumerate(history.ts.tolist()):
        fields = ",".join(f"{m}={float(column[i])!r}" for m, column in zip(metrics, columns))
        yield f"{prefix}{fields},power_total={float(power[i])!r} {ts}"


def slot_lines(site: str, device: str, metric: str, slots: pl.DataFrame) -> Iterator[str]:
    prefix = f"{SLOT_MEASUREMENT},device={device},metric={metric},site={site} "
    for start, kwh, readings in slots.select("slot_start", "consumption", "readings").iter_rows():
        yield f"{prefix}consumption={float(kwh)!r},readings={int(readings)}i {start}"


def catalog_lines(history: MeterHistory, ts_ms: int) -> Iterator[str]:
    tags = f"agent={history.agent},device={history.device},kind=meter"
    for metric, unit, counter in [*((m, "kWh", True) for m in history.counters), ("power_total", "W", False)]:
        yield (f"{CATALOG_MEASUREMENT},{tags},metric={metric},profile={history.profile},site={history.site} "
               f'unit="{unit}",counter={str(counter).lower()},rollover=0.0,writable=false {ts_ms}')


def write_batches(client: InfluxClient, lines: Iterable[str], batch: int = BATCH_LINES) -> int:
    written, chunk = 0, []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            client.write_lines(chunk)
            written += len(chunk)
            chunk = []
    if chunk:
        client.write_lines(chunk)
        written += len(chunk)
    return written


def backfill(client: InfluxClient, start_ms: int, end_ms: int, sites: Iterable[str] = tuple(SITES), seed: int = 0,
             live_start_kwh: dict[tuple[str, str], float] | None = None) -> BackfillResult:
    """Write the history of ``sites`` in [start, end) (see the module docstring); idempotent."""
    began = time.perf_counter()
    result = BackfillResult(int(start_ms), int(end_ms), list(sites))

    def lines() -> Iterator[str]:
        for site_id in result.sites:
            for history in site_history(SITES[site_id], start_ms, end_ms, seed, live_start_kwh):
                yield from catalog_lines(history, int(history.ts[0]))
                yield from meter_lines(history)
                for metric in history.counters:
                    slots = slot_energy(history, metric)
                    result.slot_energy[(site_id, history.device, metric)] = slots
                    yield from slot_lines(site_id, history.device, metric, slots)

    result.lines = write_batches(client, lines())
    result.seconds = time.perf_counter() - began
    return result
