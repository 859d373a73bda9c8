"""The live board in a real (headless Debian) chromium, served by uvicorn, fed by a real
InfluxDB and Mosquitto: values appear, change as new points arrive, and offline shows."""

from __future__ import annotations

import math
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.api import create_app
from cloud.config import CloudConfig
from cloud.dead_letters import DeadLetterCollector, DeadLetterStore
from cloud.status import StatusTracker
from hinode import contract
from tests.cloud.test_api_kit import publish_retained, serve_app, wait_for, write_lines

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
METERS = ("press-01", "press-02", "oven-01")


class Plant:
    """Writes meter points the way the ingest stores them, one envelope (seq) per call."""

    def __init__(self, influx_url: str):
        self.url = influx_url
        self.seq: dict[str, int] = {}

    def write(self, lines: list[str]) -> None:
        write_lines(self.url, lines)

    def meter(self, device: str, step: int, ts: int | None = None, skip_seq: bool = False) -> float:
        seq = self.seq.get(device, 0) + (2 if skip_seq else 1)
        self.seq[device] = seq
        phase = step / 3 + METERS.index(device) if device in METERS else step
        power = 30_000 + 12_000 * math.sin(phase) + 500 * step
        fields = {
            "voltage_l1": 230 + 2 * math.sin(phase), "voltage_l2": 229.5 + 2 * math.cos(phase),
            "voltage_l3": 231 + math.sin(phase * 2), "current_l1": power / 3 / 230, "power_total": power,
            "power_factor": 0.93 + 0.03 * math.sin(phase), "frequency": 50 + 0.02 * math.sin(phase * 3),
            "energy_import": 12_345.6 + step * 0.8,
        }
        text = ",".join(f"{k}={v:.4f}" for k, v in fields.items())
        ts = int(time.time() * 1000) if ts is None else ts
        self.write([f"meter,site=hitachi-works,agent=edge-01,device={device},profile=hinode-sim-meter "
                    f"{text},seq={seq}i {ts}"])
        return float(f"{power:.4f}")

    def agent_health(self, rate: float) -> None:
        seq = self.seq["edge-01"] = self.seq.get("edge-01", 0) + 1
        self.write([f"agent,site=hitachi-works,agent=edge-01,device=edge-01 readings_per_s={rate},"
                    f"queue_depth=0.0,dropped_total=0.0,errors_total=1.0,seq={seq}i {int(time.time() * 1000)}"])


def publish_status(port: int, devices: list[contract.DeviceState]) -> None:
    publish_retained(port, [contract.AgentStatus(site="hitachi-works", agent="edge-01", state="online",
                                                 ts=int(time.time() * 1000), version="0.1.0", devices=devices)])


@pytest.fixture
def board(broker, influx, tmp_path):
    config = CloudConfig.model_validate({"mqtt": {"port": broker.port}, "influx": {"url": influx.url},
                                         "api": {"offline_after_s": 4}})
    tracker = StatusTracker(config.mqtt)
    tracker.start()
    assert tracker.wait_connected(10)
    dead_letters = DeadLetterCollector(config.mqtt, config.api.dead_letters,
                                       DeadLetterStore(tmp_path / "dead-letters.db", keep_per_reason=10))
    dead_letters.start()
    assert dead_letters.connected.wait(10)
    with serve_app(create_app(config, status=tracker, dead_letters=dead_letters, completeness_cache_s=1.0)) as url:
        yield url, Plant(influx.url), tracker
    dead_letters.stop()
    tracker.stop()


def publish_dead_letter(port: int, reason: str) -> None:
    letter = contract.DeadLetter(reason=f"{reason}: not JSON", topic=contract.telemetry_topic("hitachi-works", "edge-01"),
                                 ts=int(time.time() * 1000), payload="garbage", payload_bytes=7)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-ingest-dl", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(contract.dead_letter_topic(reason), contract.encode(letter), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def raw_value(page, device: str, metric: str) -> str | None:
    return page.get_attribute(f'article[data-device="{device}"] tr[data-metric="{metric}"] [data-role=value]', "data-raw")


