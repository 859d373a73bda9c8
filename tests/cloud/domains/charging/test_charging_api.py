"""The charging domain through the real app against a real InfluxDB 1.6: session records, the monthly
settlement per employee tag (JSON and CSV, months cut in Tokyo), each connector's newest state, the
refusals and the scope. Points are the ingest's own line protocol (cloud.lineproto) of the envelopes
the OCPP source sends."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud.api import create_app
from cloud.config import CloudConfig, CloudConfigError
from cloud.domains import check_domain_configs
from cloud.lineproto import encode_envelope
from hinode import services
from hinode.contract import SESSION_DEVICE_SUFFIX, Reading, TelemetryEnvelope
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app, write_lines

pytestmark = pytest.mark.timeout(60)

TOKEN = "charging-test-token"
SITE = "plant-a"
MIN = 60_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000).astimezone().isoformat()


class Envelopes:
    def __init__(self):
        self.seq: dict[str, int] = {}

    def lines(self, device: str, kind: str, ts: int, meta: dict, site: str = SITE, **values) -> list[str]:
        self.seq[device] = self.seq.get(device, 0) + 1
        envelope = TelemetryEnvelope(site=site, agent="edge-1", device=device, kind=kind, profile="ocpp",
                                     seq=self.seq[device], meta=meta,
                                     readings=[Reading(ts=ts, metric=k, value=v) for k, v in values.items()])
        return encode_envelope(envelope, meta=envelope.meta).lines      # meta: what the ingest keeps as tags

    def session(self, charger: str, evse: str, tag: str, session_id: str, start: str, stop: str, energy: float,
                pv: float, site: str = SITE) -> list[str]:
        start_ms, stop_ms = ms(start), ms(stop)
        return self.lines(charger + SESSION_DEVICE_SUFFIX, "charging_session", stop_ms,
                          {"station": charger, "evse": evse, "id_tag": tag}, site=site,
                          session_id=session_id, start_ts=start_ms, stop_ts=stop_ms,
                          duration=(stop_ms - start_ms) / 1000, energy=energy, peak_power=7400.0, pv_energy=pv,
                          pv_share=pv / energy, stop_reason="EVDisconnected")

    def connector(self, charger: str, evse: str, ts: int, **values) -> list[str]:
        return self.lines(charger, "charger", ts, {"station": charger, "evse": evse}, **values)


def data_lines(now_ms: int) -> list[str]:
    e = Envelopes()
    return [
        # November 2026 (JST). Tag 04A1: 10 kWh (4 PV) at 00:30 JST on the 1st (= 31 October in UTC), and
        # 6 kWh (6 PV); tag 04B2: 20 kWh (5 PV). October: 04A1 8 kWh (2 PV) at 23:30 JST on the 31st.
        *e.session("cp-1", "1", "04A1", "101", "2026-10-31T22:00:00+09:00", "2026-11-01T00:30:00+09:00", 10.0, 4.0),
        *e.session("cp-1", "1", "04A1", "102", "2026-11-12T08:40:00+09:00", "2026-11-12T16:10:00+09:00", 6.0, 6.0),
        *e.session("cp-2", "2", "04B2", "7", "2026-11-20T09:00:00+09:00", "2026-11-20T17:00:00+09:00", 20.0, 5.0),
        *e.session("cp-1", "1", "04A1", "99", "2026-10-31T20:00:00+09:00", "2026-10-31T23:30:00+09:00", 8.0, 2.0),
        *e.session("cp-9", "1", "04A1", "5", "2026-11-12T09:00:00+09:00", "2026-11-12T10:00:00+09:00", 50.0, 0.0,
                   site="plant-z"),
        # plant-b: a session that ended a second ago, for the defaults (the current month, the last 30 days)
        *e.session("cp-5", "1", "04C3", "1", iso(now_ms - 3_600_000), iso(now_ms - 1000), 7.0, 7.0, site="plant-b"),
        # cp-1/1 charged (session 2.5 kWh) and has just finished: its newest batch carries no session_energy.
        *e.connector("cp-1", "1", now_ms - 10 * MIN, status="Charging", power_total=7400.0, session_energy=2.5,
                     mode="pv", target_current=10.0, target_phases=3, decision="pv surplus 7.4 kW: 10 A"),
        *e.connector("cp-1", "1", now_ms - 2 * MIN, status="Finishing", power_total=0.0, mode="pv",
                     target_current=0.0, target_phases=3, decision="session ended"),
        # cp-2/2 is charging now; its last decision was made a while ago and is still the newest.
        *e.connector("cp-2", "2", now_ms - 30 * MIN, status="Charging", power_total=3.0, session_energy=0.4,
                     mode="minpv", target_current=6.0, target_phases=1, decision="minpv: 6 A on 1 phase"),
        *e.connector("cp-2", "2", now_ms - MIN, status="Charging", power_total=4100.0, session_energy=1.9),
        *e.connector("cp-2", "0", now_ms - 3 * 86_400_000, status="Available"),
        # cp-2/1 had a ground fault that has cleared; cp-4/1 has one now.
        *e.connector("cp-2", "1", now_ms - 20 * MIN, status="Faulted", error_code="GroundFailure"),
        *e.connector("cp-2", "1", now_ms - 5 * MIN, status="Available"),
        *e.connector("cp-4", "1", now_ms - 5 * MIN, status="Faulted", error_code="GroundFailure"),
        *e.connector("cp-3", "1", now_ms - 9 * 86_400_000, status="Faulted", error_code="GroundFailure"),   # too old
        # cp-6/1 sends its state when it changes, and meter values in between (newer than the status).
        *e.connector("cp-6", "1", now_ms - 20 * MIN, status="Charging", mode="pv", target_current=16.0),
        *e.connector("cp-6", "1", now_ms - 10 * MIN, power_total=11000.0, session_energy=0.8),
        *e.connector("cp-6", "1", now_ms - MIN, power_total=11040.0, session_energy=2.4),
    ]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    influx = services.influxdb(tmp_path_factory.mktemp("charging") / "influxdb")
    influx.start()
    try:
        write_lines(influx.url, data_lines(int(time.time() * 1000)))
        config = CloudConfig.model_validate({
            "influx": {"url": influx.url},
            "api": {"auth": {"tokens": [{"name": "t", "role": "viewer", "hash": api_secrets.hash_token(TOKEN)}]}},
            "domains": {"charging": {"max_sessions": 3}},
        })
        with serve_app(create_app(config)) as url, \
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            yield http
    finally:
        influx.stop()


def test_session_records_of_a_range_in_stop_order(client):
    response = client.get("/api/charging/sessions", params={
        "site": SITE, "from": "2026-11-01T00:00:00+09:00", "to": "2026-12-01T00:00:00+09:00"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(s["charger"], s["evse"], s["id_tag"], s["session_id"]) for s in body["sessions"]] == \
        [("cp-1", "1", "04A1", "101"), ("cp-1", "1", "04A1", "102"), ("cp-2", "2", "04B2", "7")]
    first = body["sessions"][0]
    assert first == {"charger": "cp-1", "evse": "1", "id_tag": "04A1", "session_id": "101",
                     "start": ms("2026-10-31T22:00:00+09:00"), "stop": ms("2026-11-01T00:30:00+09:00"),
                     "duration_s": 9000.0, "energy_kwh": 10.0, "peak_w": 7400.0, "pv_kwh": 4.0, "pv_share": 0.4,
                     "stop_reason": "EVDisconnected"}
    assert (body["count"], body["energy_kwh"]) == (3, 36.0)


def test_sessions_of_one_tag(client):
    body = client.get("/api/charging/sessions", params={
        "site": SITE, "from": "2026-10-01T00:00:00+09:00", "to": "2026-11-15T00:00:00+09:00", "id_tag": "04A1"}).json()
    assert [s["session_id"] for s in body["sessions"]] == ["99", "101", "102"]


def test_the_monthly_summary_per_tag_cut_in_tokyo(client):
    response = client.get("/api/charging/sessions/summary", params={"site": SITE, "month": "2026-11"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"], body["timezone"]) == \
        (ms("2026-11-01T00:00:00+09:00"), ms("2026-12-01T00:00:00+09:00"), "Asia/Tokyo")
    assert body["tags"] == [
        {"id_tag": "04A1", "sessions": 2, "energy_kwh": 16.0, "pv_kwh": 10.0, "grid_kwh": 6.0, "pv_share": 0.625},
        {"id_tag": "04B2", "sessions": 1, "energy_kwh": 20.0, "pv_kwh": 5.0, "grid_kwh": 15.0, "pv_share": 0.25},
    ]
    assert body["total"] == {"sessions": 3, "energy_kwh": 36.0, "pv_kwh": 15.0, "grid_kwh": 21.0, "pv_share": 0.417}
    october = client.get("/api/charging/sessions/summary", params={"site": SITE, "month": "2026-10"}).json()
    assert october["tags"] == [{"id_tag": "04A1", "sessions": 1, "energy_kwh": 8.0, "pv_kwh": 2.0,
                                "grid_kwh": 6.0, "pv_share": 0.25}]


def test_without_a_range_or_month_the_last_30_days_and_the_current_month_in_tokyo(client):
    sessions = client.get("/api/charging/sessions", params={"site": "plant-b"}).json()
    assert [(s["id_tag"], s["energy_kwh"]) for s in sessions["sessions"]] == [("04C3", 7.0)]
    assert sessions["to"] - sessions["from"] == 30 * 86_400_000
    summary = client.get("/api/charging/sessions/summary", params={"site": "plant-b"}).json()
    assert summary["month"] == datetime.now(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m")
    assert [(t["id_tag"], t["sessions"], t["pv_share"]) for t in summary["tags"]] == [("04C3", 1, 1.0)]


def test_the_settlement_csv(client):
    response = client.get("/api/charging/sessions/summary", params={"site": SITE, "month": "2026-11", "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="charging-plant-a-2026-11.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["id_tag"], r["sessions"], r["energy_kwh"], r["pv_kwh"], r["grid_kwh"], r["pv_share"]) for r in rows] == [
        ("04A1", "2", "16.000", "10.000", "6.000", "0.625"), ("04B2", "1", "20.000", "5.000", "15.000", "0.250"),
        ("TOTAL", "3", "36.000", "15.000", "21.000", "0.417")]
    assert {(r["month"], r["site"]) for r in rows} == {("2026-11", SITE)}


def test_each_connectors_newest_state(client):
    response = client.get("/api/charging/chargers", params={"site": SITE})
    assert response.status_code == 200, response.text
    connectors = {(c["charger"], c["evse"]): c for c in response.json()["connectors"]}
    assert set(connectors) == {("cp-1", "1"), ("cp-2", "0"), ("cp-2", "1"), ("cp-2", "2"), ("cp-4", "1"),
                               ("cp-6", "1")}
    # cp-3 has been silent for 9 days: left out
    finished, charging = connectors[("cp-1", "1")], connectors[("cp-2", "2")]
    assert {k: finished[k] for k in ("status", "power_w", "mode", "target_current_a", "decision",
                                     "session_energy_kwh")} == \
        {"status": "Finishing", "power_w": 0.0, "mode": "pv", "target_current_a": 0.0,
         "decision": "session ended", "session_energy_kwh": None}       # 2.5 belonged to the ended session
    assert {k: charging[k] for k in ("status", "power_w", "mode", "target_current_a", "target_phases", "decision",
                                     "session_energy_kwh")} == \
        {"status": "Charging", "power_w": 4100.0, "mode": "minpv", "target_current_a": 6.0, "target_phases": 1.0,
         "decision": "minpv: 6 A on 1 phase", "session_energy_kwh": 1.9}
    assert charging["updated"] == charging["status_ts"] and connectors[("cp-2", "0")]["status"] == "Available"
    # Seen in hinode up: meter values newer than the last status change are the running session's.
    between = connectors[("cp-6", "1")]
    assert (between["status"], between["power_w"], between["session_energy_kwh"]) == ("Charging", 11040.0, 2.4)
    cleared, faulted = connectors[("cp-2", "1")], connectors[("cp-4", "1")]
    assert (cleared["status"], cleared["error_code"]) == ("Available", None)
    assert (faulted["status"], faulted["error_code"]) == ("Faulted", "GroundFailure")


@pytest.mark.parametrize("path, params, text", [
    ("/sessions", {"site": "plant-a' OR '1'='1"}, "site: "),
    ("/sessions", {"site": SITE, "from": "-400d"}, "at most 93 days"),
    ("/sessions", {"site": SITE, "from": "yesterday"}, "from: 'yesterday' is not a time"),
    ("/sessions", {"site": SITE, "from": "2026-10-01T00:00:00+09:00", "to": "2026-12-01T00:00:00+09:00"},
     "more than 3 sessions"),
    ("/sessions", {"site": SITE, "id_tag": "a\nb"}, "id_tag: "),
    ("/sessions/summary", {"site": SITE, "month": "2026-13"}, "month: '2026-13' is not a month (expected YYYY-MM"),
    ("/sessions/summary", {"site": SITE, "format": "xlsx"}, "format: 'xlsx' is not one of json, csv"),
])
def test_refusals_name_the_parameter(client, path, params, text):
    response = client.get(f"/api/charging{path}", params=params)
    assert response.status_code == 422 and text in response.json()["detail"], response.text


def test_the_routes_need_the_charging_scope(client):
    for path in ("/sessions", "/sessions/summary", "/chargers"):
        response = httpx.get(f"{client.base_url}/api/charging{path}", params={"site": SITE})
        assert response.status_code == 401, path


def test_config_errors_name_the_key_and_what_was_expected():
    config = CloudConfig.model_validate({"domains": {"charging": {"max_range_days": 0, "colour": "red"}}})
    with pytest.raises(CloudConfigError) as caught:
        check_domain_configs(config, "cloud.yaml")
    lines = str(caught.value).splitlines()
    assert "cloud.yaml: domains.charging.max_range_days: Input should be greater than or equal to 1 (got 0)" in lines
    assert "cloud.yaml: domains.charging.colour: Extra inputs are not permitted (got 'red')" in lines
