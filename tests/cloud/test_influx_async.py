"""The async InfluxDB client (API and domains) and the per-call destination of writes, against a
real InfluxDB 1.6: same error classes and answers as the sync client."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from cloud.config import InfluxConfig
from cloud.influx import (AsyncInfluxClient, InfluxAuthError, InfluxClient, InfluxQueryError, InfluxRejected,
                          InfluxUnavailable)
from cloud.points import Point
from tests.cloud.test_api_kit import write_lines

pytestmark = pytest.mark.timeout(60)

TS = 1_700_000_000_000


def run(coro_fn, url, **config):
    async def scenario():
        client = AsyncInfluxClient(InfluxConfig(url=url, timeout_s=3, **config))
        try:
            return await coro_fn(client)
        finally:
            await client.aclose()
    return asyncio.run(scenario())


def test_ping_query_and_missing_database(influx):
    async def scenario(client):
        version = await client.ping()
        # nothing written yet: no database, which just means no data (one empty list per statement)
        empty = await client.query('SELECT * FROM "meter"', 'SELECT count(*) FROM "meter"')
        return version, empty, client.stats
    version, empty, stats = run(scenario, influx.url)
    assert version.startswith("1.6")
    assert empty == [[], []]
    assert stats.errors_total == 0 and stats.queries_total >= 1


def test_write_points_keeps_field_types_and_statements_answer_separately(influx):
    points = [Point("energy_slot", {"site": "s", "device": f"d{i}", "metric": "energy_import"},
                    {"consumption": 1.5 * i, "readings": i, "ok": True, "unit": "kWh"}, TS) for i in range(3)]

    async def scenario(client):
        await client.create_database("hinode")
        await client.write_points(points)
        return await client.query('SHOW FIELD KEYS FROM "energy_slot"',
                                  'SELECT "consumption", "readings" FROM "energy_slot" GROUP BY "device"')
    fields, by_device = run(scenario, influx.url)
    assert dict(fields[0].values) == {"consumption": "float", "ok": "boolean", "readings": "integer", "unit": "string"}
    assert [(s.tags, s.rows()) for s in by_device] == [
        ({"device": f"d{i}"}, [{"time": TS, "consumption": 1.5 * i, "readings": i}]) for i in range(3)]


def test_per_call_database_and_retention_policy_sync_and_async(influx):
    now = int(time.time() * 1000)  # within the 1-day retention policy
    influx.query('CREATE DATABASE "hinode"')
    influx.query('CREATE DATABASE "personal"')
    influx.query('CREATE RETENTION POLICY "short" ON "personal" DURATION 1d REPLICATION 1')
    with InfluxClient(InfluxConfig(url=influx.url)) as sync:
        sync.write_lines([f"vitals,site=s heart_rate=60.0 {now}"], database="personal", retention_policy="short")
        sync.write_lines([f"meter,site=s p=1.0 {now}"])

    async def scenario(client):
        await client.write_lines([f"vitals,site=s heart_rate=61.0 {now + 1}"], database="personal",
                                 retention_policy="short")
        return (await client.query('SELECT count("heart_rate") FROM "personal"."short"."vitals"',
                                   'SELECT count("heart_rate") FROM "vitals"', 'SELECT count("p") FROM "meter"'))
    personal, vitals_in_main, meter_in_main = run(scenario, influx.url)
    assert personal[0].values == [[0, 2]]
    assert vitals_in_main == [] and meter_in_main[0].values == [[0, 1]]


def test_errors_are_the_shared_classes_and_counted(influx):
    influx.query('CREATE DATABASE "hinode"')

    async def scenario(client):
        await client.write_lines([f"meter,site=s p=1.5 {TS}"])
        with pytest.raises(InfluxRejected, match="field type conflict"):
            await client.write_points([Point("meter", {"site": "s"}, {"p": 2}, TS + 1)])
        with pytest.raises(InfluxQueryError, match="error parsing query"):
            await client.query("SELEKT 1")
        # 1.6 answers a request with a failing statement only with "not executed": the client finds the real error
        with pytest.raises(InfluxQueryError, match="unsupported mean iterator"):
            await client.query('SELECT "p" FROM "meter"', 'SELECT mean("flag") FROM "bools"')
        return client.stats
    write_lines(influx.url, [f"bools,site=s flag=true {TS}"])
    stats = run(scenario, influx.url)
    assert (stats.errors_total, stats.write_errors_total) == (2, 1)
    assert stats.by_error == {"InfluxRejected": 1, "InfluxQueryError": 2}


def test_stopped_influx_is_unavailable(influx):
    async def scenario(client):
        await client.ping()
        influx.stop()
        with pytest.raises(InfluxUnavailable, match="InfluxDB unreachable"):
            await client.ping()
        with pytest.raises(InfluxUnavailable):
            await client.query('SELECT * FROM "meter"')
        with pytest.raises(InfluxUnavailable):
            await client.write_lines([f"meter p=1 {TS}"])
        return client.stats
    stats = run(scenario, influx.url)
    assert stats.unavailable_total == 1


@pytest.mark.parametrize("status, body, headers, error, text", [
    (200, {"results": [{"statement_id": 0, "error": "query engine shutdown"}]}, {}, InfluxUnavailable,
     "could not run the query: query engine shutdown"),
    (200, {"results": [{"statement_id": 0, "error": "max-concurrent-queries limit exceeded(10, 10)"}]}, {},
     InfluxUnavailable, "max-concurrent-queries"),
    (200, {"results": [{"statement_id": 0, "error": "unsupported mean iterator type"}]}, {}, InfluxQueryError,
     "query failed: unsupported mean iterator type"),
    (401, {"error": "authorization failed"}, {}, InfluxAuthError, r"refused the credentials \(401\)"),
    (429, {"error": "too many requests"}, {"Retry-After": "7"}, InfluxUnavailable, "answered 429"),
    (503, {"error": "busy"}, {}, InfluxUnavailable, "answered 503: busy"),
])
def test_answers_are_classified_alike_for_both_transports(status, body, headers, error, text):
    def handler(request):
        return httpx.Response(status, json=body, headers=headers)

    with InfluxClient(InfluxConfig(), transport=httpx.MockTransport(handler)) as sync:
        with pytest.raises(error, match=text) as sync_caught:
            sync.query('SELECT "p" FROM "meter"')

    async def scenario():
        client = AsyncInfluxClient(InfluxConfig(), transport=httpx.MockTransport(handler))
        try:
            with pytest.raises(error, match=text) as caught:
                await client.query('SELECT "p" FROM "meter"')
            return caught.value
        finally:
            await client.aclose()
    async_error = asyncio.run(scenario())
    assert type(async_error) is type(sync_caught.value) and str(async_error) == str(sync_caught.value)
    if status == 429:
        assert async_error.retry_after_s == 7.0


def test_the_configured_retention_policy_applies_only_to_the_configured_database():
    seen = []

    def handler(request):
        seen.append({k: v for k, v in request.url.params.items() if k in ("db", "rp")})
        return httpx.Response(204)

    with InfluxClient(InfluxConfig(retention_policy="keep"), transport=httpx.MockTransport(handler)) as sync:
        sync.write_lines(["m v=1 1"])
        sync.write_lines(["m v=1 1"], database="hinode_personal")
        sync.write_lines(["m v=1 1"], database="hinode_personal", retention_policy="personal")
    assert seen == [{"db": "hinode", "rp": "keep"}, {"db": "hinode_personal"},
                    {"db": "hinode_personal", "rp": "personal"}]