def test_board_shows_live_values_that_change_and_offline_devices(broker, influx, board):
    url, plant, tracker = board
    now = int(time.time() * 1000)
    states = [contract.DeviceState(device=d, kind="meter", online=True) for d in METERS]
    states.append(contract.DeviceState(device="mill-07", kind="meter", online=False, error="Modbus timeout (unit 7)"))
    publish_status(broker.port, states)
    plant.write([f"meter,site=hitachi-works,agent=edge-01,device=mill-07,profile=hinode-sim-meter "
                 f"power_total=0.0,seq=1i {now - 600_000}"])
    for step in range(3):
        for device in METERS:
            plant.meter(device, step, ts=now - (3 - step) * 1000)
    plant.agent_health(24.0)
    assert wait_for(lambda: len(tracker.snapshot()) == 1)

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url + "/")

            cell = 'article[data-device="press-01"] tr[data-metric="power_total"] [data-role=value]'
            page.wait_for_selector(cell, timeout=10_000)
            first = raw_value(page, "press-01", "power_total")
            assert first is not None
            assert page.text_content(f'article[data-device="press-01"] tr[data-metric="power_total"] .unit') == "kW"

            # New envelopes arrive while the page is open: the shown value follows each one.
            for step in range(3, 9):
                written = {device: plant.meter(device, step, skip_seq=(device == "oven-01" and step == 5))
                           for device in METERS}
                plant.agent_health(24.0 + step)
                page.wait_for_function(
                    "([sel, want]) => { const e = document.querySelector(sel);"
                    " return e && Math.abs(Number(e.dataset.raw) - want) < 1e-6; }",
                    arg=[cell, written["press-01"]], timeout=5_000)
            last = raw_value(page, "press-01", "power_total")
            assert last != first

            spark = 'article[data-device="press-01"] tr[data-metric="power_total"] svg'
            assert int(page.get_attribute(spark, "data-points")) >= 5
            assert page.get_attribute(f"{spark} polyline", "points").count(",") >= 5

            # the agent reports mill-07 offline with its error; its old data is ten minutes old
            mill = 'article[data-device="mill-07"]'
            assert page.get_attribute(mill, "data-online") == "false"
            assert page.text_content(f"{mill} [data-role=status]") == "Offline"
            assert "Modbus timeout" in page.text_content(f"{mill} [data-role=reason]")
            assert page.get_attribute('article[data-device="press-01"]', "data-online") == "true"
            assert page.text_content('article[data-device="press-01"] [data-role=status]') == "Online"

            # oven-01 skipped one envelope: its completeness drops below 100 %
            oven_pct = page.text_content('article[data-device="oven-01"] [data-role=completeness] .pct')
            assert oven_pct.endswith("%") and oven_pct != "100 %"
            assert page.text_content("[data-stat=devices-online]") == "3 / 4"
            page.wait_for_function("document.querySelector('[data-stat=\"readings-per-s\"]').textContent !== '–'",
                                   timeout=8_000)
            # The ops strip: dead letters per reason, as the ingest publishes them.
            publish_dead_letter(broker.port, "malformed_json")
            publish_dead_letter(broker.port, "malformed_json")
            page.wait_for_selector('[data-role=ops]:not([hidden]) li[data-reason="malformed_json"] .count >> text=2',
                                   timeout=10_000)
            page.screenshot(path="/tmp/board.png", full_page=True)

            # press-02 stops sending: after offline_after_s (4 s) the board shows it offline
            for step in range(9, 16):
                plant.meter("press-01", step)
                plant.meter("oven-01", step)
                time.sleep(0.8)        # the passage of time: press-02 stays silent past offline_after_s
            page.wait_for_selector('article[data-device="press-02"][data-online="false"]', timeout=5_000)
            assert page.text_content('article[data-device="press-02"] [data-role=reason]').startswith("no data for")
            assert page.get_attribute('article[data-device="press-01"]', "data-online") == "true"
            assert page.get_attribute("[data-role=connection]", "data-state") == "live"

            # InfluxDB goes away: the board says it is not updating and keeps the last values
            influx.stop()
            page.wait_for_selector('[data-role=connection][data-state="error"]', timeout=5_000)
            assert "503" in page.text_content("[data-role=connection-text]")
            assert raw_value(page, "press-01", "power_total") is not None
            assert errors == []
        finally:
            browser.close()
