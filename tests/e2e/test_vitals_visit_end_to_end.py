"""A visiting nurse's visit end to end, as real processes: six virtual BLE health devices
(``python -m simulators ble``, reached over HCI-over-TCP by the gateway's bumble stack, the code path
of a USB dongle), the gateway (``python -m edge_agent run`` with the ``ble`` source) and its page
driven in Debian's Chromium, Mosquitto, ``python -m cloud serve`` (ingest + API) and InfluxDB's
personal database. Then the doctor reads the visit through the consent-checking API, a family member
without consent gets 403, and the audit shows both. No BLE radio runs here: the virtual devices are
bumble GATT servers on a bumble link, the closest honest substitute."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract
from hinode.security import api_secrets
from hinode.services import free_port
from simulators.ble.kit import advertised_name
from tests.e2e.pipeline import Pipeline

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.timeout(240)

JST = timezone(timedelta(hours=9))
PATIENT, NAME, DISPLAY = "p-7f3a9c", "山田 花子", "山田さん"
PIN = "482913"
PEOPLE = {   # token name -> (token, scopes)
    "care-office": ("office-token-1", ["vitals:read", "vitals:write"]),
    "dr-sato": ("doctor-token-1", ["vitals:read"]),
    "son-yamada": ("family-token-1", ["vitals:read"]),
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def call(pipe: Pipeline, method: str, path: str, who: str, body=None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {PEOPLE[who][0]}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"http://127.0.0.1:{pipe.api_port}{path}", data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class WireTap:
    """Every payload the broker carries, to check that no name travels over MQTT."""

    def __init__(self, port: int):
        self.payloads: list[bytes] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, msg: self.payloads.append(msg.payload)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{contract.TOPIC_ROOT}/#")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def visit_platform(tmp_path):
    tokens = [{"name": name, "role": "viewer", "hash": api_secrets.hash_token(token), "scopes": scopes}
              for name, (token, scopes) in PEOPLE.items()]
    pipe = Pipeline(tmp_path, cloud_config={
        "api": {"auth": {"tokens": tokens}},
        "domains": {"vitals": {"registry_path": str(tmp_path / "personal" / "registry.sqlite")}}}).start()
    try:
        today = datetime.now(JST).date().isoformat()
        for method, path, body in [
                ("POST", "/api/vitals/patients", {"pseudonym": PATIENT, "name": NAME, "display_name": DISPLAY}),
                ("POST", f"/api/vitals/patients/{PATIENT}/members", {"username": "dr-sato", "care_role": "doctor"}),
                ("POST", f"/api/vitals/patients/{PATIENT}/members", {"username": "son-yamada", "care_role": "family"}),
                ("POST", f"/api/vitals/patients/{PATIENT}/consents", {"care_role": "doctor", "categories": "all"}),
                ("POST", "/api/vitals/visits", {"date": today, "time": "10:00", "kit": "kit-01",
                                                "pseudonym": PATIENT, "nurse": "nurse-ito"})]:
            status, answer = call(pipe, method, path, "care-office", body)
            assert status == 201, (path, status, answer)
        status, schedule = call(pipe, "GET", f"/api/vitals/kits/kit-01/schedule.yaml?date={today}", "care-office")
        assert status == 200 and DISPLAY in schedule
        (tmp_path / "visits.yaml").write_text(schedule)

        hci_port, control_port, page_port = free_port(), free_port(), free_port()
        pipe.simulator("ble", "--hci", f"tcp-server:127.0.0.1:{hci_port}", "--control-port", str(control_port),
                       "--kit", "kit-01")
        agent = pipe.agent([{
            "type": "ble", "name": "visit-kit", "kit": "kit-01", "stack": "bumble",
            "hci": f"tcp-client:127.0.0.1:{hci_port}", "timezone": "Asia/Tokyo",
            "devices": [{"id": "bp-cuff-1", "category": "blood_pressure", "name": advertised_name("kit-01", "bp-cuff-1")},
                        {"id": "oximeter-1", "category": "spo2", "name": advertised_name("kit-01", "oximeter-1")}],
            "page": {"listen": f"127.0.0.1:{page_port}", "language": "ja",
                     "schedule_file": str(tmp_path / "visits.yaml"),
                     "nurses": [{"id": "nurse-ito", "name": "伊藤", "pin_hash": api_secrets.hash_password(PIN)}]},
        }], agent="kit-01", site="visiting-nurses")
        yield pipe, agent, f"http://127.0.0.1:{page_port}", f"http://127.0.0.1:{control_port}"
    finally:
        pipe.stop()


def measure(control_url: str, device: str, values: dict) -> dict:
    request = urllib.request.Request(f"{control_url}/devices/{device}/measure", data=json.dumps({"values": values}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def personal_rows(pipe: Pipeline) -> list[dict]:
    result = pipe.influx.query(f"SELECT * FROM \"vitals\" WHERE \"subject\" = '{PATIENT}'",
                               db="hinode_personal")["results"][0]
    return [dict(zip(s["columns"], v)) for s in result.get("series", []) for v in s["values"]]


def run_visit_in_chromium(page_url: str, control_url: str, systolic: int) -> None:
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 420, "height": 900})
            page.goto(page_url + "/")
            page.select_option("#nurse-select", "nurse-ito")
            page.fill("#pin", PIN)
            page.click("#login-button")
            expect(page.locator("#devices [data-device=bp-cuff-1]")).to_contain_text("接続中", timeout=20_000)
            row = page.locator("#today tbody tr").nth(0)
            expect(row).to_contain_text(DISPLAY)
            row.locator("button.start").click()
            expect(page.locator("#active-patient")).to_contain_text(DISPLAY)

            assert measure(control_url, "bp-cuff-1", {"systolic": systolic, "diastolic": 88})["delivery"] == "sent"
            item = page.locator("#readings li, #readings [data-reading-id]").filter(has_text=f"{systolic}").first
            expect(item).to_be_visible(timeout=10_000)
            item.locator("button.confirm").click()
            expect(page.locator("#readings button.confirm")).to_have_count(0)
            page.click("#end-visit")
            expect(page.locator("#no-active")).to_be_visible()
        finally:
            browser.close()


def test_a_nurse_visit_reaches_the_doctor_and_not_the_family_without_consent(visit_platform):
    pipe, agent, page_url, control_url = visit_platform
    tap = WireTap(pipe.broker.port)
    try:
        run_visit_in_chromium(page_url, control_url, systolic=151)
        rows = pipe.wait(lambda: [r for r in personal_rows(pipe) if r.get("systolic") == 151],
                         "the confirmed reading in the personal database", timeout=30)
    finally:
        tap.close()
    assert rows[0]["visit_id"].startswith("v-kit-01-") and rows[0]["time_source"] == "device"
    assert pipe.query('SELECT count("seq") FROM "vitals"') == []           # never in the general database

    status, answer = call(pipe, "GET", f"/api/vitals/patients/{PATIENT}/readings?category=blood_pressure", "dr-sato")
    assert status == 200, answer
    assert 151 in {r.get("systolic") for r in answer["rows"]}

    status, answer = call(pipe, "GET", f"/api/vitals/patients/{PATIENT}/readings?category=blood_pressure", "son-yamada")
    assert status == 403 and "151" not in answer and "no consent" in answer

    status, audit = call(pipe, "GET", f"/api/vitals/patients/{PATIENT}/audit", "care-office")
    assert status == 200
    seen = {(r["who"], r["action"], r["outcome"]) for r in audit["entries"]}
    assert ("dr-sato", "read_readings", "allowed") in seen and ("son-yamada", "read_readings", "denied") in seen

    wire = b"".join(tap.payloads)
    assert PATIENT.encode() in wire                            # the pseudonym travels ...
    for name in (NAME, DISPLAY, "伊藤"):
        assert name.encode() not in wire                      # ... a name never does


def test_an_offline_visit_is_delivered_when_the_gateway_reconnects(visit_platform):
    pipe, agent, page_url, control_url = visit_platform
    pipe.wait(lambda: agent.metrics().get("hinode_agent_devices_online") == 2, "both kit devices connected", 30)
    pipe.broker.stop()                                         # a house without internet
    run_visit_in_chromium(page_url, control_url, systolic=163)
    pipe.wait(lambda: agent.outbox_depth() >= 1, "the confirmed reading waiting in the outbox", 20)
    assert not [r for r in personal_rows(pipe) if r.get("systolic") == 163]
    pipe.broker.start()
    pipe.wait(lambda: [r for r in personal_rows(pipe) if r.get("systolic") == 163],
              "the offline visit's reading in the personal database after reconnecting", timeout=60)
