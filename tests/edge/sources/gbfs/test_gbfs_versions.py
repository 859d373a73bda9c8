"""Both GBFS versions through discovery into vehicle batches, against a real HTTP server."""

from __future__ import annotations

import pytest

from edge_agent.sources.gbfs import Source
from edge_agent.sources.gbfs.feed import parse_timestamp
from hinode.contract import DeviceKind
from hinode.mobility import VEHICLE_METRICS, VehicleState, VehicleType
from tests.edge.sources.gbfs.feed_server import FeedServer, load

pytestmark = pytest.mark.timeout(30)

AT_MS = 1_795_996_800_000 + 42_000     # "now" of the recorded feeds: their last_updated + 42 s


def values(batch) -> dict:
    return {r.metric: r.value for r in batch.readings}


def by_position(run) -> dict:
    return {(round(values(b)["lat"], 6), round(values(b)["lon"], 6)): b for b in run.batches if "lat" in values(b)}


async def test_v3_feed_gives_one_vehicle_batch_per_vehicle(gbfs_config, source_tools, monkeypatch):
    monkeypatch.setattr("edge_agent.sources.gbfs.source.now_ms", lambda: AT_MS)
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0", at_ms=AT_MS - 42_000)       # the files as recorded
        context = source_tools.context("feed")
        async with source_tools.run(Source(gbfs_config(feeds.url("/v3_0/gbfs.json")), context)) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
        doc = load("v3_0", "vehicle_status.json")
    assert len(run.batches) == 6, "each vehicle is sent once while nothing changes"
    assert {b.device for b in run.batches} == {f"hitachi-ride-{n:04d}" for n in range(1, 7)}
    assert all(b.kind == DeviceKind.VEHICLE and b.meta["fleet"] == "hitachi-ride" for b in run.batches)
    assert all(r.unit == VEHICLE_METRICS[r.metric] for b in run.batches for r in b.readings)
    records = {v["vehicle_id"]: v for v in doc["data"]["vehicles"]}
    got = by_position(run)
    first = got[(36.590412, 140.661203)]
    expected = records["hr-7c1e0a55"]
    assert values(first) == {"lat": 36.590412, "lon": 140.661203, "battery": 62.0, "range": 18400.0,
                             "state": VehicleState.AVAILABLE}
    assert first.meta["vehicle_type"] == VehicleType.ESCOOTER
    assert {r.ts for r in first.readings} == {parse_timestamp(expected["last_reported"], "")}, \
        "a reading carries the vehicle's last_reported, not the poll time"
    assert values(got[(36.585127, 140.65488)])["state"] == VehicleState.RESERVED
    assert values(got[(36.59883, 140.65241)])["state"] == VehicleState.NON_OPERATIONAL
    assert got[(36.602215, 140.64553)].meta["vehicle_type"] == VehicleType.SLOWMOBILITY
    docked = got[(36.590031, 140.66142)]          # no position of its own: its station's
    assert values(docked)["battery"] == 98.0
    assert all(context.devices[b.device].online for b in run.batches)
    assert set(context.catalog) == {b.device for b in run.batches}
    assert len(run.source.info.zones) == 2 and run.source.info.global_rules[0].maximum_speed_kph == 20


async def test_v2_3_feed_follows_the_chosen_language(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v2_3")
        context = source_tools.context("feed")
        config = gbfs_config(feeds.url("/v2_3/gbfs.json"), language="en")
        async with source_tools.run(Source(config, context)) as run:
            await run.wait_for(lambda: len(run.batches) >= 4, 5, "four bikes")
            served = feeds.routes["/v2_3/en/free_bike_status.json"][1]
        hits = dict(feeds.hits)
    assert hits.get("/v2_3/en/free_bike_status.json", 0) >= 1
    assert not any(path.startswith("/v2_3/ja/") for path in hits), "only the English feeds are followed"
    assert {b.meta["fleet"] for b in run.batches} == {"kuji-scoot"}
    bikes = {b["bike_id"]: b for b in served["data"]["bikes"]}
    got = by_position(run)
    first = got[(36.58891, 140.659733)]
    assert values(first) == {"lat": 36.58891, "lon": 140.659733, "battery": 57.0, "range": 14200.0,
                             "state": VehicleState.AVAILABLE}
    assert {r.ts for r in first.readings} == {bikes["KS-3b8f51"]["last_reported"] * 1000}
    assert first.meta["vehicle_type"] == VehicleType.ESCOOTER        # 2.3's deprecated form_factor "scooter"
    assert got[(36.637205, 140.68632)].meta["vehicle_type"] == "bicycle"     # docked at oda-sta
    assert values(got[(36.579233, 140.648901)])["state"] == VehicleState.RESERVED
    assert run.source.info.zones[0].rules[0].ride_end_allowed is False      # 2.3 ride_allowed: false


async def test_v2_3_default_language_is_the_first_listed(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v2_3")
        async with source_tools.run(Source(gbfs_config(feeds.url("/v2_3/gbfs.json")),
                                           source_tools.context("feed"))) as run:
            await run.wait_for(lambda: len(run.batches) >= 4, 5, "four bikes")
        hits = dict(feeds.hits)
    assert hits.get("/v2_3/ja/free_bike_status.json", 0) >= 1
    assert not any(path.startswith("/v2_3/en/") for path in hits)


async def test_fleet_and_device_prefix_from_config(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"), fleet="ride-city", device_prefix="rc")
        async with source_tools.run(Source(config, source_tools.context("feed"))) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
        hits = dict(feeds.hits)
    assert {b.meta["fleet"] for b in run.batches} == {"ride-city"}
    assert {b.device for b in run.batches} == {f"rc-{n:04d}" for n in range(1, 7)}
    assert "/v3_0/system_information.json" not in hits, "the fleet id is given: no need for system_information"


async def test_a_report_later_than_the_file_takes_the_files_time(gbfs_config, source_tools):
    doc = load("v3_0", "vehicle_status.json")
    doc["data"]["vehicles"] = doc["data"]["vehicles"][:1]
    doc["data"]["vehicles"][0]["last_reported"] = "2026-11-30T10:00:00+09:00"    # an hour after last_updated
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")
        served = feeds.serve("/v3_0/vehicle_status.json", doc)
        async with source_tools.run(Source(gbfs_config(feeds.url("/v3_0/gbfs.json")),
                                           source_tools.context("feed"))) as run:
            await run.wait_for(lambda: run.batches, 5, "the vehicle")
    assert {r.ts for r in run.batches[0].readings} == {parse_timestamp(served["last_updated"], "")}
