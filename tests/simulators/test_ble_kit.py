"""The virtual visit kit as a test or a demo user drives it: control HTTP, CLI, readings, special values."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edge_agent.sources.ble import decoders
from edge_agent.sources.ble.link import open_link
from simulators.ble import KIT_DEVICES, VirtualKit, advertised_name, device_address
from simulators.ble.control import KitSimulator
from tests.support.waiting import wait_until, wait_until_async

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_addresses_and_readings_are_deterministic_per_kit_and_seed():
    one, again, other_kit = VirtualKit("kit-01", seed=5), VirtualKit("kit-01", seed=5), VirtualKit("kit-02", seed=5)
    assert [d.address for d in one.devices.values()] == [d.address for d in again.devices.values()]
    assert {d.address for d in one.devices.values()}.isdisjoint(d.address for d in other_kit.devices.values())
    assert device_address("kit-01", 0) == one.device("bp-cuff-1").address
    assert advertised_name("kit-01", "bp-cuff-1") == one.device("bp-cuff-1").name == "BP-Cuff-01"
    assert list(one.devices) == list(KIT_DEVICES)
    assert [one.device("bp-cuff-1").take({}, None).payload for _ in range(3)] == \
        [again.device("bp-cuff-1").take({}, None).payload for _ in range(3)]


def test_random_readings_stay_in_realistic_ranges():
    kit = VirtualKit(seed=11)
    for _ in range(200):
        bp = kit.device("bp-cuff-1").take({}, None).description["values"]
        assert 110 <= bp["systolic"] <= 160 and 65 <= bp["diastolic"] <= 95 and 55 <= bp["pulse"] <= 95
        assert 36.2 <= kit.device("thermometer-1").take({}, None).description["values"]["body_temp"] <= 37.4
        assert 93 <= kit.device("oximeter-1").take({}, None).description["values"]["spo2"] <= 99
        assert 54.5 <= kit.device("scale-1").take({}, None).description["values"]["weight"] <= 75.5
        assert 80 <= kit.device("glucometer-1").take({}, None).description["values"]["glucose"] <= 180
        assert 55 <= kit.device("hr-strap-1").take({}, None).description["values"]["heart_rate"] <= 95
    assert kit.device("thermometer-1").take({"fever": True}, None).description["values"]["body_temp"] >= 38.0


@pytest.mark.parametrize("device_id, characteristic", [("bp-cuff-1", 0x2A35), ("thermometer-1", 0x2A1C),
                                                       ("oximeter-1", 0x2A5E), ("glucometer-1", 0x2A18)])
@pytest.mark.parametrize("special, absent", [("nan", "not-a-number"), ("nres", "error"),
                                             ("+inf", "positive-infinity"), ("-inf", "negative-infinity")])
def test_special_values_decode_as_absent_values_not_numbers(device_id, characteristic, special, absent):
    reading = VirtualKit(seed=2).device(device_id).take({}, special)
    measurement = decoders.decode(characteristic, reading.payload)
    main = measurement.values[0]
    assert main.value is None and main.absent == absent


@pytest.mark.anyio
async def test_control_http_measures_sleeps_and_reports_state():
    simulator = KitSimulator(VirtualKit("kit-01", "tcp-server:127.0.0.1:0", seed=1))
    await simulator.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{simulator.control_port}") as http:
            listing = (await http.get("/devices")).json()
            assert listing["gateway_hci"] == simulator.kit.gateway_hci
            assert [d["id"] for d in listing["devices"]] == list(KIT_DEVICES)
            assert all(d["advertising"] and not d["connected"] and not d["clock_set"] for d in listing["devices"])

            taken = await http.post("/devices/bp-cuff-1/measure", json={"values": {"systolic": 182}})
            assert taken.status_code == 200
            assert taken.json()["values"]["systolic"] == 182 and taken.json()["delivery"] == "stored"
            assert (await http.post("/devices/scale-1/measure")).json()["delivery"] == "stored"
            special = await http.post("/devices/thermometer-1/measure", json={"special": "nres"})
            assert special.json()["special"] == "nres"
            states = {d["id"]: d for d in (await http.get("/devices")).json()["devices"]}
            assert states["bp-cuff-1"]["stored"] == 1 and states["scale-1"]["stored"] == 1

            assert (await http.post("/devices/nope/measure")).status_code == 404
            bad = await http.post("/devices/bp-cuff-1/measure", json={"special": "zero"})
            assert bad.status_code == 400 and "special" in bad.text
            typo = await http.post("/devices/scale-1/measure", json={"values": {"body_weight": 60}})
            assert typo.status_code == 400 and "body_weight" in typo.text
            assert (await http.post("/devices/bp-cuff-1/measure", content=b"{not json")).status_code == 400
            assert (await http.post("/devices/bp-cuff-1/sleep", json={"seconds": -1})).status_code == 400

            slept = await http.post("/devices/bp-cuff-1/sleep", json={"seconds": 0.5})
            assert slept.status_code == 200
            asleep = {d["id"]: d for d in (await http.get("/devices")).json()["devices"]}["bp-cuff-1"]
            assert asleep["advertising"] is False and asleep["awake"] is False

            cuff = simulator.kit.device("bp-cuff-1")
            await wait_until_async(lambda: cuff.state()["awake"] and cuff.state()["advertising"],
                                   "the cuff to wake up and advertise", timeout=5)
            woken = {d["id"]: d for d in (await http.get("/devices")).json()["devices"]}["bp-cuff-1"]
            assert woken["advertising"] is True
    finally:
        await simulator.stop()


@pytest.mark.anyio
async def test_a_glucose_reading_while_connected_drops_the_link_so_the_gateway_pulls_it(tmp_path):
    kit = VirtualKit("kit-01", "tcp-server:127.0.0.1:0")
    await kit.start()
    link = open_link("bumble", hci=kit.gateway_hci, adapter=None, key_store=tmp_path / "keys.json")
    await link.open()
    try:
        meter = kit.device("glucometer-1")
        connection = await link.connect(meter.address, 5)
        assert (await meter.measure({"glucose": 101}))["delivery"] == "stored"
        await asyncio.wait_for(connection.wait_disconnected(), 5)
        assert meter.state()["stored"] == 1 and meter.state()["last_sequence"] == 1
    finally:
        await link.close()
        await kit.stop()


@pytest.mark.anyio
async def test_a_new_gateway_host_finds_the_devices_free(tmp_path):
    """An agent restart (a new HCI client) must not find the devices still held by the old one."""
    kit = VirtualKit("kit-01", "tcp-server:127.0.0.1:0", device_ids=["bp-cuff-1"])
    await kit.start()
    try:
        cuff = kit.device("bp-cuff-1")
        first = open_link("bumble", hci=kit.gateway_hci, adapter=None, key_store=tmp_path / "keys.json")
        await first.open()
        await first.connect(cuff.address, 5)
        await wait_until_async(lambda: cuff.state()["connected"], "the first host's connection")
        # the old host vanishes without disconnecting (a killed agent)
        first.device = None
        await first._transport.close()
        second = open_link("bumble", hci=kit.gateway_hci, adapter=None, key_store=tmp_path / "keys.json")
        await second.open()
        connection = await second.connect(cuff.address, 5)
        assert connection.has(0x2A35)
        await second.close()
    finally:
        await kit.stop()


def test_cli_serves_the_kit_and_exits_cleanly_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "simulators", "ble", "--hci", "tcp-server:127.0.0.1:0",
                             "--control-port", "0", "--kit", "kit-07", "--auto-measure-s", "0.2", "--seed", "4"],
                            cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line, f"nothing printed; stderr: {proc.stderr.read()}"
        control = re.search(r"control http://127\.0\.0\.1:(\d+)/devices", line)
        assert control and "tcp-client:127.0.0.1:" in line and "BP-Cuff-07" in line, line
        url = f"http://127.0.0.1:{control.group(1)}/devices"
        measured = wait_until(lambda: [d["id"] for d in httpx.get(url, timeout=5).json()["devices"]
                                       if d["measurements"]][2:], "automatic readings on three devices", timeout=20)
        assert measured
        assert httpx.post(url.replace("/devices", "/devices/hr-strap-1/measure"), timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    bad = subprocess.run([sys.executable, "-m", "simulators", "ble", "--auto-measure-s", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--auto-measure-s" in bad.stderr
