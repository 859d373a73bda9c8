"""The ``ble`` source against real bumble virtual devices (HCI over TCP, the code path of a USB
dongle) and a real VisitBook: what a nurse gets on the gateway and what leaves it."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from edge_agent.agent import Agent
from edge_agent.config import load_site_config
from edge_agent.sources.base import now_ms
from hinode import contract
from hinode.contract import DeviceKind, Quality
from simulators.ble.device_base import Reading
from simulators.ble.kit import VirtualKit
from tests.edge.sources.ble.conftest import NURSE, NURSE_PIN, PATIENT, kit_device, source_section
from tests.support.agent_proc import write_site_config
from tests.support.collector import Collector
from tests.support.waiting import wait_until_async

BP = "bp-cuff-1"


def values_of(batch) -> dict:
    return {r.metric: r for r in batch.readings}


async def test_a_confirmed_cuff_reading_in_a_visit_leaves_with_pseudonym_visit_and_device_time(kit, make_source):
    running = await make_source([kit_device(kit, BP)]).start()
    await wait_until_async(lambda: running.online(BP), "the cuff online", timeout=20,
                           context=lambda: f" ({running.error(BP)})")
    assert kit.device(BP).state()["clock_set"]                       # the gateway set the cuff's clock (CTS)
    visit = running.book.start_visit(PATIENT, NURSE)

    before = now_ms()
    await kit.device(BP).measure({"systolic": 138, "diastolic": 88, "mean_arterial": 120, "pulse": 60})
    held = await wait_until_async(lambda: running.held(BP, "pending"), "a pending cuff reading", timeout=10)
    assert held[0].visit_id == visit.id and held[0].pseudonym == PATIENT
    assert running.batches == []                                     # nothing leaves before the nurse confirms

    running.book.confirm(held[0].id, NURSE)
    batches = await wait_until_async(lambda: running.batches, "the confirmed reading yielded", timeout=5)
    assert len(batches) == 1
    batch = batches[0]
    assert (batch.device, batch.kind, batch.profile) == (BP, DeviceKind.VITALS, "ble-blood_pressure")
    assert batch.meta == {"subject": PATIENT}
    values = values_of(batch)
    assert (values["systolic"].value, values["systolic"].unit) == (138.0, "mm[Hg]")
    assert values["diastolic"].value == 88.0 and values["pulse"].value == 60.0
    assert values["visit_id"].value == visit.id
    assert values["time_source"].value == "device"
    # the cuff's clock (set in Asia/Tokyo) converted back to UTC: the time it was taken, to the second
    assert before - 2000 <= values["systolic"].ts <= now_ms() + 1000
    assert not any(r.value == "Yamada Hanako" for r in batch.readings)
    await wait_until_async(lambda: running.book.reading(held[0].id).state == "forwarded",
                           "the reading marked forwarded once the agent took it")


async def test_a_reading_outside_a_visit_is_held_unassigned_and_never_sent(kit, make_source):
    running = await make_source([kit_device(kit, BP)]).start()
    await wait_until_async(lambda: running.online(BP), "the cuff online", timeout=20)
    await kit.device(BP).measure({"systolic": 171, "diastolic": 99})
    outside = (await wait_until_async(lambda: running.held(BP, "unassigned"), "an unassigned reading", timeout=10))[0]
    assert outside.visit_id is None and outside.pseudonym is None

    visit = running.book.start_visit(PATIENT, NURSE)
    await kit.device(BP).measure({"systolic": 126, "diastolic": 80})
    inside = (await wait_until_async(lambda: running.held(BP, "pending"), "a pending reading", timeout=10))[0]
    running.book.confirm(inside.id, NURSE)
    await wait_until_async(lambda: running.book.reading(inside.id).state == "forwarded", "the visit's reading sent")
    assert [values_of(b)["systolic"].value for b in running.batches] == [126.0]
    assert [values_of(b)["visit_id"].value for b in running.batches] == [visit.id]
    assert running.book.reading(outside.id).state == "unassigned"        # still held, never sent


async def test_only_allow_listed_devices_are_ever_connected(kit, make_source):
    connections = {device_id: 0 for device_id in kit.devices}

    def count(device_id):
        def on_connection(_connection):
            connections[device_id] += 1
        return on_connection

    for device_id, device in kit.devices.items():
        device.device.on("connection", count(device_id))
    # "Thermo" is only a prefix of the kit thermometer's name "Thermo-01": a name must match exactly
    running = await make_source([kit_device(kit, BP),
                                 {"id": "thermo-other", "category": "temperature", "name": "Thermo"}]).start()
    await wait_until_async(lambda: running.online(BP), "the cuff online", timeout=20)
    await wait_until_async(lambda: running.error("thermo-other").startswith("not_found"),
                           "the unknown thermometer reported not found", timeout=10)
    await kit.device(BP).sleep(0.5)                                    # one more scan-and-connect round
    await wait_until_async(lambda: running.sessions_connections(BP) >= 2, "the cuff reconnected", timeout=20)
    assert connections[BP] == 2
    assert {d: n for d, n in connections.items() if d != BP} == {d: 0 for d in connections if d != BP}
    assert set(running.context.devices) == {BP, "thermo-other"}


async def test_a_sleeping_cuff_goes_offline_with_a_reason_and_comes_back(kit, make_source):
    running = await make_source([kit_device(kit, BP)]).start()
    await wait_until_async(lambda: running.online(BP), "the cuff online", timeout=20)
    await kit.device(BP).sleep(2.0)
    await wait_until_async(lambda: not running.online(BP), "the cuff offline", timeout=10)
    assert running.error(BP).startswith("disconnected: the device ended the connection")
    await wait_until_async(lambda: running.online(BP), "the cuff back online", timeout=20,
                           context=lambda: f" ({running.error(BP)})")
    assert running.sessions_connections(BP) == 2
    await kit.device(BP).measure({"systolic": 133})
    held = await wait_until_async(lambda: running.held(BP), "a reading after the reconnect", timeout=10)
    assert held[0].measurement.value_of("systolic").value == 133.0


async def test_glucometer_records_are_pulled_once_across_restarts(kit, make_source, tmp_path):
    meter = kit.device("glucometer-1")
    for mg_dl in (96, 142, 118):
        await meter.measure({"glucose": mg_dl})                         # stored in the meter, nobody connected
    state_dir = tmp_path / "state"
    first = await make_source([kit_device(kit, "glucometer-1")], state_dir=state_dir).start()
    held = await wait_until_async(lambda: len(first.held("glucometer-1")) == 3 and first.held("glucometer-1"),
                                  "the three stored records", timeout=20)
    assert [r.measurement.sequence for r in held] == [1, 2, 3]
    assert [r.measurement.value_of("glucose").value for r in held] == [96.0, 142.0, 118.0]
    assert held[0].measurement.text.get("glucose_meal") == "postprandial"  # joined with its context (0x2A34)
    await first.stop()

    await meter.measure({"glucose": 201})                               # taken while the gateway was off
    second = await make_source([kit_device(kit, "glucometer-1")], state_dir=state_dir).start()
    await wait_until_async(lambda: second.session("glucometer-1").record_transfers >= 1, "a record transfer",
                           timeout=20)
    sequences = [r.measurement.sequence for r in second.held("glucometer-1")]
    assert sequences == [1, 2, 3, 4]
    assert second.held("glucometer-1")[-1].measurement.value_of("glucose").value == 201.0
    assert ("glucometer-1", "glucose_duplicate") not in second.context.errors

    await meter.measure({"glucose": 99})              # with the gateway on: the meter drops the link, we come back
    await wait_until_async(lambda: [r.measurement.sequence for r in second.held("glucometer-1")] == [1, 2, 3, 4, 5],
                           "the new record pulled after the meter reconnected", timeout=20)


async def test_scale_and_oximeter_readings_arrive_in_canonical_units(kit, make_source):
    running = await make_source([kit_device(kit, "scale-1"), kit_device(kit, "oximeter-1")]).start()
    await wait_until_async(lambda: running.online("scale-1") and running.online("oximeter-1"), "both online",
                           timeout=20)
    await kit.device("scale-1").measure({"weight": 63.4})              # resolution 0.05 kg, from 0x2A9E
    await kit.device("oximeter-1").measure({"spo2": 88, "spo2_pulse": 104})
    await kit.device("oximeter-1").measure({"spo2": 95, "spo2_pulse": 72, "continuous": True})
    scale = (await wait_until_async(lambda: running.held("scale-1"), "the weight", timeout=10))[0]
    assert scale.measurement.value_of("weight").value == 63.4 and scale.time_source == "device"
    oximeter = await wait_until_async(lambda: len(running.held("oximeter-1")) == 2 and running.held("oximeter-1"),
                                      "spot check and continuous", timeout=10)
    assert [(r.measurement.characteristic, r.measurement.value_of("spo2").value) for r in oximeter] == \
        [(0x2A5E, 88.0), (0x2A5F, 95.0)]
    assert all(r.time_source == "gateway" for r in oximeter)            # no clock on the oximeter


async def test_a_special_value_becomes_a_bad_reading_with_its_absent_reason(kit, make_source):
    thermometer = "thermometer-1"
    running = await make_source([kit_device(kit, thermometer, by="name")]).start()
    await wait_until_async(lambda: running.online(thermometer), "the thermometer online", timeout=20)
    running.book.start_visit(PATIENT, NURSE)
    await kit.device(thermometer).measure(special="nan")
    held = (await wait_until_async(lambda: running.held(thermometer, "pending"), "a pending reading", timeout=10))[0]
    running.book.confirm(held.id, NURSE)
    batch = (await wait_until_async(lambda: running.batches, "the confirmed reading yielded", timeout=5))[0]
    values = values_of(batch)
    assert values["body_temp"].quality == Quality.BAD and values["body_temp"].value is None
    assert values["body_temp_absent"].value == "not-a-number"


async def test_a_corrupt_value_is_counted_and_the_next_good_one_still_arrives(kit, make_source):
    running = await make_source([kit_device(kit, BP)]).start()
    await wait_until_async(lambda: running.online(BP), "the cuff online", timeout=20)
    cuff = kit.device(BP)
    await cuff.deliver(Reading(bytes([0x1E, 0x8A]), {}, 0x2A35))           # flags announce far more than 2 bytes
    await wait_until_async(lambda: running.context.errors[(BP, "decode_too_short")] == 1, "the decode error counted",
                           timeout=10, context=lambda: f" (errors: {dict(running.context.errors)})")
    await cuff.measure({"systolic": 140, "diastolic": 90})
    held = await wait_until_async(lambda: running.held(BP), "the next good reading", timeout=10)
    assert [r.measurement.value_of("systolic").value for r in held] == [140.0]
    assert running.online(BP)


async def test_heart_rate_notifications_leave_one_waiting_reading_per_device(kit, make_source):
    strap = kit.device("hr-strap-1")
    running = await make_source([kit_device(kit, "hr-strap-1")]).start()
    await wait_until_async(lambda: running.online("hr-strap-1"), "the strap online", timeout=20)
    running.book.start_visit(PATIENT, NURSE)
    for bpm in (71, 74, 77, 80):
        await strap.measure({"heart_rate": bpm})
    await wait_until_async(lambda: [r.measurement.value_of("heart_rate").value
                                    for r in running.held("hr-strap-1")] == [80.0],
                           "one pending heart-rate reading holding the newest value", timeout=10,
                           context=lambda: f" ({[r.measurement.summary() for r in running.held('hr-strap-1')]})")


async def test_the_agent_runs_a_kit_from_its_config_file_and_sends_what_the_nurse_confirms(kit, broker, tmp_path):
    """The whole gateway: site config file -> agent -> nurse's page (HTTP, PIN login) -> outbox -> MQTT."""
    section = source_section(kit, tmp_path, [kit_device(kit, BP)])
    path = write_site_config(tmp_path / "site.yaml", broker.port, [section], site="visiting-nurses",
                             agent="kit-01-gw", mqtt={"wait_for_ingest": False})
    agent = Agent(load_site_config(path))
    collector = Collector(broker.port, contract.PERSONAL_FILTER)
    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    try:
        context = await wait_until_async(lambda: agent.runners and agent.runners[0].context, "the source started")
        await wait_until_async(lambda: context.devices[BP].online, "the cuff online", timeout=20)
        page = f"http://{section['page']['listen']}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(f"{page}/api/login", json={"nurse": NURSE, "pin": NURSE_PIN}) as response:
                assert response.status == 200, await response.text()
            async with http.post(f"{page}/api/visits", json={"pseudonym": PATIENT}) as response:
                assert response.status == 201, await response.text()
                visit_id = (await response.json())["id"]
            await kit.device(BP).measure({"systolic": 152, "diastolic": 94, "pulse": 71})

            async def pending() -> list:
                async with http.get(f"{page}/api/state") as state:
                    return (await state.json())["readings"]
            readings = []
            deadline = time.monotonic() + 10
            while not readings and time.monotonic() < deadline:
                readings = await pending()
                await asyncio.sleep(0.05)
            assert [r["device"] for r in readings] == [BP]
            async with http.post(f"{page}/api/readings/{readings[0]['id']}/confirm", json={}) as response:
                assert response.status == 200, await response.text()

        await asyncio.to_thread(collector.wait_for, lambda c: c.envelopes, 15, "the confirmed reading on MQTT")
        envelope = collector.envelopes[0]
        assert (envelope["device"], envelope["kind"], envelope["meta"]) == (BP, "vitals", {"subject": PATIENT})
        metrics = {r["metric"]: r["value"] for r in envelope["readings"]}
        assert metrics["systolic"] == 152.0 and metrics["visit_id"] == visit_id
        assert "Yamada" not in json.dumps(envelope)
        catalog = {m.metric: m.unit for m in agent.catalog().devices[0].metrics}
        assert catalog["systolic"] == "mm[Hg]" and catalog["pulse"] == "/min"
    finally:
        stop.set()
        await asyncio.wait_for(run, 20)
        collector.close()


