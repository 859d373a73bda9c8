"""Workplace EV charging through the real processes a user runs: Mosquitto, InfluxDB,
``python -m cloud serve``, ``python -m edge_agent run`` with a ``type: ocpp`` source, and as
chargers either a charge point written here with the ``ocpp`` library only
(``tests/e2e/charging_peer.py``) or ``python -m simulators ocpp`` next to
``python -m simulators modbus --pv-site``.

One pipeline (broker, InfluxDB, cloud) serves the whole module; each test uses its own chargers
(and test 3 its own agent), so they do not see each other's data.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from hinode.contract import SESSION_DEVICE_SUFFIX, CommandStatus, DeviceKind
from hinode.services import free_port
from tests.e2e.charging_peer import Connected, now_ms
from tests.e2e.pipeline import Pipeline

pytestmark = pytest.mark.timeout(120)

SITE = "plant-1"
TAG, OTHER_TAG = "04A1B2C3", "04D5E6F7"
PASSWORDS = {"EXT-16": "pw-ext-16", "EXT-201": "pw-ext-201", "CMD-16": "pw-cmd-16", "CMD-201": "pw-cmd-201",
             "FAST-16": "pw-fast-16", "FAST-201": "pw-fast-201", "OLD-16": "pw-old-16", "OLD-201": "pw-old-201"}
VERSIONS = {"1.6": "16", "2.0.1": "201"}
CHARGER, SESSION, SITE_KIND = (DeviceKind.CHARGER.value, DeviceKind.CHARGING_SESSION.value, DeviceKind.SITE.value)
MIN = 60_000


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The pipeline and an agent whose OCPP central system knows four chargers (security profile 1)."""
    pipeline = Pipeline(tmp_path_factory.mktemp("charging")).start()
    try:
        port = free_port()
        pipeline.agent([{"type": "ocpp", "name": "chargers", "host": "127.0.0.1", "port": port,
                         "security_profile": 1, "heartbeat_interval_s": 60, "meter_value_interval_s": 10,
                         "auth_list": [TAG, OTHER_TAG],
                         "chargers": [{"id": cid, "password": pw} for cid, pw in PASSWORDS.items()]}])
        wait_port(port)
        pipeline.ocpp_port = port
        yield pipeline
    finally:
        pipeline.stop()


def rows_of(pipeline, measurement: str, device: str, where: str = "") -> list[dict]:
    return pipeline.query(f'SELECT * FROM "{measurement}" WHERE "device" = \'{device}\' {where}')


