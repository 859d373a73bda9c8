"""The GATT seam on the bumble stack against the virtual visit kit, over HCI-over-TCP (the demo's path)."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import datetime

import pytest

from edge_agent.sources.ble import decoders
from edge_agent.sources.ble.link import Advert, LinkError, open_link, uuid16_to_uuid128
from edge_agent.sources.ble.link_bleak import BleakLink
from edge_agent.sources.ble.link_bumble import BumbleLink
from simulators.ble import KIT_DEVICES, VirtualKit
from simulators.ble import encoders
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def kit_and_link(tmp_path, **kit_options):
    kit = VirtualKit(kit="kit-01", hci="tcp-server:127.0.0.1:0", seed=3, **kit_options)
    await kit.start()
    link = open_link("bumble", hci=kit.gateway_hci, adapter=None, key_store=tmp_path / "ble-keys.json")
    try:
        await link.open()
        yield kit, link
    finally:
        await link.close()
        await kit.stop()


async def connect(link, device, timeout_s: float = 5.0):
    advert = await link.scan(lambda a: a.address == device.address, timeout_s)
    assert advert is not None, f"{device.id} not advertising"
    return await link.connect(advert.address, timeout_s)


async def next_value(queue: asyncio.Queue, timeout_s: float = 5.0) -> bytes:
    return await asyncio.wait_for(queue.get(), timeout_s)


async def test_scan_finds_every_device_by_name_and_by_address(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        for device in kit.devices.values():
            by_name = await link.scan(lambda a, d=device: a.name == d.name, 5)
            assert by_name == Advert(device.address, device.name, by_name.rssi)
            by_address = await link.scan(lambda a, d=device: a.address == d.address, 5)
            assert by_address.name == device.name
        assert await link.scan(lambda a: a.name == "No-Such-Device", 0.3) is None
        assert len({d.address for d in kit.devices.values()}) == len(KIT_DEVICES)


async def test_blood_pressure_indication_is_the_encoders_bytes(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        cuff = kit.device("bp-cuff-1")
        connection = await connect(link, cuff)
        assert connection.has(0x2A35) and connection.has(0x2A2B) and not connection.has(0x2A37)
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await connection.subscribe(0x2A35, values.put_nowait)
        await wait_until_async(lambda: cuff.state()["subscribed"], "the cuff to see the subscription")

        taken = await cuff.measure({"systolic": 138, "diastolic": 88, "mean_arterial": 120, "pulse": 60})
        assert taken["delivery"] == "sent"
        expected = encoders.encode_blood_pressure(138, 88, 120, time=datetime.fromisoformat(taken["device_time"]),
                                                  pulse=60, user_id=1)
        assert await next_value(values) == expected


async def test_heart_rate_arrives_by_notification(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        strap = kit.device("hr-strap-1")
        connection = await connect(link, strap)
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await connection.subscribe(0x2A37, values.put_nowait)
        await wait_until_async(lambda: strap.state()["subscribed"], "the strap to see the subscription")
        await strap.measure({"heart_rate": 72})
        measurement = decoders.decode(0x2A37, await next_value(values))
        assert [(v.metric, v.value) for v in measurement.values][0] == ("heart_rate", 72.0)


async def test_the_scales_feature_is_read_and_rescales_the_weight(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        scale = kit.device("scale-1")
        connection = await connect(link, scale)
        feature = await connection.read(0x2A9E)
        assert feature == encoders.encode_weight_feature(weight_resolution_kg=0.05, height_resolution_m=0.001,
                                                         timestamp=True, bmi=True)
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await connection.subscribe(0x2A9D, values.put_nowait)
        await wait_until_async(lambda: scale.state()["subscribed"], "the scale to see the subscription")
        await scale.measure({"weight": 63.4})
        context = decoders.DecodeContext(weight_resolution=decoders.decode_weight_feature(feature))
        weight = decoders.decode(0x2A9D, await next_value(values), context=context)
        assert dict((v.metric, v.value) for v in weight.values)["weight"] == pytest.approx(63.4)
        with pytest.raises(LinkError) as missing:
            await connection.read(0x2A35)
        assert missing.value.code == "gatt"


async def test_setting_the_clock_dates_the_next_reading(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        thermometer = kit.device("thermometer-1")
        connection = await connect(link, thermometer)
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await connection.subscribe(0x2A1C, values.put_nowait)
        await wait_until_async(lambda: thermometer.state()["subscribed"], "the subscription")

        await thermometer.measure()
        unset = decoders.decode(0x2A1C, await next_value(values))
        assert unset.device_time.year == 2020          # nobody set the clock yet

        visit_time = datetime(2026, 11, 29, 10, 30, 0)
        await connection.write(0x2A2B, decoders.encode_current_time(visit_time))
        assert thermometer.state()["clock_set"] is True
        assert decoders.decode_current_time(await connection.read(0x2A2B)).time >= visit_time
        await thermometer.measure({"fever": True})
        dated = decoders.decode(0x2A1C, await next_value(values))
        assert visit_time <= dated.device_time < datetime(2026, 11, 29, 10, 31)
        assert dated.values[0].value >= 38.0


async def test_a_passkey_cuff_pairs_with_the_right_passkey_only(tmp_path):
    async with kit_and_link(tmp_path, pairing_passkey="123456") as (kit, link):
        cuff = kit.device("bp-cuff-1")
        connection = await connect(link, cuff)
        with pytest.raises(LinkError) as unencrypted:
            await connection.subscribe(0x2A35, lambda _v: None)
        assert unencrypted.value.code == "gatt"
        with pytest.raises(LinkError) as wrong:
            await connection.pair("654321")
        assert wrong.value.code == "pairing"
        with pytest.raises(LinkError) as malformed:
            await connection.pair("12345x")
        assert malformed.value.code == "pairing"
        await connection.disconnect()

        connection = await connect(link, cuff)
        await connection.pair("123456")
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await connection.subscribe(0x2A35, values.put_nowait)
        await wait_until_async(lambda: cuff.state()["subscribed"], "the subscription")
        await cuff.measure()
        assert decoders.decode(0x2A35, await next_value(values)).category == "blood_pressure"


async def test_a_bond_survives_a_gateway_restart(tmp_path):
    kit = VirtualKit(kit="kit-01", hci="tcp-server:127.0.0.1:0", pairing_passkey="123456")
    await kit.start()
    cuff = kit.device("bp-cuff-1")
    try:
        first = BumbleLink(kit.gateway_hci, tmp_path / "keys.json")
        await first.open()
        await (await connect(first, cuff)).pair("123456")
        await first.close()

        restarted = BumbleLink(kit.gateway_hci, tmp_path / "keys.json")
        await restarted.open()
        assert restarted.address == first.address      # kept in keys.json.address, so the bond still matches
        connection = await connect(restarted, cuff)
        await connection.pair(None)                    # the stored keys encrypt the link: no passkey needed
        await connection.subscribe(0x2A35, lambda _v: None)
        await restarted.close()

        stranger = BumbleLink(kit.gateway_hci, tmp_path / "other-keys.json")
        await stranger.open()
        connection = await connect(stranger, cuff)
        with pytest.raises(LinkError) as unbonded:
            await connection.pair(None)                # just-works is refused by a cuff that shows a passkey
        assert unbonded.value.code == "pairing"
        await stranger.close()
    finally:
        await kit.stop()


async def test_a_bond_is_reused_on_the_next_connection(tmp_path):
    async with kit_and_link(tmp_path, pairing_passkey="123456") as (kit, link):
        cuff = kit.device("bp-cuff-1")
        connection = await connect(link, cuff)
        await connection.pair("123456")
        await connection.disconnect()
        connection = await connect(link, cuff)
        await connection.pair(None)              # no passkey needed: the stored keys encrypt the link
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await connection.subscribe(0x2A35, values.put_nowait)
        await wait_until_async(lambda: cuff.state()["subscribed"], "the subscription")
        await cuff.measure()
        assert len(await next_value(values)) > 7


async def test_passkey_000000_pairs_and_a_refused_bond_is_forgotten(tmp_path):
    async with kit_and_link(tmp_path, pairing_passkey="000000") as (kit, link):
        cuff = kit.device("bp-cuff-1")
        connection = await connect(link, cuff)
        await connection.pair("000000")          # LE legacy pairing (bumble's SC passkey entry cannot do 0)
        await connection.subscribe(0x2A35, lambda _v: None)
        await connection.disconnect()
        # bumble's virtual cuff does not find a legacy bond again; whatever the reason a device refuses
        # the stored bond, the link forgets it, and the next connection pairs with the passkey
        connection = await connect(link, cuff)
        try:
            await connection.pair("000000")
        except LinkError as refused:
            assert refused.code == "pairing"
            connection = await connect(link, cuff)
            await connection.pair("000000")
        await connection.subscribe(0x2A35, lambda _v: None)


async def test_readings_taken_offline_are_indicated_after_the_next_subscription(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        cuff = kit.device("bp-cuff-1")
        first = await cuff.measure({"systolic": 121})
        second = await cuff.measure({"systolic": 145})
        assert first["delivery"] == second["delivery"] == "stored" and cuff.state()["stored"] == 2
        connection = await connect(link, cuff)
        values: asyncio.Queue[bytes] = asyncio.Queue()
        await connection.subscribe(0x2A35, values.put_nowait)
        systolic = [decoders.decode(0x2A35, await next_value(values)).values[0].value for _ in range(2)]
        assert systolic == [121.0, 145.0]
        await wait_until_async(lambda: cuff.state()["stored"] == 0, "the stored readings to be gone")


async def test_glucose_records_come_through_racp_all_then_from_a_sequence(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        meter = kit.device("glucometer-1")
        for mg_dl in (95, 140, 180):
            await meter.measure({"glucose": mg_dl})
        connection = await connect(link, meter)
        records: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        for uuid in (0x2A18, 0x2A34, 0x2A52):
            await connection.subscribe(uuid, lambda v, u=uuid: records.put_nowait((u, v)))

        async def pull(request: bytes) -> tuple[list, list, object]:
            await connection.write(0x2A52, request)
            measurements, contexts = [], []
            while True:
                uuid, value = await asyncio.wait_for(records.get(), 5)
                if uuid == 0x2A52:
                    return measurements, contexts, decoders.decode_racp(value)
                if uuid == 0x2A34:
                    contexts.append(decoders.decode_glucose_context(value))
                else:
                    measurements.append(decoders.decode(0x2A18, value))

        everything, contexts, response = await pull(decoders.encode_racp_report(None))
        assert [(m.sequence, m.values[0].value) for m in everything] == [(1, 95.0), (2, 140.0), (3, 180.0)]
        assert [sequence for sequence, _text in contexts] == [1, 3]       # odd records carry a meal context
        assert response.response == "success"

        later, _, response = await pull(decoders.encode_racp_report(1))     # sequence >= 2
        assert [m.sequence for m in later] == [2, 3] and response.response == "success"
        none, _, response = await pull(decoders.encode_racp_report(3))
        assert none == [] and response.response == "no_records_found"


async def test_a_sleeping_device_disconnects_and_is_found_again_when_it_wakes(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        cuff = kit.device("bp-cuff-1")
        connection = await connect(link, cuff)
        await cuff.sleep(0.8)
        await asyncio.wait_for(connection.wait_disconnected(), 5)
        assert cuff.state()["advertising"] is False
        with pytest.raises(LinkError) as gone:
            await connection.read(0x2A2B)
        assert gone.value.code == "disconnected"
        assert await link.scan(lambda a: a.address == cuff.address, 0.3) is None
        assert await link.scan(lambda a: a.address == cuff.address, 5) is not None
        connection = await link.connect(cuff.address, 5)
        assert connection.has(0x2A35)


async def test_connecting_to_an_absent_device_is_a_connect_error(tmp_path):
    async with kit_and_link(tmp_path) as (kit, link):
        with pytest.raises(LinkError) as absent:
            await link.connect("F0:00:00:00:00:99", 0.5)
        assert absent.value.code == "connect"
        cuff = kit.device("bp-cuff-1")     # the link is still usable afterwards
        assert (await connect(link, cuff)).has(0x2A35)


async def test_an_unreachable_hci_transport_is_an_adapter_error(tmp_path):
    from hinode.services import free_port
    link = open_link("bumble", hci=f"tcp-client:127.0.0.1:{free_port()}", adapter=None, key_store=tmp_path / "k.json")
    with pytest.raises(LinkError) as refused:
        await link.open()
    assert refused.value.code == "adapter"
    with pytest.raises(LinkError) as no_hci:
        open_link("bumble", hci=None, adapter=None, key_store=tmp_path / "k.json")
    assert no_hci.value.code == "adapter"


def test_open_link_selects_bleak_and_maps_16_bit_uuids():
    link = open_link("bleak", hci=None, adapter="hci0", key_store=None)
    assert isinstance(link, BleakLink)
    assert uuid16_to_uuid128(0x2A35) == "00002a35-0000-1000-8000-00805f9b34fb"
    with pytest.raises(LinkError):
        open_link("bluez", hci=None, adapter=None, key_store=None)


async def test_losing_the_hci_transport_ends_connections_and_fails_scans(tmp_path):
    kit = VirtualKit(kit="kit-01", hci="tcp-server:127.0.0.1:0", device_ids=["hr-strap-1"])
    await kit.start()
    link = open_link("bumble", hci=kit.gateway_hci, adapter=None, key_store=tmp_path / "keys.json")
    await link.open()
    try:
        connection = await connect(link, kit.device("hr-strap-1"))
        await kit.stop()                  # the kit (or a USB dongle) goes away: no disconnection event comes
        await asyncio.wait_for(connection.wait_disconnected(), 5)
        with pytest.raises(LinkError) as lost:
            await link.scan(lambda _a: True, 1)
        assert lost.value.code == "adapter"
    finally:
        await link.close()


async def test_a_corrupt_key_store_means_pairing_again_not_a_crash(tmp_path):
    (tmp_path / "ble-keys.json").write_text("{not json")
    async with kit_and_link(tmp_path, pairing_passkey="123456") as (kit, link):
        connection = await connect(link, kit.device("bp-cuff-1"))
        await connection.pair("123456")
        await connection.subscribe(0x2A35, lambda _v: None)
    set_aside = list(tmp_path.glob("ble-keys.json.unreadable-*"))
    assert len(set_aside) == 1 and set_aside[0].read_text() == "{not json"     # kept for whoever looks
    assert json.loads((tmp_path / "ble-keys.json").read_text())                # the new bond


def test_the_gateway_address_is_random_static_and_kept(tmp_path):
    from edge_agent.sources.ble.link import stable_static_address
    first = stable_static_address(tmp_path / "keys.json")
    assert int(first[:2], 16) >> 6 == 3 and len(first.split(":")) == 6
    assert stable_static_address(tmp_path / "keys.json") == first
    (tmp_path / "keys.json.address").write_text("garbage\n")
    assert stable_static_address(tmp_path / "keys.json") != "garbage"
