"""Polls follow the feed's ttl (within min/max_interval_s); only changed vehicles are sent, plus a keep-alive."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_agent.sources.gbfs import Source
from tests.edge.sources.gbfs.feed_server import FeedServer, load

pytestmark = pytest.mark.timeout(30)

VEHICLES = "/v3_0/vehicle_status.json"


def with_ttl(ttl: int) -> dict:
    doc = load("v3_0", "vehicle_status.json")
    doc["ttl"] = ttl
    return doc


async def count_polls(feeds: FeedServer, seconds: float) -> int:
    start = feeds.hits[VEHICLES]
    await asyncio.sleep(seconds)      # a time window is what is measured here, not a condition awaited
    return feeds.hits[VEHICLES] - start


async def test_ttl_sets_the_next_poll(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")
        feeds.serve(VEHICLES, with_ttl(1), live=True)      # regenerated at every request, valid for 1 s
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"), min_interval_s=0.05, max_interval_s=10)
        async with source_tools.run(Source(config, source_tools.context("feed"))) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            polls = await count_polls(feeds, 3.0)
    assert 2 <= polls <= 4, f"{polls} polls in 3 s of a ttl-1 s feed"


async def test_min_interval_wins_over_a_zero_ttl(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")
        feeds.serve(VEHICLES, with_ttl(0), live=True)
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"), min_interval_s=0.5, max_interval_s=10)
        async with source_tools.run(Source(config, source_tools.context("feed"))) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            polls = await count_polls(feeds, 2.0)
    assert 3 <= polls <= 5, f"{polls} polls in 2 s with min_interval_s 0.5"


async def test_max_interval_caps_a_long_ttl(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")
        feeds.serve(VEHICLES, with_ttl(3600), live=True)
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"), min_interval_s=0.1, max_interval_s=0.5)
        async with source_tools.run(Source(config, source_tools.context("feed"))) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            polls = await count_polls(feeds, 2.0)
    assert 3 <= polls <= 5, f"{polls} polls in 2 s with max_interval_s 0.5"


async def test_only_changed_vehicles_are_sent_plus_a_keepalive(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")
        feeds.serve(VEHICLES, with_ttl(0), live=True)
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"), min_interval_s=0.05, keepalive_s=1.5)
        async with source_tools.run(Source(config, source_tools.context("feed"))) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            started, first_round = time.monotonic(), len(run.batches)
            polls = run.source.polls
            await run.wait_for(lambda: run.source.polls >= polls + 10, 5, "ten polls")
            assert len(run.batches) == first_round, "ten polls of an unchanged feed sent nothing"

            doc = with_ttl(0)
            doc["data"]["vehicles"][1]["lat"] = 36.585901          # hr-19b2d4f0 moves
            feeds.serve(VEHICLES, doc, live=True)
            moved = run.source.slots.device_of("hr-19b2d4f0")
            await run.wait_for(lambda: len(run.batches) > first_round, 5, "the moved vehicle")
            await asyncio.sleep(0.3)         # a few more polls: still only that one
            assert [b.device for b in run.batches[first_round:]] == [moved]

            before = len(run.batches)
            await run.wait_for(lambda: len({b.device for b in run.batches[before:]}) == 6, 5, "keep-alives of all six")
            waited = time.monotonic() - started
            assert waited >= 1.4, f"keep-alive after {waited:.1f} s, expected keepalive_s 1.5"
            last_ts = {}
            for batch in run.batches:
                ts = batch.readings[0].ts
                assert ts > last_ts.get(batch.device, -1), "a keep-alive carries the newer feed time, never a repeat"
                last_ts[batch.device] = ts


def test_parked_partner_vehicles_stay_online_on_the_live_board():
    """A bug seen under `hinode up`: the partner's parked scooters flapped offline on the live board.

    An unchanged vehicle was resent every 60 s while the cloud calls a device offline after 30 s
    without data, so 7 of 12 parked GBFS vehicles showed "no data for 47 s".
    """
    from cloud.config import ApiConfig
    from edge_agent.sources.gbfs.config import Config

    keepalive_s = Config(type="gbfs", name="partner", url="http://127.0.0.1:1/gbfs.json").keepalive_s
    assert keepalive_s < ApiConfig().offline_after_s
