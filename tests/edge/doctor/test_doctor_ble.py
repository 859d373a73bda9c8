"""``doctor ble`` with the bumble VirtualKit over HCI-over-TCP (the same host code as a USB dongle):
health devices found by the service UUIDs they advertise, a sleeping device not reported, the drafted
ble section passing check-config; no radio gives a failure finding, not a traceback."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import yaml

from edge_agent.doctor import cli
from hinode import services
from simulators.ble import KIT_DEVICES, VirtualKit, advertised_name, device_address


def test_finds_the_kits_health_devices_by_service_uuid(tmp_path, capsys):
    draft = tmp_path / "site.yaml"

    async def scenario():
        kit = VirtualKit(kit="kit-07", hci="tcp-server:127.0.0.1:0")
        await kit.start()
        try:
            await kit.device("scale-1").sleep(60)           # switched off: it must not be reported
            return await asyncio.to_thread(cli.main, ["ble", "--stack", "bumble", "--hci", kit.gateway_hci,
                                                      "--seconds", "2", "--kit", "kit-07", "--draft", str(draft)])
        finally:
            await kit.stop()

    status = asyncio.run(scenario())
    out = capsys.readouterr().out
    assert status == 0, out
    expected = {"bp-cuff-1": ("blood_pressure", "0x1810"), "thermometer-1": ("temperature", "0x1809"),
                "oximeter-1": ("spo2", "0x1822"), "glucometer-1": ("glucose", "0x1808"),
                "hr-strap-1": ("heart_rate", "0x180D")}
    for device_id, (category, uuid) in expected.items():
        address = device_address("kit-07", list(KIT_DEVICES).index(device_id))
        name = advertised_name("kit-07", device_id)
        line = next(line for line in out.splitlines() if name in line)
        assert line.strip().startswith("OK") and f"{category} (services {uuid}" in line and address in line
    assert "Scale-07" not in out and "weight" not in out
    assert "(passes check-config)" in out

    section = yaml.safe_load(draft.read_text())["sources"][0]
    assert section["stack"] == "bumble" and section["kit"] == "kit-07"
    assert sorted(d["category"] for d in section["devices"]) == sorted(c for c, _ in expected.values())
    cuff = next(d for d in section["devices"] if d["category"] == "blood_pressure")
    assert cuff == {"id": "blood-pressure-1", "category": "blood_pressure",
                    "address": device_address("kit-07", 0), "name": "BP-Cuff-07"}
    checked = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(draft)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_no_radio_is_a_clear_failure(capsys):
    closed = services.free_port()
    status = cli.main(["ble", "--stack", "bumble", "--hci", f"tcp-client:127.0.0.1:{closed}", "--seconds", "1"])
    out = capsys.readouterr().out
    assert status == 1 and f"FAIL no usable radio: cannot open HCI transport tcp-client:127.0.0.1:{closed}" in out

    status = cli.main(["ble", "--stack", "bumble", "--seconds", "1"])
    out = capsys.readouterr().out
    assert status == 1 and "FAIL --stack bumble needs --hci" in out

    # bleak on this box: no BlueZ (no D-Bus system bus, or no adapter): a finding, never a traceback
    status = cli.main(["ble", "--stack", "bleak", "--seconds", "1"])
    out = capsys.readouterr().out
    assert status == 1 and "FAIL no usable radio" in out and "Traceback" not in out
