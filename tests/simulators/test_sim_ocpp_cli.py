"""``python -m simulators ocpp`` as a user runs it, against a central system serving both versions."""

from __future__ import annotations

import asyncio
import base64
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import websockets
from ocpp import v16, v201
from ocpp.routing import on

from hinode.services import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
ROOT = Path(__file__).resolve().parents[2]


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Central16(v16.ChargePoint):
    seen: list

    async def _handle_call(self, msg):
        self.seen.append((self.id, "1.6", msg.action, msg.payload))
        return await super()._handle_call(msg)

    @on("BootNotification")
    def boot(self, **_):
        return v16.call_result.BootNotification(current_time=now_text(), interval=60, status="Accepted")

    @on("StatusNotification")
    def status(self, **_):
        return v16.call_result.StatusNotification()

    @on("Authorize")
    def authorize(self, **_):
        return v16.call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction")
    def start_tx(self, **_):
        return v16.call_result.StartTransaction(transaction_id=1, id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def meter_values(self, **_):
        return v16.call_result.MeterValues()


class Central201(v201.ChargePoint):
    seen: list

    async def _handle_call(self, msg):
        self.seen.append((self.id, "2.0.1", msg.action, msg.payload))
        return await super()._handle_call(msg)

    @on("BootNotification")
    def boot(self, **_):
        return v201.call_result.BootNotification(current_time=now_text(), interval=60, status="Accepted")

    @on("StatusNotification")
    def status(self, **_):
        return v201.call_result.StatusNotification()

    @on("Authorize")
    def authorize(self, **_):
        return v201.call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    def transaction_event(self, **_):
        return v201.call_result.TransactionEvent()


async def serve_both(port: int, seen: list, auth: dict):
    async def on_connect(ws):
        charger_id = ws.request.path.strip("/").split("/")[-1]
        auth[charger_id] = ws.request.headers.get("Authorization")
        cls = Central16 if ws.subprotocol == "ocpp1.6" else Central201
        link = cls(charger_id, ws)
        link.seen = seen
        try:
            await link.start()
        except websockets.exceptions.ConnectionClosed:
            pass
    return await websockets.serve(on_connect, "127.0.0.1", port, subprotocols=["ocpp2.0.1", "ocpp1.6"])


async def run_cli(*args: str):
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "simulators", "ocpp", *args, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_cli_prints_its_line_runs_commuters_and_exits_0_on_sigterm():
    port = free_port()
    seen: list = []
    auth: dict = {}
    server = await serve_both(port, seen, auth)
    # Monday 08:59 local: nearly every commuter has arrived, so sessions start at once.
    proc = await run_cli("--url", f"ws://127.0.0.1:{port}/ocpp", "--chargers", "4", "--version", "mixed",
                         "--password", "s3cret", "--start", "2026-11-30T08:59", "--time-scale", "60",
                         "--meter-interval", "30")
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line.startswith("OCPP simulator: 4 chargers (CP01..CP04), OCPP 1.6J and 2.0.1 mixed"), line
        assert f"ws://127.0.0.1:{port}/ocpp/<id>" in line and "Basic auth" in line and "x60" in line

        def boots():
            return {(cid, version) for cid, version, action, _ in seen if action == "BootNotification"}
        await asyncio.to_thread(wait_until, lambda: len(boots()) == 4, "four boots", 15)
        assert boots() == {("CP01", "1.6"), ("CP02", "2.0.1"), ("CP03", "1.6"), ("CP04", "2.0.1")}
        assert auth["CP03"] == "Basic " + base64.b64encode(b"CP03:s3cret").decode()

        def sessions():
            return [p for _, _, action, p in seen
                    if action == "StartTransaction" or (action == "TransactionEvent" and p["eventType"] == "Started")]
        await asyncio.to_thread(wait_until, lambda: len(sessions()) >= 2, "commuters' sessions", 15)
        stamps = [p["timestamp"] for p in sessions()]
        assert all(s.startswith("2026-11-29T23:") or s.startswith("2026-11-30T00:") for s in stamps), stamps
        assert {p.get("idTag") or p["idToken"]["idToken"] for p in sessions()} <= {f"EMP{n:04d}" for n in range(1, 5)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
            server.close()
    assert code == 0, (await proc.stderr.read()).decode()


async def test_cli_bad_options_exit_2_with_a_message(tmp_path):
    proc = await run_cli("--url", "ws://127.0.0.1:9", "--cafile", str(tmp_path / "ca.pem"))
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2 and "--cafile needs a wss:// --url" in err.decode()

    passwords = tmp_path / "passwords"
    passwords.write_text("CP01 one\nCP02\n")
    proc = await run_cli("--url", "ws://127.0.0.1:9", "--passwords-file", str(passwords))
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2 and "passwords:2: expected 'ID PASSWORD'" in err.decode()
