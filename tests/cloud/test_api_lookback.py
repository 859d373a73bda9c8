"""The general endpoints look back LOOKBACK only (the board polls them every second): what the user
sees of a device whose newest data is older than that, against a real InfluxDB 1.6 and Mosquitto."""

from __future__ import annotations

import time

import httpx
import pytest

from cloud.api import create_app
from cloud.api import devices as svc
from cloud.config import CloudConfig
from cloud.ingest.records import catalog_lines
from cloud.status import StatusTracker
from hinode import contract, services
from tests.cloud.test_api_kit import get_json as get, publish_retained, serve_app, wait_for, write_lines

pytestmark = pytest.mark.timeout(60)

DAY_MS = 24 * 3600 * 1000
BOUND = f"time > now() - {svc.LOOKBACK}"


@pytest.mark.parametrize("site, device", [(None, None), ("plant-a", None), ("plant-a", "m1")])
def test_every_general_statement_is_bounded_in_time(site, device):
    statements = [*svc.latest_statements(site, device), svc.catalog_statement(site, device)]
    if device is None:
        statements += [svc.index_statement(site), svc.positions_statement(site), svc.agent_rates_statement(site)]
    assert svc.LOOKBACK == "30d"
    for statement in statements:
        assert f" WHERE {BOUND}" in statement, statement
        if site:
            assert "\"site\" = 'plant-a'" in statement, statement


def test_without_a_status_tracker_a_catalog_device_without_recent_data_is_listed_offline():
    catalog = {("plant-a", "m9"): {"voltage_l1": {"unit": "V", "counter": False, "kind": "meter", "agent": "edge-1",
                                                  "profile": "p", "ts": 1}},
               ("plant-a", "bp-1"): {"systolic": {"unit": "mm[Hg]", "counter": False, "kind": "vitals",
                                                  "agent": "edge-1", "profile": "bp", "ts": 1}}}
    (m9,) = svc.list_devices({}, None, None, now_ms=10_000, offline_after_s=30, catalog=catalog)
    assert (m9["device"], m9["kind"], m9["agent"], m9["profile"]) == ("m9", "meter", "edge-1", "p")
    assert (m9["online"], m9["reason"], m9["last_seen"], m9["units"]) == \
        (False, "no data in the last 30 d", None, {"voltage_l1": "V"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("lookback")
    influx, broker = services.influxdb(root / "influxdb"), services.mosquitto(root / "mosquitto")
    influx.start()
    broker.start()
    now = int(time.time() * 1000)
    old = now - 40 * DAY_MS
    meter = "meter,site=plant-a,agent=edge-1,profile=sim"
    lines = [
        f"{meter},device=m-new voltage_l1=231.0,seq=5i {now - 1000}",
        # the agent lists m-old online, but its newest data is 40 days old
        f"{meter},device=m-old voltage_l1=230.0,seq=1i {old}",
        # named by the agent's fresh catalog only (not in its status)
        f"{meter},device=m-cat voltage_l1=229.0,seq=1i {old}",
        # named by nobody any more (and by a catalog as old as its data): gone
        f"{meter},device=m-gone voltage_l1=228.0,seq=1i {old}",
        "vehicle,site=plant-a,agent=edge-1,device=v-old lat=36.5,lon=140.6,seq=1i " + str(old),
        "vehicle,site=plant-a,agent=edge-1,device=v-new lat=36.6,lon=140.7,seq=1i " + str(now - 1000),
    ]
    fresh = contract.AgentCatalog(site="plant-a", agent="edge-1", ts=now - 5000, devices=[
        contract.DeviceCatalog(device=device, kind="meter", profile="sim",
                               metrics=[contract.MetricInfo(metric="voltage_l1", unit="V")])
        for device in ("m-new", "m-cat")])
    stale = contract.AgentCatalog(site="plant-a", agent="edge-1", ts=old, devices=[contract.DeviceCatalog(
        device="m-gone", kind="meter", profile="sim", metrics=[contract.MetricInfo(metric="voltage_l1", unit="V")])])
    write_lines(influx.url, lines + catalog_lines(fresh, fresh.devices) + catalog_lines(stale, stale.devices))
    publish_retained(broker.port, [contract.AgentStatus(
        site="plant-a", agent="edge-1", state="online", ts=now,
        devices=[contract.DeviceState(device=d, kind=k, online=True)
                 for d, k in (("m-new", "meter"), ("m-old", "meter"), ("v-new", "vehicle"))])])
    config = CloudConfig.model_validate({"mqtt": {"port": broker.port}, "influx": {"url": influx.url}})
    tracker = StatusTracker(config.mqtt)
    tracker.start()
    assert tracker.wait_connected(10)
    assert wait_for(lambda: len(tracker.snapshot()) == 1)
    with serve_app(create_app(config, status=tracker)) as url, httpx.Client(base_url=url) as client:
        yield client
    tracker.stop()
    broker.stop()
    influx.stop()


def test_devices_silent_longer_than_the_lookback_are_offline_if_still_named_else_gone(stack):
    devices = {d["device"]: d for d in get(stack, "/api/devices")["devices"]}
    assert set(devices) == {"m-new", "m-old", "m-cat", "v-new"}
    assert devices["m-new"]["online"] is True

    old = devices["m-old"]
    assert (old["online"], old["reason"], old["last_seen"], old["age_s"]) == \
        (False, "no data in the last 30 d", None, None)
    cat = devices["m-cat"]
    assert (cat["online"], cat["reason"], cat["kind"], cat["agent"], cat["profile"], cat["units"]) == \
        (False, "agent edge-1 does not list this device", "meter", "edge-1", "sim", {"voltage_l1": "V"})

    (site,) = get(stack, "/api/sites")["sites"]
    assert (site["devices"], site["devices_online"]) == (4, 2)   # m-new, v-new online; m-old, m-cat offline


def test_latest_and_positions_leave_out_data_older_than_the_lookback(stack):
    assert {d["device"] for d in get(stack, "/api/latest")["devices"]} == {"m-new", "v-new"}
    assert get(stack, "/api/devices/plant-a/m-new/latest")["values"] == {"voltage_l1": 231.0}
    assert stack.get("/api/devices/plant-a/m-old/latest").status_code == 404
    assert [p["device"] for p in get(stack, "/api/positions")["positions"]] == ["v-new"]
