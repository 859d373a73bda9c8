"""``doctor ocpp`` with the real charger simulator (OCPP 1.6J and 2.0.1, with and without Basic auth):
every charger is reported and none is ever accepted; the drafted ocpp section passes check-config."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import yaml

from edge_agent.doctor import cli
from hinode import services
from simulators.ocpp import ChargerFleet
from tests.support.waiting import wait_until_async


def chargers(url: str, count: int, version: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simulators", "ocpp", "--url", url, "--chargers", str(count),
                             "--version", version, "--no-commute", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _wait_port(port: int) -> None:
    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    await wait_until_async(listening, f"the doctor listening on {port}", timeout=20)


def test_reports_both_versions_and_auth_never_accepts_and_drafts_chargers(tmp_path, capsys):
    port = services.free_port()
    draft = tmp_path / "site.yaml"
    url = f"ws://127.0.0.1:{port}/ocpp"

    async def scenario():
        doctor = asyncio.create_task(asyncio.to_thread(
            cli.main, ["ocpp", "--host", "127.0.0.1", "--port", str(port), "--seconds", "40",
                       "--until-chargers", "3", "--draft", str(draft)]))
        await _wait_port(port)
        mixed = chargers(url, 2, "mixed", "--password", "s3cret-pw")      # CP01 1.6J, CP02 2.0.1
        gate = ChargerFleet(url, 1, "2.0.1", id_prefix="GATE", commute=False)
        await gate.start()
        try:
            status = await asyncio.wait_for(doctor, 60)
            charger = gate.chargers[0]
            await wait_until_async(lambda: charger.connect_attempts >= 1, "the gate charger's attempt")
            return status, charger.connects, charger.last_error
        finally:
            await gate.stop()
            mixed.terminate()
            mixed.wait(timeout=30)

    status, gate_connects, gate_error = asyncio.run(scenario())
    out = capsys.readouterr().out
    assert status == 0, out
    assert "OK   charger CP01 from 127.0.0.1: OCPP ocpp1.6, Basic auth as 'CP01'" in out
    assert "OK   charger CP02 from 127.0.0.1: OCPP ocpp2.0.1, Basic auth as 'CP02'" in out
    assert "OK   charger GATE01 from 127.0.0.1: OCPP ocpp2.0.1, no credentials" in out
    assert "WARN charger GATE01 sent no credentials while others did" in out
    assert gate_connects == 0 and "401" in gate_error          # refused at the HTTP upgrade, never accepted
    assert "s3cret-pw" not in out and "s3cret-pw" not in draft.read_text()
    assert "(passes check-config)" in out
    section = yaml.safe_load(draft.read_text())["sources"][0]
    assert section["port"] == port and section["path_prefix"] == "/ocpp" and section["security_profile"] == 1
    assert [c["id"] for c in section["chargers"]] == ["CP01", "CP02", "GATE01"]
    checked = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(draft)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_nobody_connects_and_port_taken(capsys):
    port = services.free_port()
    status = cli.main(["ocpp", "--host", "127.0.0.1", "--port", str(port), "--seconds", "0.5"])
    out = capsys.readouterr().out
    assert status == 1 and "FAIL no charger tried to connect in 0.5 s" in out
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        status = cli.main(["ocpp", "--host", "127.0.0.1", "--port", str(port), "--seconds", "0.5"])
    out = capsys.readouterr().out
    assert status == 1 and f"FAIL cannot listen on 127.0.0.1:{port}" in out and "Traceback" not in out
