"""Completeness from envelope seq numbers: the pure polars functions (hand-checked numbers)
and the InfluxDB-backed service against a real InfluxDB 1.6."""

from __future__ import annotations

import asyncio
import time

import polars as pl
import pytest

from cloud.completeness import CompletenessService, device_completeness, site_completeness
from cloud.config import InfluxConfig
from cloud.influx import AsyncInfluxClient
from tests.cloud.test_api_kit import write_lines

pytestmark = pytest.mark.timeout(60)


def counts(rows):
    return pl.DataFrame(rows, schema={"site": pl.String, "device": pl.String, "received": pl.Int64,
                                      "min_seq": pl.Int64, "max_seq": pl.Int64}, orient="row")


def by_device(frame: pl.DataFrame) -> dict:
    return {(r["site"], r["device"]): r for r in frame.iter_rows(named=True)}


def test_device_completeness_with_gap_single_envelope_and_silent_device():
    frame = counts([
        ("plant-a", "gap", 8, 3, 12),       # seq 3..12 expected 10, 8 arrived
        ("plant-a", "single", 1, 41, 41),   # one envelope: complete
        ("plant-b", "full", 100, 1, 100),
    ])
    known = pl.DataFrame({"site": ["plant-a", "plant-a", "plant-b"], "device": ["gap", "silent", "full"]})

    result = by_device(device_completeness(frame, known))

    assert result[("plant-a", "gap")] == {"site": "plant-a", "device": "gap", "expected": 10, "received": 8,
                                         "missing": 2, "ratio": 0.8, "min_seq": 3, "max_seq": 12}
    assert (result[("plant-a", "single")]["expected"], result[("plant-a", "single")]["missing"],
            result[("plant-a", "single")]["ratio"]) == (1, 0, 1.0)
    silent = result[("plant-a", "silent")]
    assert (silent["expected"], silent["received"], silent["missing"], silent["ratio"]) == (0, 0, 0, None)
    assert result[("plant-b", "full")]["ratio"] == 1.0


def test_site_rollup_sums_devices():
    per_device = device_completeness(
        counts([("plant-a", "gap", 8, 3, 12), ("plant-a", "single", 1, 41, 41), ("plant-b", "full", 100, 1, 100)]),
        pl.DataFrame({"site": ["plant-a"], "device": ["silent"]}))

    sites = {r["site"]: r for r in site_completeness(per_device).iter_rows(named=True)}

    # plant-a: expected 10 + 1 + 0, received 8 + 1 + 0
    assert sites["plant-a"] == {"site": "plant-a", "devices": 3, "expected": 11, "received": 9, "missing": 2,
                                "ratio": pytest.approx(9 / 11)}
    assert sites["plant-b"]["ratio"] == 1.0 and sites["plant-b"]["missing"] == 0


def test_site_with_only_silent_devices_has_unknown_ratio():
    per_device = device_completeness(counts([]), pl.DataFrame({"site": ["s"], "device": ["d"]}))
    (site,) = site_completeness(per_device).to_dicts()
    assert site == {"site": "s", "devices": 1, "expected": 0, "received": 0, "missing": 0, "ratio": None}


def test_device_under_two_kinds_never_gets_negative_missing():
    # The same device id written under two measurements: seq values may count twice.
    result = device_completeness(counts([("s", "d", 3, 1, 3), ("s", "d", 3, 1, 3)]))
    (row,) = result.to_dicts()
    assert (row["expected"], row["received"], row["missing"]) == (3, 6, 0)


def test_service_counts_distinct_seq_in_influxdb_and_caches(influx):
    now = int(time.time() * 1000)
    lines = []
    # meter m1: seq 1,2,3,5,6 (4 lost); seq 2 carries two reading times (two points, one envelope).
    for i, seq in enumerate([1, 2, 2, 3, 5, 6]):
        lines.append(f"meter,site=plant-a,agent=edge-1,device=m1,profile=hinode-sim-meter "
                     f"power_total={1000 + i}.0,seq={seq}i {now - 60_000 + i * 1000}")
    lines.append(f"charger,site=plant-a,agent=edge-1,device=c1 power=7.4,seq=17i {now - 5000}")
    # Outside a 1 h window: must not count.
    lines.append(f"meter,site=plant-a,agent=edge-1,device=m1 power_total=1.0,seq=1000i {now - 2 * 3600_000}")
    write_lines(influx.url, lines)

    async def scenario():
        reader = AsyncInfluxClient(InfluxConfig(url=influx.url))
        service = CompletenessService(reader, cache_s=30)
        try:
            per_device, per_site = await service.report(3600)
            queries_after_first = reader.stats.queries_total
            await service.report(3600)
            return per_device, per_site, queries_after_first, reader.stats.queries_total, service
        finally:
            await reader.aclose()

    per_device, per_site, first, second, service = asyncio.run(scenario())
    rows = by_device(per_device)
    assert (rows[("plant-a", "m1")]["expected"], rows[("plant-a", "m1")]["received"],
            rows[("plant-a", "m1")]["missing"]) == (6, 5, 1)
    assert (rows[("plant-a", "c1")]["expected"], rows[("plant-a", "c1")]["ratio"]) == (1, 1.0)
    assert per_site.to_dicts() == [{"site": "plant-a", "devices": 2, "expected": 7, "received": 6, "missing": 1,
                                    "ratio": pytest.approx(6 / 7)}]
    assert second == first, "the second report within cache_s must not query InfluxDB"
    assert (service.cache_hits, service.cache_misses) == (1, 1)


def test_service_on_a_database_that_does_not_exist_yet(influx):
    async def scenario():
        reader = AsyncInfluxClient(InfluxConfig(url=influx.url, database="nothing_here"))
        try:
            return await CompletenessService(reader).report(600)
        finally:
            await reader.aclose()

    per_device, per_site = asyncio.run(scenario())
    assert per_device.height == 0 and per_site.height == 0
