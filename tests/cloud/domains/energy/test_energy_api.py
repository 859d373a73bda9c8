"""The energy domain against a real InfluxDB 1.6: GET /api/energy/consumption (catalog flags,
roll-over, reset, scope) and the energy.slots job writing energy_slot points idempotently."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest

from cloud.api import create_app
from cloud.config import CloudConfig, InfluxConfig, SchedulerConfig
from cloud.domains.energy import DOMAIN
from cloud.domains.energy.config import EnergyConfig
from cloud.influx import AsyncInfluxClient
from cloud.scheduler import Scheduler
from hinode import services
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app, write_lines

pytestmark = pytest.mark.timeout(60)

MIN = 60_000
BASE = int(datetime.fromisoformat("2024-05-01T09:00:00+09:00").timestamp() * 1000)   # a slot start
ROLLOVER = 2**32 * 0.01
TOKEN = "energy-test-token"


def catalog_line(device: str, kind: str, metric: str, counter: bool, ts: int, rollover: float = 0.0) -> str:
    return (f"hinode_catalog,site=plant-a,agent=edge-1,device={device},kind={kind},profile=p,metric={metric} "
            f'unit="kWh",counter={str(counter).lower()},rollover={rollover},writable=false {ts}')


def meter(device: str, minute: int, value: float, metric: str = "energy_import", kind: str = "meter") -> str:
    return f"{kind},site=plant-a,agent=edge-1,device={device},profile=p {metric}={value} {BASE + minute * MIN}"


def data_lines() -> list[str]:
    day = 86_400_000
    lines = [
        catalog_line("m1", "meter", "energy_import", False, BASE - 2 * day),            # superseded
        catalog_line("m1", "meter", "energy_import", True, BASE - day, rollover=ROLLOVER),
        catalog_line("m1", "meter", "power_total", False, BASE - day),
        catalog_line("m2", "meter", "energy_import", True, BASE - day),
        catalog_line("v1", "vitals", "steps", True, BASE - day),                        # personal: never
    ]
    # m1 wraps between minute 10 and 20: 0.50 + 42 949 672.96 - 42 949 672.00 = 1.46
    for minute, value in [(-10, 42_949_670.0), (0, 42_949_671.0), (10, 42_949_672.0), (20, 0.5), (30, 1.5),
                          (40, 2.5), (50, 3.0), (60, 4.0), (90, 6.0)]:
        lines.append(meter("m1", minute, value))
    lines.append(meter("m1", 5, 1500.0, metric="power_total"))
    # m2 is reset between minute 10 and 20: 502 -> 1 counts 1, not -501
    for minute, value in [(0, 500.0), (10, 502.0), (20, 1.0), (30, 2.0)]:
        lines.append(meter("m2", minute, value))
    lines += [meter("v1", m, float(m), metric="steps", kind="vitals") for m in (0, 10, 20, 30)]
    return lines


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat()


@pytest.fixture(scope="module")
def energy_stack(tmp_path_factory):
    influx = services.influxdb(tmp_path_factory.mktemp("energy") / "influxdb")
    influx.start()
    write_lines(influx.url, data_lines())
    config = CloudConfig.model_validate({
        "influx": {"url": influx.url},
        "api": {"auth": {"tokens": [{"name": "t", "role": "viewer", "hash": api_secrets.hash_token(TOKEN)}]}},
    })
    with serve_app(create_app(config)) as url, \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client, influx
    influx.stop()


def consumption(client, **params):
    query = {"site": "plant-a", "device": "m1", "start": iso(BASE), "end": iso(BASE + 90 * MIN), **params}
    return client.get("/api/energy/consumption", params=query)


def test_slots_across_a_rollover_with_the_bracketing_readings(energy_stack):
    client, _ = energy_stack
    response = consumption(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["unit"], body["rollover"], body["slot_ms"], body["start"], body["end"]) == \
        ("kWh", pytest.approx(ROLLOVER), 30 * MIN, BASE, BASE + 90 * MIN)
    # 09:00 slot: 1.0 + 1.46 + 1.0; 09:30: 1.0 + 0.5 + 1.0; 10:00: the 2.0 of 10:00..10:30
    assert [(s["ts"], s["readings"]) for s in body["slots"]] == [(BASE, 3), (BASE + 30 * MIN, 3), (BASE + 60 * MIN, 1)]
    assert [s["consumption"] for s in body["slots"]] == pytest.approx([3.46, 2.5, 2.0], abs=1e-6)
    assert body["total"] == pytest.approx(7.96, abs=1e-6)
    assert [(e["ts"], e["event"]) for e in body["events"]] == [(BASE + 20 * MIN, "rollover")]


def test_a_reset_and_one_daily_slot_at_tokyo_midnight(energy_stack):
    client, _ = energy_stack
    body = consumption(client, device="m2", slot="1d").json()
    midnight = int(datetime.fromisoformat("2024-05-01T00:00:00+09:00").timestamp() * 1000)
    assert (body["start"], body["end"]) == (midnight, midnight + 86_400_000)
    assert [(s["ts"], s["consumption"], s["readings"]) for s in body["slots"]] == [(midnight, 4.0, 3)]
    assert [(e["event"], e["consumption"]) for e in body["events"]] == [("reset", 1.0)]


@pytest.mark.parametrize("params, status, text", [
    ({"metric": "power_total"}, 422, "'power_total' of device 'm1' is not a cumulative counter"),
    ({"metric": "water_total"}, 404, "no catalog entry for metric 'water_total'"),
    ({"device": "v1", "metric": "steps"}, 404, "no catalog entry"),
    ({"site": "plant-a' OR '1'='1"}, 422, "site: "),
    ({"slot": "7m"}, 422, "slot: '7m' must divide a day"),
    ({"start": "-90d", "end": "now"}, 422, "at most 31 days"),
])
def test_refusals_say_what_is_wrong(energy_stack, params, status, text):
    client, _ = energy_stack
    response = consumption(client, **params)
    assert response.status_code == status and text in response.json()["detail"], response.text


def test_the_route_needs_the_energy_scope(energy_stack):
    client, _ = energy_stack
    anonymous = httpx.get(f"{client.base_url}/api/energy/consumption", params={"site": "plant-a", "device": "m1"})
    assert anonymous.status_code == 401


def test_the_slots_job_writes_every_counter_of_non_personal_devices_idempotently(energy_stack):
    _, influx = energy_stack
    (job,) = DOMAIN.jobs

    async def scenario():
        client = AsyncInfluxClient(InfluxConfig(url=influx.url))
        scheduler = Scheduler(client, SchedulerConfig(), now_ms=lambda: BASE + 40 * MIN)
        scheduler.add(job, EnergyConfig())
        query = 'SELECT "consumption", "readings" FROM "energy_slot" GROUP BY "site", "device", "metric"'
        try:
            written = await scheduler.run_slot(job.name, BASE)
            (first,) = await client.query(query)
            await scheduler.run_slot(job.name, BASE)
            second, fields = await client.query(query, 'SHOW FIELD KEYS FROM "energy_slot"')
            return written, first, second, fields
        finally:
            await client.aclose()

    written, first, second, fields = asyncio.run(scenario())
    assert len(written) == 2
    rows = {(s.tags["device"], s.tags["metric"]): s.rows() for s in first}
    assert set(rows) == {("m1", "energy_import"), ("m2", "energy_import")}
    assert rows[("m1", "energy_import")] == [{"time": BASE, "consumption": pytest.approx(3.46, abs=1e-6), "readings": 3}]
    assert rows[("m2", "energy_import")] == [{"time": BASE, "consumption": 4.0, "readings": 3}]
    assert [(s.tags, s.values) for s in second] == [(s.tags, s.values) for s in first]
    assert dict(fields[0].values) == {"consumption": "float", "readings": "integer"}
    assert len(second) == 2