async def test_a_cuff_that_needs_its_passkey_is_bonded_with_the_configured_one(passkey_kit, make_source):
    cuff = passkey_kit.device(BP)
    wrong = await make_source([kit_device(passkey_kit, BP, passkey="654321")], on_kit=passkey_kit).start()
    await wait_until_async(lambda: wrong.context.errors[(BP, "pairing")] >= 1, "the wrong passkey refused",
                           timeout=30, context=lambda: f" (errors: {dict(wrong.context.errors)})")
    assert not wrong.online(BP) and wrong.error(BP).startswith("pairing")
    await wrong.stop()

    right = await make_source([kit_device(passkey_kit, BP, passkey="123456")], on_kit=passkey_kit,
                              state_dir=wrong.source.state_dir).start()
    await wait_until_async(lambda: right.online(BP), "the bonded cuff online", timeout=30,
                           context=lambda: f" ({right.error(BP)})")
    await cuff.measure({"systolic": 118})
    held = await wait_until_async(lambda: right.held(BP), "a reading from the bonded cuff", timeout=10)
    assert held[0].measurement.value_of("systolic").value == 118.0


async def test_without_a_radio_every_device_shows_why_and_close_is_prompt(kit, make_source):
    running = make_source([kit_device(kit, BP)], hci="tcp-client:127.0.0.1:1")      # nothing listens there
    started = time.monotonic()
    await running.start()                                   # never raises for an unreachable adapter
    assert time.monotonic() - started < 6
    await wait_until_async(lambda: running.error(BP).startswith("adapter:"), "the cuff offline: adapter")
    assert running.context.errors[("_source", "adapter")] >= 1
    stopping = time.monotonic()
    await running.stop()
    assert time.monotonic() - stopping < 2
    assert running.task.done()


