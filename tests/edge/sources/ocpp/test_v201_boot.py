"""OCPP 2.0.1 handler: boot, device-model configuration, authorization and protocol errors, against
the real ``ocpp`` library as the charging station over real websockets."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from ocpp.v201 import call
from ocpp.v201.datatypes import IdTokenType

from edge_agent.sources.ocpp.model import BootInfo, RateUnit
from tests.edge.sources.ocpp.v201_peer import FAST, Csms, SilentStation, eventually

pytestmark = pytest.mark.timeout(30)

FULL_MODEL = {"SmartChargingCtrlr.RateUnit": "A,W", "SmartChargingCtrlr.Phases3to1": "true"}


async def test_boot_reads_capabilities_sets_sampling_then_ready():
    async with Csms() as csms:
        peer = await csms.station(device_model=FULL_MODEL, unknown_components={"AlignedDataCtrlr"}, evses=2)
        answer = await peer.boot()
        assert answer.status == "Accepted" and answer.interval == 60
        assert csms.events.boots == [BootInfo(vendor="Hinode", model="WB-201", serial="SN-7", firmware="2.4.1")]
        connection = csms.connections["CP-201"]
        await eventually(lambda: csms.events.ready == [connection], "on_ready once")

        asked = [(item["component"]["name"], item["variable"]["name"])
                 for item in peer.requests["GetVariables"][0]["get_variable_data"]]
        assert asked == [("SmartChargingCtrlr", "RateUnit"), ("SmartChargingCtrlr", "Phases3to1")]
        assert connection.capabilities.rate_units == (RateUnit.AMPS, RateUnit.WATTS)
        assert connection.capabilities.phase_switch is True
        probed = [item["component"]["evse"]["id"] for item in peer.requests["GetVariables"][1]["get_variable_data"]]
        assert probed == [1, 2, 3, 4]
        assert connection.capabilities.connectors == 2            # EVSE 3 and 4: UnknownComponent

        # what the station's device model holds now: sampling as the settings say
        assert peer.device_model["SampledDataCtrlr.TxUpdatedInterval"] == "15"
        assert peer.device_model["SampledDataCtrlr.TxUpdatedMeasurands"] == (
            "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Current.Offered,Voltage,SoC")
        assert peer.device_model["SampledDataCtrlr.TxStartedMeasurands"] == "Energy.Active.Import.Register"
        # the station has no AlignedDataCtrlr: refused, kept out, and still ready
        assert "AlignedDataCtrlr.Interval" not in peer.device_model
        assert connection.configuration_results["AlignedDataCtrlr.Interval"] == "UnknownComponent"
        assert connection.configuration_results["SampledDataCtrlr.TxUpdatedInterval"] == "Accepted"
        assert not csms.events.protocol_errors


async def test_station_with_watts_only_and_no_device_model_messages():
    async with Csms() as csms:
        peer, connection = await csms.booted(device_model={"SmartChargingCtrlr.RateUnit": "W"})
        assert connection.capabilities.rate_units == (RateUnit.WATTS,)
        assert connection.capabilities.phase_switch is False        # Phases3to1 unknown: default

        silent = await csms.station("CP-OLD", peer_class=SilentStation)
        await silent.boot()
        old = csms.connections["CP-OLD"]
        await eventually(lambda: old in csms.events.ready, "the station without device model to be ready")
        assert (old.capabilities.rate_units, old.capabilities.connectors) == ((RateUnit.AMPS,), 1)
        # SetVariables refused as a whole: tried once more item by item, each NotImplemented
        set_variables = [frame for frame in silent.frames if frame[0] == 2 and frame[2] == "SetVariables"]
        assert [len(frame[3]["setVariableData"]) for frame in set_variables] == [6, 1, 1, 1, 1, 1, 1]
        assert old.configuration_results["SampledDataCtrlr.TxUpdatedInterval"] == "NotImplemented"
        assert not silent.requests


async def test_station_that_leaves_the_device_model_unanswered_is_ready_with_defaults():
    async with Csms(settings=replace(FAST, response_timeout_s=0.3)) as csms:
        peer = await csms.station(device_model=FULL_MODEL)
        peer.held.add("GetVariables")           # answers nothing until released
        await peer.boot()
        connection = csms.connections["CP-201"]
        await eventually(lambda: connection in csms.events.ready, "ready after the timeouts")
        assert connection.capabilities.rate_units == (RateUnit.AMPS,)
        assert set(connection.configuration_results.values()) == {"NoAnswer"}
        peer.held.clear()
        peer.release.set()
        assert (await peer.call(call.Heartbeat())).current_time


async def test_pending_boot_gets_no_configuration():
    async with Csms(settings=replace(FAST, boot_status="Pending")) as csms:
        peer = await csms.station()
        answer = await peer.boot()
        assert answer.status == "Pending"
        await peer.call(call.Heartbeat())       # one more round trip: nothing was started meanwhile
        assert not peer.requests and not csms.events.ready


async def test_authorize_accepts_known_tags_only():
    async with Csms() as csms:
        peer, _ = await csms.booted()
        known = await peer.call(call.Authorize(id_token=IdTokenType(id_token="04A1B2C3", type="ISO14443")))
        unknown = await peer.call(call.Authorize(id_token=IdTokenType(id_token="DEADBEEF", type="ISO14443")))
        assert known.id_token_info["status"] == "Accepted"
        assert unknown.id_token_info["status"] == "Invalid"
        assert csms.events.authorized == ["04A1B2C3", "DEADBEEF"]


@pytest.mark.parametrize("frame, unique_id, code", [
    ("this is not json", "-1", "FormatViolation"),
    ('{"not": "a list"}', "-1", "ProtocolError"),
    ('[9, "m-1", "Heartbeat", {}]', "m-1", "PropertyConstraintViolation"),
    ('[2, "m-2", ["Heartbeat"], {}]', "m-2", "FormatViolation"),
    # BootNotification without vendorName and reason / with a number for the model / with an extra field
    ('[2, "m-3", "BootNotification", {"chargingStation": {"model": "X"}}]', "m-3", "ProtocolError"),
    ('[2, "m-4", "BootNotification", {"chargingStation": {"model": 7, "vendorName": "V"}, "reason": "PowerUp"}]',
     "m-4", "TypeConstraintViolation"),
    ('[2, "m-5", "Heartbeat", {"beat": 1}]', "m-5", "FormatViolation"),
    ('[2, "m-6", "TransactionEvent", {"eventType": "Started", "timestamp": "yesterday", "triggerReason": "Authorized",'
     ' "seqNo": 0, "transactionInfo": {"transactionId": "t"}, "evse": {"id": 1}}]', "m-6", "FormatViolation"),
    # a 2.0.1 action nobody handles here, and one that is not 2.0.1 at all
    ('[2, "m-7", "SignCertificate", {"csr": "x"}]', "m-7", "NotImplemented"),
    ('[2, "m-8", "StartTransaction", {"connectorId": 1}]', "m-8", "NotSupported"),
])
async def test_bad_frames_get_a_callerror_and_the_connection_keeps_working(frame, unique_id, code):
    async with Csms() as csms:
        peer, _ = await csms.booted()
        await peer.send_raw(frame)
        error = await eventually(lambda: peer.call_errors(unique_id), f"a CALLERROR for {frame}")
        assert error[0][2] == code
        assert csms.events.protocol_errors == {code: 1}
        heartbeat = await peer.call(call.Heartbeat())
        assert heartbeat.current_time.endswith("Z")
        assert csms.events.protocol_errors == {code: 1}


async def test_errors_are_counted_by_code():
    async with Csms() as csms:
        peer, _ = await csms.booted()
        for unique_id in ("g-1", "g-2"):
            await peer.send_raw(json.dumps([2, unique_id, "SignCertificate", {"csr": "x"}]))
        await peer.send_raw("{{{")
        await eventually(lambda: peer.call_errors("g-2") and peer.call_errors("-1"), "three CALLERRORs")
        assert csms.events.protocol_errors == {"NotImplemented": 2, "FormatViolation": 1}


async def test_notify_report_and_other_notifications_are_answered():
    async with Csms() as csms:
        peer, connection = await csms.booted()
        report = [
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"},
             "variable_attribute": [{"type": "Actual", "value": "W"}],
             "variable_characteristics": {"data_type": "MemberList", "supports_monitoring": False}},
            {"component": {"name": "SmartChargingCtrlr"},
             "variable": {"name": "Entries", "instance": "ChargingProfiles"},
             "variable_attribute": [{"value": "0"}],
             "variable_characteristics": {"data_type": "integer", "max_limit": 24, "supports_monitoring": False}},
            {"component": {"name": "EVSE", "evse": {"id": 3}}, "variable": {"name": "Available"},
             "variable_attribute": [{"value": "true"}],
             "variable_characteristics": {"data_type": "boolean", "supports_monitoring": False}},
        ]
        await peer.call(call.NotifyReport(request_id=1, generated_at="2026-11-29T08:00:00Z", seq_no=0,
                                          report_data=report))
        caps = connection.capabilities
        assert (caps.rate_units, caps.max_profiles, caps.connectors) == ((RateUnit.WATTS,), 24, 3)

        await peer.call(call.NotifyEvent(generated_at="2026-11-29T08:00:00Z", seq_no=0, event_data=[
            {"event_id": 1, "timestamp": "2026-11-29T08:00:00Z", "trigger": "Alerting", "actual_value": "true",
             "event_notification_type": "HardWiredNotification", "component": {"name": "Connector"},
             "variable": {"name": "Problem"}}]))
        await peer.call(call.SecurityEventNotification(type="FirmwareUpdated", timestamp="2026-11-29T08:00:00Z"))
        await peer.call(call.FirmwareStatusNotification(status="Installed"))
        transfer = await peer.call(call.DataTransfer(vendor_id="com.example", message_id="x", data="y"))
        assert transfer.status == "UnknownVendorId"
        assert not csms.events.protocol_errors