async def eventually(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def ready(cp, version: str) -> None:
    """The central system configured the charger after its boot (what it does before commands)."""
    action = "ChangeConfiguration" if version == "1.6" else "SetVariables"
    await eventually(lambda: cp.got(action), f"{action} after the boot")


# --------------------------------------------------------------------------- 1. data lands


SAMPLES = [  # minutes after the start, the charger's register and what it measures
    (5, {"wh": 1_000_900.0, "w": 11040.0, "a": (16.0, 16.0, 16.0), "v": 230.0, "soc": 35.0}),
    (10, {"wh": 1_001_820.0, "w": 11500.0, "a": (16.7, 16.6, 16.8), "v": 231.5, "soc": 41.5}),
    (15, {"wh": 1_002_600.0, "w": 7360.0, "a": (10.7, 10.6, 10.7), "v": 229.0, "soc": 46.0}),
]
METER_START, METER_STOP, DURATION_MIN = 1_000_000.0, 1_003_250.0, 20


async def one_session(port: int, charger: str, version: str, start: int) -> dict:
    async with Connected(port, charger, PASSWORDS[charger], version) as cp:
        assert await cp.boot() == "Accepted"
        await ready(cp, version)
        await cp.status("Available", start - MIN)
        await cp.status("Preparing", start - 1000)
        assert await cp.authorize("FFFF0000") == "Invalid"          # not in the auth_list
        assert await cp.authorize(TAG) == "Accepted"
        assert await cp.start_transaction(TAG, METER_START, start) == "Accepted"
        await cp.status("Charging", start)
        for minute, sample in SAMPLES:
            await cp.meter(sample, start + minute * MIN)
        await cp.stop(METER_STOP, start + DURATION_MIN * MIN)
        await cp.status("Finishing", start + DURATION_MIN * MIN)
        await cp.status("Available", now_ms())
        return {"transaction_id": str(cp.transaction_id)}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_foreign_charge_point_is_accepted_and_its_session_lands_in_influxdb(site, version):
    charger = f"EXT-{VERSIONS[version]}"
    start = now_ms() - 30 * MIN                 # a session that ran from 30 to 10 minutes ago
    tx = asyncio.run(one_session(site.ocpp_port, charger, version, start))

    # the charger's readings: the README's names, energy in kWh, power in W, at the samples' times
    minute, sample = SAMPLES[1]
    at = start + minute * MIN
    row = site.wait(lambda: (r := rows_of(site, CHARGER, charger, f"AND time = {at}ms")) and "soc" in r[0] and r[0],
                    f"{charger}'s meter values at their own timestamp")
    assert row["energy_import"] == pytest.approx(1001.82)
    assert row["power_total"] == pytest.approx(11500.0)
    assert (row["current_l1"], row["current_l2"], row["current_l3"]) == pytest.approx((16.7, 16.6, 16.8))
    assert row["voltage_l1"] == pytest.approx(231.5)
    assert row["soc"] == pytest.approx(41.5)
    assert row["session_energy"] == pytest.approx(1.82)
    assert row["evse"] == "1" and row["station"] == charger
    statuses = [r["status"] for r in rows_of(site, CHARGER, charger) if r.get("status")]
    assert "Charging" in statuses and statuses[-1] == "Available"

    # the catalog's units through the API
    device = site.wait(lambda: (d := site.devices().get(charger)) and d.get("units") and d,
                       f"{charger} in /api/devices")
    assert device["units"]["energy_import"] == "kWh" and device["units"]["power_total"] == "W"
    assert device["units"]["current_l1"] == "A" and device["units"]["voltage_l1"] == "V"
    assert device["units"]["soc"] == "%"

    # one session record: energy = stop - start register, the tag, the duration, timestamped at the stop
    sessions = site.wait(lambda: rows_of(site, SESSION, charger + SESSION_DEVICE_SUFFIX), f"{charger}'s session record")
    assert len(sessions) == 1, sessions
    record = sessions[0]
    assert record["time"] == start + DURATION_MIN * MIN
    assert record["energy"] == pytest.approx(3.25)
    assert record["duration"] == pytest.approx(DURATION_MIN * 60)
    assert record["id_tag"] == TAG and record["station"] == charger and record["evse"] == "1"
    assert (record["start_ts"], record["stop_ts"]) == (start, start + DURATION_MIN * MIN)
    assert record["peak_power"] == pytest.approx(11500.0)
    assert record["session_id"] == tx["transaction_id"]
    assert record["stop_reason"] == "Local"

    # the charging API answers it
    answer = site.api(f"/api/charging/sessions?site={SITE}&from=-1h")
    mine = [s for s in answer["sessions"] if s["charger"] == charger]
    assert len(mine) == 1, answer
    assert mine[0]["energy_kwh"] == pytest.approx(3.25) and mine[0]["id_tag"] == TAG
    assert mine[0]["duration_s"] == pytest.approx(DURATION_MIN * 60)
    assert (mine[0]["start"], mine[0]["stop"]) == (start, start + DURATION_MIN * MIN)
    assert mine[0]["session_id"] == tx["transaction_id"]


@pytest.mark.parametrize("version, clock, charger", [
    ("1.6", "2h-ahead", "FAST-16"), ("2.0.1", "2h-ahead", "FAST-201"),
    ("1.6", "2019", "OLD-16"), ("2.0.1", "2019", "OLD-201"),
])
def test_a_charger_with_a_wrong_clock_still_gets_its_session_stored(site, version, clock, charger):
    """Wallbox clocks drift or lose power; the README promises the arrival time for implausible
    timestamps. Whatever the clock says, the session's record must not vanish between agent and InfluxDB.
    Found by this test: the agent kept timestamps up to a day ahead (the ingest refuses more than
    5 minutes) and took any 2.0.1 timestamp, so both records were dead-lettered as clock_skew."""
    start = now_ms() + 2 * 3_600_000 if clock == "2h-ahead" else 1_561_075_200_000    # 2019-06-21
    asyncio.run(one_session(site.ocpp_port, charger, version, start))
    record = site.wait(lambda: rows_of(site, SESSION, charger + SESSION_DEVICE_SUFFIX),
                       f"{charger}'s session record (clock {clock})", timeout=6)
    assert len(record) == 1 and record[0]["energy"] == pytest.approx(3.25) and record[0]["id_tag"] == TAG


# --------------------------------------------------------------------------- 2. commands


def command(charger: str, name: str, params: dict) -> dict:
    return {"site": SITE, "agent": "edge-01", "target": charger, "name": name, "params": params,
            "expires_in_s": 120}


FINAL_STATUSES = {status.value for status in CommandStatus if status.final} | {"unanswered"}


def outcome_when_final(pipeline, command_id: str) -> dict:
    """The command's last word: not "sent", nor "accepted", which the agent says before it executes
    (the remote stop in CI was once read at "accepted")."""
    return pipeline.wait(lambda: (o := pipeline.api(f"/api/commands/{command_id}"))["status"] in FINAL_STATUSES and o,
                         f"the outcome of {command_id}")


async def commanded_session(pipeline, charger: str, version: str) -> dict:
    async with Connected(pipeline.ocpp_port, charger, PASSWORDS[charger], version) as cp:
        assert await cp.boot() == "Accepted"
        await ready(cp, version)
        start = now_ms() - 5 * MIN
        assert await cp.authorize(OTHER_TAG) == "Accepted"
        assert await cp.start_transaction(OTHER_TAG, 500_000, start) == "Accepted"
        await cp.status("Charging", start)
        await cp.meter({"wh": 500_600.0, "w": 7200.0, "a": (10.4, 10.4, 10.4), "v": 230.0, "soc": 50.0}, now_ms())

        status, sent = await asyncio.to_thread(pipeline.post, "/api/commands",
                                               command(charger, "set_current_limit", {"amps": 10}))
        assert status == 202, sent
        limit = await asyncio.to_thread(outcome_when_final, pipeline, sent["id"])
        assert limit["status"] == "done", limit
        (profile,) = cp.got("SetChargingProfile")
        body = profile.get("cs_charging_profiles") or profile.get("charging_profile")
        period = body["charging_schedule"]
        period = (period[0] if isinstance(period, list) else period)
        assert period["charging_rate_unit"] == "A"
        assert period["charging_schedule_period"][0]["limit"] == pytest.approx(10.0)

        status, sent = await asyncio.to_thread(pipeline.post, "/api/commands",
                                               command(charger, "remote_stop", {"connector": 1}))
        assert status == 202, sent
        await asyncio.wait_for(cp.stop_requested.wait(), 15)     # the charger got Remote/RequestStop
        stop_action = "RemoteStopTransaction" if version == "1.6" else "RequestStopTransaction"
        assert [p["transaction_id"] for p in cp.got(stop_action)] == [cp.transaction_id]
        stopped = await asyncio.to_thread(outcome_when_final, pipeline, sent["id"])
        assert stopped["status"] == "done", stopped
        await cp.stop(501_000, now_ms(), reason="Remote")       # what a charger does after accepting it
        await cp.status("Available", now_ms())
        return {"transaction_id": str(cp.transaction_id), "limit": limit, "stopped": stopped}


@pytest.mark.parametrize("version", VERSIONS)
def test_commands_from_the_api_reach_the_charger_and_end_done(site, version):
    charger = f"CMD-{VERSIONS[version]}"
    result = asyncio.run(commanded_session(site, charger, version))
    assert [h["status"] for h in result["stopped"]["history"]][-1] == "done"
    # the stop it caused is the session's end: one record, stopped remotely, 1 kWh
    record = site.wait(lambda: rows_of(site, SESSION, charger + SESSION_DEVICE_SUFFIX), "the remotely stopped session")
    assert len(record) == 1 and record[0]["stop_reason"] == "Remote" and record[0]["id_tag"] == OTHER_TAG
    assert record[0]["energy"] == pytest.approx(1.0) and record[0]["session_id"] == result["transaction_id"]


# --------------------------------------------------------------------------- 3. PV surplus, simulators

TOKYO = timezone(timedelta(hours=9))


def a_weekday_noon() -> datetime:
    """The last weekday noon (Tokyo) that has passed: commuters are plugged in, the sun is up.

    In the past on purpose: the OCPP simulator stamps its messages with its simulated clock, the agent
    keeps timestamps up to a day ahead, but the cloud ingest dead-letters readings more than
    ``ingest.max_future_s`` (5 min) ahead, so a noon still to come would never reach InfluxDB
    (see test_a_charger_with_a_wrong_clock_still_gets_its_session_stored)."""
    noon = datetime.now(TOKYO).replace(hour=12, minute=0, second=0, microsecond=0)
    while noon > datetime.now(TOKYO) or noon.weekday() >= 5:
        noon -= timedelta(days=1)
    return noon


def newest(pipeline, measurement: str, device: str, field: str, where: str = "") -> dict | None:
    rows = pipeline.query(f'SELECT last("{field}") AS v FROM "{measurement}" WHERE "device" = \'{device}\' {where}')
    return rows[0] if rows else None


def test_pv_surplus_charging_with_the_simulators(site):
    noon = a_weekday_noon()
    start = noon.strftime("%Y-%m-%dT%H:%M")
    pv = site.simulator("modbus", "--sunspec", "--pv-site", "--port", "0", "--interval", "0.5", "--cloudiness", "0",
                        "--pv-kwp", "250", "--site-load-kw", "60", "--start", start, "--time-scale", "1")
    port = free_port()
    chargers = ["CP01", "CP02"]
    started_ms = now_ms()
    agent = site.agent([
        {"type": "sunspec", "name": "pv-site", "transport": "tcp", "host": "127.0.0.1", "port": pv.tcp_port,
         "poll_interval_s": 0.5, "devices": [{"id": "pv-inverter", "unit": 1}, {"id": "grid-meter", "unit": 2}]},
        {"type": "ocpp", "name": "carport", "host": "127.0.0.1", "port": port, "path_prefix": "/ocpp",
         "security_profile": 1, "meter_value_interval_s": 2, "heartbeat_interval_s": 60,
         "authorize_unknown_tags": True,
         "chargers": [{"id": c, "password": "pw-sim", "mode": "pv", "min_current_a": 6, "max_current_a": 16}
                      for c in chargers],
         "controller": {"interval_s": 1, "grid_meter": {"device": "grid-meter", "metric": "power_total"},
                        "pv_meters": [{"device": "pv-inverter", "metric": "power_total"}],
                        "enable": {"threshold_w": 0, "delay_s": 1}, "disable": {"threshold_w": 0, "delay_s": 5}}},
    ], agent="edge-pv")
    wait_port(port)
    site.simulator("ocpp", "--url", f"ws://127.0.0.1:{port}/ocpp", "--chargers", "2", "--version", "mixed",
                   "--password", "pw-sim", "--start", start, "--time-scale", "1", "--meter-interval", "5")

    # the site controller sees the sun and the surplus (W), and says why it decides what it does
    site_row = site.wait(lambda: (r := site.query(f'SELECT * FROM "{SITE_KIND}" WHERE "device" = \'carport\' '
                                                  f'AND "pv_power" > 0 ORDER BY time DESC LIMIT 1')) and r[0],
                         "the site's readings with PV power", timeout=40)
    assert site_row["pv_power"] > 50_000            # 250 kWp at noon, clear sky: tens of kW, in W
    assert site_row["surplus"] > 10_000 and "surplus" in site_row["decision"]
    assert site_row["grid_power"] < 0               # exporting: PV above the factory's load
    assert abs(site_row["time"] - now_ms()) < 60_000   # the controller stamps with the agent's (real) clock
    for charger in chargers:
        target = site.wait(lambda c=charger: (r := newest(site, CHARGER, c, "target_current")) and r["v"] > 0 and r,
                           f"{charger}'s target current > 0", timeout=40)
        assert 6 <= target["v"] <= 16
        decision = newest(site, CHARGER, charger, "decision")["v"]
        assert "pv surplus" in decision, decision
        power = site.wait(lambda c=charger: (r := newest(site, CHARGER, c, "power_total")) and r["v"] > 1000 and r,
                          f"{charger} charging (power_total > 0)", timeout=40)
        # the charger's readings carry the simulator's clock (--start, the past noon), not the real time
        assert noon.timestamp() * 1000 <= power["time"] <= noon.timestamp() * 1000 + (now_ms() - started_ms) + 60_000
    # the controller counts what the cars draw
    ev = site.wait(lambda: (r := site.query(f'SELECT last("ev_power") AS v FROM "{SITE_KIND}" '
                                            f'WHERE "device" = \'carport\'')) and r[0]["v"] > 1000 and r[0],
                   "the site's ev_power > 0", timeout=30)
    assert ev["v"] <= site_row["pv_power"]
    agent.stop()