async def test_close_stops_every_task_promptly_while_devices_are_connected(kit, make_source):
    devices = [kit_device(kit, d) for d in ("bp-cuff-1", "thermometer-1", "hr-strap-1")]
    running = await make_source(devices).start()
    await wait_until_async(lambda: all(running.online(d["id"]) for d in devices), "three devices online", timeout=30)
    own = {t for t in asyncio.all_tasks() if t.get_name().startswith("ble")}
    assert len(own) >= 5                                    # radio, scanner, three sessions
    stopping = time.monotonic()
    await running.stop()
    assert time.monotonic() - stopping < 3
    assert all(t.done() for t in own)
    await wait_until_async(lambda: not any(d.state()["connected"] for d in kit.devices.values()),
                           "the devices see the gateway gone", timeout=10)


async def test_a_lost_radio_is_opened_again_and_the_devices_come_back(kit, make_source):
    """The HCI transport goes away (a USB dongle pulled, the simulator restarted) and comes back."""
    running = await make_source([kit_device(kit, BP)]).start()
    await wait_until_async(lambda: running.online(BP), "the cuff online", timeout=20)
    await kit.stop()
    await wait_until_async(lambda: running.context.errors[("_source", "radio_lost")] == 1, "the radio given up",
                           timeout=20, context=lambda: f" ({running.error(BP)})")
    assert not running.online(BP) and running.error(BP).startswith("adapter:")
    again = VirtualKit(kit.kit, hci=kit.hci, seed=11)                   # same port, same devices
    await again.start()
    try:
        await wait_until_async(lambda: running.online(BP), "the cuff online on the reopened radio", timeout=20,
                               context=lambda: f" ({running.error(BP)})")
        await again.device(BP).measure({"systolic": 124})
        held = await wait_until_async(lambda: running.held(BP), "a reading after the radio came back", timeout=10)
        assert held[0].measurement.value_of("systolic").value == 124.0
    finally:
        await running.stop()
        await again.stop()
