"""CO2 accounting and interchange settlement for 300 sites over a year of 30-minute data.

    python bench/greencity_settlement.py [--sites 300] [--days 365] [--community-size 10]

One frame of per-slot meter energy (the ``energy_slot`` shape the domains read: 300 sites with
a grid meter each, two PV producers per community with a generation and an export meter, a year
of 30-minute slots: about 6.3 M rows) goes through what the domains run on it:

* **CO2**: the co2 domain's bulk path (``jobs.compute_range`` without the I/O): every site's slots
  with completeness and kg-CO2 with its fiscal year's factor (``accounting.sites_slot_co2``), then
  the month sums per site.
* **Settlement**: the interchange domain's path for each community of ``--community-size`` sites
  (``slots.settle``: community slots, the month's rule, the allocation; ``service.flows``), then a
  statement per participant per month (``statements.statements``).

The reference, in the same process on the same frame, is polars' own group-by: kWh per site and
calendar month (JST), the least any monthly figure needs. Target: each path <= 3 x the reference
per row... i.e. time(path) / time(group-by) <= 3. Memory: the process's peak RSS after each stage.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ratio_line  # noqa: E402
from cloud.domains._greencity.calendar import DAY_MS, OFFSET_MS, SLOT_MS, date_start_ms, month_range_ms  # noqa: E402
from cloud.domains._greencity.energy import SLOT_ENERGY_SCHEMA  # noqa: E402
from cloud.domains.co2 import accounting  # noqa: E402
from cloud.domains.co2.config import Co2Config  # noqa: E402
from cloud.domains.co2.factors import load_factors  # noqa: E402
from cloud.domains.interchange import service as interchange_service  # noqa: E402
from cloud.domains.interchange import slots as interchange_slots  # noqa: E402
from cloud.domains.interchange.config import Community  # noqa: E402
from cloud.domains.interchange.statements import statements  # noqa: E402

TARGET_RATIO = "<= 3.0"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def site_ids(sites: int) -> list[str]:
    return [f"site-{i:03d}" for i in range(sites)]


def energy_frame(sites: int, days: int, community_size: int, seed: int = 1) -> tuple[pl.DataFrame, int, int]:
    """Per-slot kWh of every meter: a day-shift load with noise, PV at two producers per community."""
    rng = np.random.default_rng(seed)
    start = date_start_ms(date(2025, 4, 1))
    end = start + days * DAY_MS
    slots = np.arange(start, end, SLOT_MS, dtype=np.int64)
    slot_of_day = ((slots + OFFSET_MS) % DAY_MS) // SLOT_MS
    weekday = (((slots + OFFSET_MS) // DAY_MS) + 3) % 7          # 1970-01-01 was a Thursday (3)
    working = (weekday < 5) & (slot_of_day >= 16) & (slot_of_day < 36)
    sun = np.clip(np.sin((slot_of_day - 11) / 26 * np.pi), 0, None)
    frames = []
    for i, site in enumerate(site_ids(sites)):
        size = rng.uniform(5, 60)
        load = size * (0.3 + 0.7 * working) * rng.uniform(0.9, 1.1, slots.size)
        frames.append(pl.DataFrame({"site": site, "device": "main-meter", "metric": "energy_import",
                                    "slot_start": slots, "kwh": load, "readings": 3}))
        if i % community_size < 2:                                  # two producers per community
            pv = size * 3 * sun * rng.uniform(0.2, 1.0, slots.size)
            export = np.clip(pv - load, 0, None)
            frames.append(pl.DataFrame({"site": site, "device": "pv-inverter", "metric": "energy_export",
                                        "slot_start": slots, "kwh": pv, "readings": 3}))
            frames.append(pl.DataFrame({"site": site, "device": "grid-meter", "metric": "energy_export",
                                        "slot_start": slots, "kwh": export, "readings": 3}))
    return pl.concat(frames).cast(SLOT_ENERGY_SCHEMA), start, end


def co2_config(sites: int) -> Co2Config:
    return Co2Config.model_validate({"sites": [
        {"id": site, "retailer": "default", "own_factor": {"basic_kg_per_kwh": 0.45, "adjusted_kg_per_kwh": 0.44},
         "grid_meters": [{"device": "main-meter", "metric": "energy_import"}]} for site in site_ids(sites)]})


def communities(sites: int, size: int) -> list[Community]:
    out = []
    ids = site_ids(sites)
    for c in range(0, sites, size):
        members = ids[c:c + size]
        out.append(Community.model_validate({
            "id": f"community-{c // size:02d}", "price_yen_per_kwh": 16.0,
            "rules": [{"from_month": "2025-04", "rule": "pro_rata"}, {"from_month": "2025-10", "rule": "priority"}],
            "participants": [
                {"site": s, "role": "producer",
                 "meters": {"generation": {"device": "pv-inverter", "metric": "energy_export"},
                            "export": {"device": "grid-meter", "metric": "energy_export"}}} if j < 2 else
                {"site": s, "role": "consumer", "meters": {"consumption": {"device": "main-meter"}}, "priority": j}
                for j, s in enumerate(members)]}))
    return out


def reference_group_by(energy: pl.DataFrame) -> pl.DataFrame:
    month = (pl.col("slot_start") + OFFSET_MS).cast(pl.Datetime("ms")).dt.truncate("1mo").alias("month")
    return energy.group_by("site", month).agg(pl.col("kwh").sum())


def co2_path(energy: pl.DataFrame, config: Co2Config, start: int, end: int) -> pl.DataFrame:
    slots = accounting.sites_slot_co2(energy, config, load_factors(), start, end)
    return slots.group_by("site", "month").agg(pl.col("kwh").sum(), pl.col("kg_market").sum(),
                                               pl.col("meters_expected").sum(), pl.col("meters_measured").sum())


def settlement_path(by_site: dict, groups: list[Community], start: int, end: int) -> list[dict]:
    chosen = pl.DataFrame({"slot_start": np.arange(start, end, SLOT_MS, dtype=np.int64), "provisional": False})
    month_edges = []
    m = date(2025, 4, 1)
    while date_start_ms(m) < end:
        month = m.strftime("%Y-%m")
        month_edges.append((month, *month_range_ms(month)))
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    out = []
    factors = {site: 0.44 for (site,) in by_site}
    for community in groups:
        own = pl.concat([by_site[(p.site,)] for p in community.participants])
        settled = interchange_slots.settle(community, own, chosen)
        flows = interchange_service.flows(settled)
        participants = [{"site": p.site, "role": p.role} for p in community.participants]
        for month, m_start, m_end in month_edges:
            in_month = (pl.col("slot_start") >= m_start) & (pl.col("slot_start") < m_end)
            out += statements(settled.filter(in_month), flows.filter(in_month), participants, 16.0, factors)
    return out


def timed(what, fn, *args):
    gc.collect()
    started = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - started
    print(f"  {what:<34} {elapsed:8.2f} s   RSS {rss_mb():7.0f} MB   peak {peak_rss_mb():7.0f} MB", flush=True)
    return result, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--community-size", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path; the fastest counts (the first also builds the holiday calendar)")
    args = parser.parse_args(argv)
    print(f"CO2 and settlement: {args.sites} sites, {args.days} days of 30-minute slots, "
          f"communities of {args.community_size} (2 PV producers each)")
    (energy, start, end), _ = timed("generate the frame", energy_frame, args.sites, args.days, args.community_size)
    print(f"  {energy.height:,} meter-slot rows, {energy.estimated_size() / 2**20:.0f} MB as a frame")
    reference = min(timed("reference: polars group-by", reference_group_by, energy)[1] for _ in range(args.repeat))
    runs = [timed("co2: slots, factors, months", co2_path, energy, co2_config(args.sites), start, end)
            for _ in range(args.repeat)]
    co2_rows, co2_s = runs[-1][0], min(t for _, t in runs)
    by_site = energy.partition_by("site", as_dict=True)       # what the domain reads per community
    runs = [timed("settlement: allocate + statements", settlement_path, by_site,
                  communities(args.sites, args.community_size), start, end) for _ in range(args.repeat)]
    settled, settle_s = runs[-1][0], min(t for _, t in runs)
    print(f"  {co2_rows.height:,} site-months of CO2, {len(settled):,} statements")
    print(ratio_line("co2 path vs polars group-by", co2_s, reference, TARGET_RATIO))
    print(ratio_line("settlement path vs polars group-by", settle_s, reference, TARGET_RATIO))
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
