"""An agent killed in the middle of a charging session (power cut, SIGKILL) and started again:
the charger reconnects without a new boot, sends what it queued meanwhile with the original
timestamps, stops, and exactly one session record with the right energy reaches InfluxDB."""

from __future__ import annotations

import asyncio

import pytest

from hinode.contract import SESSION_DEVICE_SUFFIX, DeviceKind
from hinode.services import free_port
from tests.e2e.charging_peer import Connected, now_ms
from tests.e2e.pipeline import Pipeline
from tests.e2e.test_charging_end_to_end import eventually, ready, rows_of, wait_port

pytestmark = pytest.mark.timeout(150)

CHARGER, PASSWORD, TAG = "CP-RESTART", "pw-restart", "04A1B2C3"
MIN = 60_000


def sources(port: int) -> list[dict]:
    return [{"type": "ocpp", "name": "chargers", "host": "127.0.0.1", "port": port, "security_profile": 1,
             "auth_list": [TAG], "chargers": [{"id": CHARGER, "password": PASSWORD}]}]


async def before_the_crash(port: int, start: int) -> int:
    async with Connected(port, CHARGER, PASSWORD, "1.6") as cp:
        assert await cp.boot() == "Accepted"
        await ready(cp, "1.6")
        assert await cp.authorize(TAG) == "Accepted"
        assert await cp.start_transaction(TAG, 2_000_000.0, start) == "Accepted"
        await cp.status("Charging", start)
        await cp.meter({"wh": 2_000_900.0, "w": 11040.0, "a": (16.0, 16.0, 16.0), "v": 230.0, "soc": 40.0},
                       start + 5 * MIN)
        return cp.transaction_id


async def after_the_restart(port: int, start: int, transaction_id) -> None:
    """No boot (the charger only lost its connection); its queue goes out with the old timestamps."""
    async with Connected(port, CHARGER, PASSWORD, "1.6") as cp:
        cp.transaction_id = transaction_id
        await cp.meter({"wh": 2_002_000.0, "w": 7360.0, "a": (10.7, 10.7, 10.7), "v": 230.0, "soc": 52.0},
                       start + 10 * MIN)
        await cp.stop(2_004_400.0, start + 20 * MIN, reason="EVDisconnected")
        await eventually(lambda: cp.got("ChangeConfiguration"), "the agent configuring the reconnected charger")


def test_an_agent_killed_mid_session_completes_it_with_one_record(tmp_path):
    pipeline = Pipeline(tmp_path).start()
    try:
        port = free_port()
        agent = pipeline.agent(sources(port))
        wait_port(port)
        start = now_ms() - 30 * MIN
        transaction_id = asyncio.run(before_the_crash(port, start))
        pipeline.wait(lambda: rows_of(pipeline, DeviceKind.CHARGER.value, CHARGER, f"AND time = {start + 5 * MIN}ms"),
                      "the meter value sent before the crash")
        agent.kill()

        pipeline.agent(sources(port))                 # same outbox and session store: same folder
        wait_port(port)
        asyncio.run(after_the_restart(port, start, transaction_id))

        device = CHARGER + SESSION_DEVICE_SUFFIX
        records = pipeline.wait(lambda: rows_of(pipeline, DeviceKind.CHARGING_SESSION.value, device),
                                "the session record after the restart", timeout=30)
        assert len(records) == 1, records
        record = records[0]
        assert record["energy"] == pytest.approx(4.4)                # 2 004 400 Wh - 2 000 000 Wh
        assert record["duration"] == pytest.approx(20 * 60)
        assert (record["start_ts"], record["stop_ts"]) == (start, start + 20 * MIN)
        assert record["id_tag"] == TAG and record["stop_reason"] == "EVDisconnected"
        assert record["session_id"] == str(transaction_id)
        # the reading queued during the outage is stored at its own time
        late = rows_of(pipeline, DeviceKind.CHARGER.value, CHARGER, f"AND time = {start + 10 * MIN}ms")
        assert late and late[0]["energy_import"] == pytest.approx(2002.0)
    finally:
        pipeline.stop()
