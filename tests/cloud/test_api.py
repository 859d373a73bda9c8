"""The HTTP API against a real InfluxDB 1.6 and a real Mosquitto, with data written as the
ingest writes it (line protocol, schema in cloud/lineproto.py) and retained agent statuses."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest

from cloud.api import create_app
from cloud.config import CloudConfig
from cloud.status import StatusTracker
from hinode import contract, services
from cloud.ingest.records import catalog_lines
from tests.cloud.test_api_kit import get_json as get, publish_retained, serve_app, wait_for, write_lines

pytestmark = pytest.mark.timeout(60)


class Clock:
    """Set when the module's data is written (not at import: other test files may run first)."""
    now = 0
    base = 0   # ten whole minutes before now: the series buckets start on a minute boundary


CLOCK = Clock()


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plant_lines() -> list[str]:
    now, base = CLOCK.now, CLOCK.base
    m1 = "meter,site=plant-a,agent=edge-1,device=m1,profile=hinode-sim-meter"
    lines = [
        # bucket base..+1m: 230, 232, 234 (mean 232); bucket +1m..+2m: 240, 250 (mean 245)
        f"{m1} voltage_l1=230.0,running=true,seq=1i {base}",
        f"{m1} voltage_l1=232.0,running=true,seq=2i {base + 20_000}",
        f"{m1} voltage_l1=234.0,running=true,seq=3i {base + 40_000}",
        f"{m1} voltage_l1=240.0,running=true,seq=4i {base + 60_000}",
        f"{m1} voltage_l1=250.0,running=false,seq=5i {base + 80_000}",
        # seq 6 never arrived
        f"{m1} voltage_l1=228.5,power_total=41000.0,running=true,seq=7i {now - 2000}",
        f'{m1} voltage_l1=229.25,power_total=41250.0,running=true,mode="auto",seq=8i {now - 1000}',
        # m2: the newest point flags current_l1 bad (its value is not written, the old one stays)
        f"meter,site=plant-a,agent=edge-1,device=m2,profile=hinode-sim-meter voltage_l1=230.0,current_l1=5.0,seq=41i {now - 3000}",
        f'meter,site=plant-a,agent=edge-1,device=m2,profile=hinode-sim-meter voltage_l1=231.0,seq=42i,bad_metrics="current_l1" {now - 1500}',
        # m-stale: the agent says online, but its last data is two minutes old
        f"meter,site=plant-a,agent=edge-1,device=m-stale,profile=hinode-sim-meter voltage_l1=229.0,seq=3i {now - 120_000}",
        # c1: a single envelope
        f'charger,site=plant-a,agent=edge-1,device=c1 power=7.4,connector="charging",seq=1i {now - 1000}',
        # the agent's own health
        f"agent,site=plant-a,agent=edge-1,device=edge-1 readings_per_s=12.5,queue_depth=0.0,seq=99i {now - 1000}",
        # plant-b: fresh data, but its agent's will said offline; a position is lat and lon in one point
        f"vehicle,site=plant-b,agent=edge-2,device=v1 speed=4.5,lat=36.5993,lon=140.6512,seq=9i {now - 2000}",
        f"vehicle,site=plant-b,agent=edge-2,device=v1 speed=4.5,seq=10i {now - 1000}",
        # personal data misrouted into the general database: never shown by the general endpoints
        f"vitals,site=plant-a,agent=edge-1,device=bp-1 systolic=128.0,seq=1i {now - 1000}",
    ]
    # What the ingest stores from the agent's catalog: units of a site-local profile the cloud has no file for.
    catalog = contract.AgentCatalog(site="plant-a", agent="edge-1", ts=now - 5000, devices=[contract.DeviceCatalog(
        device="m1", kind="meter", profile="hinode-sim-meter", metrics=[
            contract.MetricInfo(metric="voltage_l1", unit="V"), contract.MetricInfo(metric="power_factor"),
            contract.MetricInfo(metric="energy_import", unit="kWh", counter=True, rollover=42949672.96)])])
    return lines + catalog_lines(catalog, catalog.devices)


