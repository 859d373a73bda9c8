"""Stale, broken and partly broken feeds are flagged with a reason and counted, never silently frozen."""

from __future__ import annotations

import re
import time

import pytest

from edge_agent.sources.gbfs import Source
from tests.edge.sources.gbfs.feed_server import FeedServer, load

pytestmark = pytest.mark.timeout(30)

VEHICLES = "/v3_0/vehicle_status.json"


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_stale_feed_is_flagged_and_recovers(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")                    # stamped now, then frozen: nobody regenerates it
        context = source_tools.context("feed")
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"), stale_after_s=1.0, keepalive_s=0.2)
        async with source_tools.run(Source(config, context)) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            devices = {b.device for b in run.batches}
            await run.wait_for(lambda: not any(context.devices[d].online for d in devices), 5, "all offline")
            reason = context.devices[next(iter(devices))].error
            assert re.fullmatch(r"stale feed: last_updated \S+Z is \d+ s old", reason), reason
            assert run.source.feed_error == reason and not run.source.feed_online
            sent_while_stale = len(run.batches)
            polls = run.source.polls
            await run.wait_for(lambda: run.source.polls >= polls + 3, 5, "three more polls of the stale feed")
            assert len(run.batches) == sent_while_stale, "a stale feed's readings are not re-sent as fresh"
            assert context.errors[("_source", "stale")] >= 3

            doc = load("v3_0", "vehicle_status.json")
            doc["data"]["vehicles"][0]["current_fuel_percent"] = 0.55
            feeds.serve(VEHICLES, doc, live=True)          # the operator's server is back to regenerating
            await run.wait_for(lambda: all(context.devices[d].online for d in devices), 5, "all online again")
            await run.wait_for(lambda: any(r.metric == "battery" and r.value == 55.0
                                           for b in run.batches[sent_while_stale:] for r in b.readings),
                               5, "the changed vehicle sent")
            assert run.source.feed_online and run.source.feed_error == ""


async def test_a_feed_already_old_at_the_first_poll_sends_nothing(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0", at_ms=now_ms() - 600_000)
        context = source_tools.context("feed")
        async with source_tools.run(Source(gbfs_config(feeds.url("/v3_0/gbfs.json")), context)) as run:
            await run.wait_for(lambda: run.source.polls >= 3, 5, "three polls")
            assert run.batches == []
            assert re.fullmatch(r"stale feed: last_updated \S+ is (59\d|60\d) s old", run.source.feed_error)
            assert context.errors[("_source", "stale")] >= 3


@pytest.mark.parametrize("breakage, code, message", [
    (("status", 500), "http_status", "HTTP 500, expected 200"),
    (("raw", b"<html>Service Unavailable</html>"), "bad_json", "not JSON (Content-Type text/html"),
    (("json", {"last_updated": 1795996800, "ttl": 30, "version": "3.0", "data": {"bikes": []}}), "bad_feed",
     "data.vehicles missing or not a list"),
    (("json", {"ttl": 30, "data": {"vehicles": []}}), "bad_feed", "missing last_updated"),
    (("json", {"last_updated": "yesterday", "ttl": 30, "data": {"vehicles": []}}), "bad_feed",
     "'yesterday' is not an RFC 3339 time"),
])
async def test_broken_vehicle_feed_is_flagged_counted_and_retried(gbfs_config, source_tools, breakage, code, message):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0", live=True)
        context = source_tools.context("feed")
        async with source_tools.run(Source(gbfs_config(feeds.url("/v3_0/gbfs.json")), context)) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            devices = {b.device for b in run.batches}
            kind, payload = breakage
            if kind == "status":
                feeds.fail(VEHICLES, payload)
            elif kind == "raw":
                feeds.raw(VEHICLES, payload)
            else:
                feeds.routes[VEHICLES] = ("json", payload)
            await run.wait_for(lambda: context.errors[("_source", code)] >= 2, 5, f"two {code} errors (retried)")
            error = context.devices[next(iter(devices))].error
            assert message in error and feeds.url(VEHICLES) in error, error
            assert not any(context.devices[d].online for d in devices)
            feeds.serve_file(VEHICLES, "v3_0", "vehicle_status.json", live=True)
            await run.wait_for(lambda: all(context.devices[d].online for d in devices), 5, "back online")


async def test_a_partly_bad_feed_keeps_its_good_vehicles(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0", live=True)
        context = source_tools.context("feed")
        async with source_tools.run(Source(gbfs_config(feeds.url("/v3_0/gbfs.json")), context)) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            slots = run.source.slots
            reserved, disabled = slots.device_of("hr-19b2d4f0"), slots.device_of("hr-5e03aa71")
            first_round = len(run.batches)
            feeds.serve_file(VEHICLES, "v3_0", "vehicle_status_partly_bad.json", live=True)
            await run.wait_for(lambda: not context.devices[reserved].online, 5, "the unreadable vehicle offline")
            await run.wait_for(lambda: len({b.device for b in run.batches[first_round:]}) >= 2, 5,
                               "the two good vehicles that moved")
            assert context.errors[("_source", "bad_vehicle")] % 3 == 0 and context.errors[("_source", "bad_vehicle")]
            assert context.devices[reserved].error == "unreadable record for hr-19b2d4f0: is_disabled must be true " \
                                                      "or false, got None"
            assert "lat 123.4 is outside -90..90" in context.devices[disabled].error
            good = {slots.device_of(v) for v in ("hr-7c1e0a55", "hr-c84f6e12", "hr-0d77b3c9", "hr-a9f1402e")}
            assert all(context.devices[d].online for d in good)
            assert {b.device for b in run.batches[first_round:]} == {slots.device_of("hr-7c1e0a55"),
                                                                     slots.device_of("hr-0d77b3c9")}
            assert len(context.devices) == 6, "the record without an id opened no slot"
            assert slots.device_of("hr-19b2d4f0") == reserved, "an unreadable record keeps its vehicle's slot"


@pytest.mark.parametrize("breakage, code, message", [
    (("status", 404), "not_found", "HTTP 404"),
    (("raw", b"Moved to our new API portal"), "bad_json", "not JSON"),
    (("json", {"last_updated": "2026-11-30T09:00:00+09:00", "ttl": 0, "version": "3.0",
               "data": {"feeds": [{"name": "system_information", "url": "http://x/si.json"}]}}),
     "discovery", "lists no vehicle_status"),
    (("json", {"last_updated": 1795996800, "ttl": 0, "version": "2.3", "data": {"de": {"feeds": []}}}),
     "discovery", "lists no free_bike_status"),
])
async def test_discovery_errors_name_the_url_and_are_retried_with_back_off(gbfs_config, source_tools,
                                                                          breakage, code, message):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0", live=True)
        kind, payload = breakage
        if kind == "status":
            feeds.fail("/v3_0/gbfs.json", payload)
        elif kind == "raw":
            feeds.raw("/v3_0/gbfs.json", payload, "text/plain")
        else:
            feeds.routes["/v3_0/gbfs.json"] = ("json", payload)
        context = source_tools.context("feed")
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"), backoff={"initial_s": 0.1, "max_s": 0.2})
        async with source_tools.run(Source(config, context)) as run:
            await run.wait_for(lambda: feeds.hits["/v3_0/gbfs.json"] >= 3, 5, "discovery retried")
            assert context.errors[("_source", code)] >= 3
            assert message in run.source.feed_error and feeds.url("/v3_0/gbfs.json") in run.source.feed_error
            assert run.batches == []
            feeds.serve_file("/v3_0/gbfs.json", "v3_0", "gbfs.json")
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "vehicles once discovery works")


async def test_a_language_the_feed_lacks_is_named(gbfs_config, source_tools):
    async with FeedServer() as feeds:
        feeds.serve_version("v2_3")
        config = gbfs_config(feeds.url("/v2_3/gbfs.json"), language="fr")
        async with source_tools.run(Source(config, source_tools.context("feed"))) as run:
            await run.wait_for(lambda: "language" in run.source.feed_error, 5, "the language error")
    assert "language 'fr' not offered (the feed has ['ja', 'en'])" in run.source.feed_error