def statuses() -> list[contract.AgentStatus]:
    now = CLOCK.now
    devices = [contract.DeviceState(device=d, kind="meter", online=True) for d in ("m1", "m2", "m-stale")]
    devices.append(contract.DeviceState(device="m3", kind="meter", online=False, error="Modbus timeout"))
    devices.append(contract.DeviceState(device="c1", kind="charger", online=True))
    return [
        contract.AgentStatus(site="plant-a", agent="edge-1", state="online", ts=now, version="1.2.0", devices=devices),
        contract.AgentStatus(site="plant-b", agent="edge-2", state="offline", ts=now,
                             devices=[contract.DeviceState(device="v1", kind="vehicle", online=True)]),
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    influx = services.influxdb(root / "influxdb")
    broker = services.mosquitto(root / "mosquitto")
    influx.start()
    broker.start()
    CLOCK.now = int(time.time() * 1000)
    CLOCK.base = (CLOCK.now // 60_000) * 60_000 - 10 * 60_000
    write_lines(influx.url, plant_lines())
    publish_retained(broker.port, statuses())
    config = CloudConfig.model_validate({
        "mqtt": {"port": broker.port, "username": "api", "password": "mqtt-pw-do-not-leak"},
        "influx": {"url": influx.url, "username": "reader", "password": "influx-pw-do-not-leak"},
    })
    tracker = StatusTracker(config.mqtt)
    tracker.start()
    assert tracker.wait_connected(10)
    assert wait_for(lambda: len(tracker.snapshot()) == 2)
    app = create_app(config, status=tracker)
    with serve_app(app) as url, httpx.Client(base_url=url) as client:
        yield client, app
    tracker.stop()
    broker.stop()
    influx.stop()


def test_health_and_openapi_docs(stack):
    client, _ = stack
    assert get(client, "/healthz") == {"status": "ok"}
    assert get(client, "/readyz")["status"] == "ready"
    assert client.get("/docs").status_code == 200
    assert "/api/series" in get(client, "/openapi.json")["paths"]


def test_devices_show_online_only_when_status_and_data_agree(stack):
    client, _ = stack
    devices = {(d["site"], d["device"]): d for d in get(client, "/api/devices")["devices"]}

    m1 = devices[("plant-a", "m1")]
    assert (m1["kind"], m1["profile"], m1["agent"], m1["online"], m1["reason"]) == \
        ("meter", "hinode-sim-meter", "edge-1", True, "")
    assert m1["last_seen"] == CLOCK.now - 1000
    assert m1["completeness"] == {"expected": 8, "received": 7, "missing": 1, "ratio": 7 / 8}
    # Units come from the catalog the agent sent (stored by the ingest), not from files the cloud has.
    assert m1["units"] == {"energy_import": "kWh", "power_factor": "", "voltage_l1": "V"}
    assert m1["counters"] == ["energy_import"]
    assert "bp-1" not in {d for _, d in devices}

    stale = devices[("plant-a", "m-stale")]
    assert stale["online"] is False and stale["reason"].startswith("no data for 1")
    assert stale["age_s"] >= 120

    m3 = devices[("plant-a", "m3")]   # reported by the agent, never sent data
    assert (m3["online"], m3["last_seen"], m3["error"]) == (False, None, "Modbus timeout")
    assert "Modbus timeout" in m3["reason"]
    assert m3["completeness"] == {"expected": 0, "received": 0, "missing": 0, "ratio": None}

    c1 = devices[("plant-a", "c1")]
    assert c1["online"] is True and c1["completeness"]["ratio"] == 1.0

    v1 = devices[("plant-b", "v1")]
    assert (v1["online"], v1["reason"]) == (False, "agent edge-2 is offline")

    only_b = get(client, "/api/devices", site="plant-b")["devices"]
    assert [d["device"] for d in only_b] == ["v1"]


def test_latest_of_one_device_leaves_out_bookkeeping_fields(stack):
    client, _ = stack
    latest = get(client, "/api/devices/plant-a/m1/latest")
    assert latest["ts"] == CLOCK.now - 1000
    assert latest["values"] == {"mode": "auto", "power_total": 41250.0, "running": True, "voltage_l1": 229.25}

    m2 = get(client, "/api/devices/plant-a/m2/latest")
    assert m2["values"] == {"current_l1": 5.0, "voltage_l1": 231.0}
    assert m2["quality"] == {"current_l1": "bad"}

    missing = client.get("/api/devices/plant-a/nope/latest")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_latest_of_all_devices_in_one_call(stack):
    client, _ = stack
    everything = {(d["site"], d["device"]): d for d in get(client, "/api/latest")["devices"]}
    assert set(everything) == {("plant-a", "m1"), ("plant-a", "m2"), ("plant-a", "m-stale"), ("plant-a", "c1"),
                               ("plant-a", "edge-1"), ("plant-b", "v1")}
    assert everything[("plant-a", "c1")]["values"] == {"connector": "charging", "power": 7.4}
    assert everything[("plant-a", "edge-1")]["kind"] == "agent"
    assert [d["device"] for d in get(client, "/api/latest", site="plant-b")["devices"]] == ["v1"]


@pytest.mark.parametrize("agg, first, second", [
    ("mean", 232.0, 245.0), ("min", 230.0, 240.0), ("max", 234.0, 250.0), ("last", 234.0, 250.0), ("count", 3, 2),
])
def test_series_buckets_with_hand_checked_values(stack, agg, first, second):
    client, _ = stack
    body = get(client, "/api/series", site="plant-a", device="m1", metric="voltage_l1",
               start=rfc3339(CLOCK.base), end=rfc3339(CLOCK.base + 120_000), window="1m", agg=agg)
    assert body["points"] == [{"ts": CLOCK.base, "value": first}, {"ts": CLOCK.base + 60_000, "value": second}]


def test_series_with_relative_times(stack):
    client, _ = stack
    body = get(client, "/api/series", site="plant-a", device="m1", metric="voltage_l1",
               start="-15m", end="now", window="30m", agg="count")
    assert sum(p["value"] for p in body["points"]) == 7


@pytest.mark.parametrize("params, bad", [
    ({"metric": 'x" OR 1=1'}, "metric"),
    ({"metric": "voltage_l1\") FROM meter; DROP DATACLOCK.base hinode; --"}, "metric"),
    ({"site": "plant-a' OR '1'='1"}, "site"),
    ({"window": "10 seconds"}, "window"),
    ({"window": "0s"}, "window"),
    ({"agg": "median"}, "agg"),
    ({"agg": "mean(voltage_l1)"}, "agg"),
    ({"start": "yesterday"}, "start"),
    ({"start": "2024-13-01T00:00:00Z"}, "start"),
    ({"end": "-1h", "start": "-10m"}, "end"),
    ({"start": "-30d", "window": "1s"}, "window"),
])
def test_series_refuses_bad_input_with_422_and_never_queries(stack, params, bad):
    client, app = stack
    queries_before = app.state.reader.stats.queries_total
    query = {"site": "plant-a", "device": "m1", "metric": "voltage_l1", **params}
    response = client.get("/api/series", params=query)
    assert response.status_code == 422
    body = response.json()
    assert body["parameter"] == bad and body["detail"].startswith(f"{bad}: ")
    assert app.state.reader.stats.queries_total == queries_before
    assert f'hinode_api_invalid_parameters_total{{parameter="{bad}"}}' in client.get("/metrics").text
    # and the database is still there
    assert get(client, "/api/devices/plant-a/m1/latest")["values"]["voltage_l1"] == 229.25


def test_series_mean_of_a_bool_field_is_a_clear_422(stack):
    client, _ = stack
    response = client.get("/api/series", params={"site": "plant-a", "device": "m1", "metric": "running",
                                                 "agg": "mean", "start": "-1h"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("InfluxDB refused the query")
    counted = get(client, "/api/series", site="plant-a", device="m1", metric="running", agg="count",
                  start=rfc3339(CLOCK.base), end=rfc3339(CLOCK.base + 120_000), window="1m")
    assert counted["points"] == [{"ts": CLOCK.base, "value": 3}, {"ts": CLOCK.base + 60_000, "value": 2}]


def test_sites_rollup(stack):
    client, _ = stack
    sites = {s["site"]: s for s in get(client, "/api/sites")["sites"]}
    a = sites["plant-a"]
    assert (a["devices"], a["devices_online"], a["agents_online"]) == (5, 3, 1)
    assert [(x["agent"], x["state"], x["version"]) for x in a["agents"]] == [("edge-1", "online", "1.2.0")]
    assert a["readings_per_s"] == 12.5
    # m1 8/7, m2 2/2, m-stale 1/1, c1 1/1, edge-1 1/1, m3 0/0
    assert a["completeness"] == {"expected": 13, "received": 12, "missing": 1, "ratio": 12 / 13}
    b = sites["plant-b"]
    assert (b["devices"], b["devices_online"], b["agents_online"], b["readings_per_s"]) == (1, 0, 0, None)


def test_completeness_endpoint_follows_the_window(stack):
    client, _ = stack
    hour = get(client, "/api/completeness", window="1h")
    m1 = next(d for d in hour["devices"] if d["device"] == "m1")
    assert (hour["window_s"], m1["expected"], m1["received"], m1["missing"]) == (3600, 8, 7, 1)
    assert next(d for d in hour["devices"] if d["device"] == "m-stale")["expected"] == 1

    recent = get(client, "/api/completeness", window="1m")
    by_device = {d["device"]: d for d in recent["devices"]}
    assert (by_device["m1"]["expected"], by_device["m1"]["missing"]) == (2, 0)   # only seq 7 and 8
    assert by_device["m-stale"]["expected"] == 0 and by_device["m-stale"]["ratio"] is None
    assert {s["site"] for s in recent["sites"]} == {"plant-a", "plant-b"}

    bad = client.get("/api/completeness", params={"window": "1y"})
    assert bad.status_code == 422 and "window" in bad.json()["detail"]


def test_metrics_are_prometheus_text_without_secrets(stack):
    client, _ = stack
    client.get("/api/latest")
    text = client.get("/metrics").text
    assert 'hinode_api_requests_total{method="GET",route="/api/latest",status="200"}' in text
    assert "hinode_status_broker_connected 1.0" in text
    assert 'hinode_status_agents{state="offline"} 1.0' in text
    assert "hinode_api_influx_queries_total" in text
    everything = text + client.get("/readyz").text + client.get("/openapi.json").text
    assert "do-not-leak" not in everything


def test_positions_are_one_point_with_lat_and_lon(stack):
    client, _ = stack
    body = get(client, "/api/positions")
    assert body["positions"] == [{"site": "plant-b", "device": "v1", "ts": CLOCK.now - 2000,
                                  "lat": 36.5993, "lon": 140.6512}]
    assert get(client, "/api/positions", site="plant-a")["positions"] == []


def test_general_endpoints_never_return_personal_kinds(stack):
    client, _ = stack
    latest = get(client, "/api/latest")["devices"]
    assert "vitals" not in {d["kind"] for d in latest} and "bp-1" not in {d["device"] for d in latest}
    completeness = get(client, "/api/completeness")
    assert "bp-1" not in {d["device"] for d in completeness["devices"]}
    assert client.get("/api/devices/plant-a/bp-1/latest").status_code == 404


def test_latest_of_one_device_carries_the_units_of_its_catalog(stack):
    client, _ = stack
    body = get(client, "/api/devices/plant-a/m1/latest")
    assert body["units"]["voltage_l1"] == "V" and body["values"]["voltage_l1"] == 229.25


def test_api_docs_work_without_internet(stack):
    """/docs loaded Swagger UI from a CDN, so it was blank on a site network without internet."""
    client, _ = stack
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(page)
        assert html.status_code == 200 and f"/static-offline-docs/{asset}" in html.text
        assert "cdn." not in html.text and "https://" not in html.text.replace("https://fonts", "")
        script = client.get(f"/static-offline-docs/{asset}")
        assert script.status_code == 200 and len(script.content) > 100_000
    assert client.get("/static-offline-docs/swagger-ui.css").status_code == 200
