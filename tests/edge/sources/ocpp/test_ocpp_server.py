"""The central system's port: who may connect (security profiles 0-3, unknown chargers, subprotocols),
reconnects replacing a connection, and one misbehaving charger never disturbing another."""

from __future__ import annotations

import asyncio
import json
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from tests.edge.sources.ocpp.cp16_peer import basic_auth, eventually, now_ms, open_charge_point, running_source
from tests.edge.sources.ocpp.tls_files import make_ca_and_client


@pytest.mark.parametrize("policy, boot_status", [("pending", "Pending"), ("rejected", "Rejected"),
                                                 ("accept", "Accepted")])
async def test_unknown_charger_gets_the_configured_boot_status(make_ocpp_config, policy, boot_status):
    async with running_source(make_ocpp_config(unknown_chargers=policy)) as run:
        async with open_charge_point(run.source.port, "STRANGER", "whatever") as cp:
            assert cp.boot_answer.status == boot_status
            if policy == "accept":
                await eventually(lambda: run.source.context.devices["STRANGER"].online, "the stranger online")
                await cp.status(1, "Available")
                await eventually(lambda: run.of("STRANGER"), "a batch of the accepted stranger")
            else:
                await cp.status(1, "Available")
                assert "STRANGER" not in run.source.context.devices and not run.of("STRANGER")
                assert not cp.got("GetConfiguration")
        assert run.source.context.errors[("_source", f"unknown_charger_{policy}")] == 1


async def test_wrong_password_is_refused_with_401_and_counted(make_ocpp_config, caplog):
    async with running_source(make_ocpp_config()) as run:
        for headers in (basic_auth("CP1", "not-the-password"), basic_auth("CP2", "pw-CP1"), None):
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"ws://127.0.0.1:{run.source.port}/CP1", subprotocols=["ocpp1.6"],
                              additional_headers=headers)
            assert refused.value.response.status_code == 401
        assert run.source.context.errors[("CP1", "auth_failed")] == 3
        assert "not-the-password" not in caplog.text
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:     # the right one still works
            assert cp.boot_answer.status == "Accepted"


async def test_connection_without_an_ocpp_subprotocol_is_closed_with_a_reason(make_ocpp_config):
    async with running_source(make_ocpp_config(security_profile=0)) as run:
        for offered in (None, ["wamp"]):
            ws = await connect(f"ws://127.0.0.1:{run.source.port}/CP1", subprotocols=offered)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1002 and "ocpp1.6" in closed.value.rcvd.reason
        assert run.source.context.errors[("CP1", "no_subprotocol")] == 2


async def test_path_prefix_and_a_bad_path(make_ocpp_config):
    async with running_source(make_ocpp_config(path_prefix="/ocpp/")) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1", path_prefix="/ocpp") as cp:
            assert cp.boot_answer.status == "Accepted"
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://127.0.0.1:{run.source.port}/other/CP1", subprotocols=["ocpp1.6"],
                          additional_headers=basic_auth("CP1", "pw-CP1"))
        assert refused.value.response.status_code == 404
        assert run.source.context.errors[("_source", "bad_path")] == 1


async def test_tls_profile_2_with_a_self_signed_certificate(make_ocpp_config, self_signed_tls):
    cert, key = self_signed_tls
    config = make_ocpp_config(security_profile=2, tls={"cert": str(cert), "key": str(key)})
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with running_source(config) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1", scheme="wss", ssl=client_tls) as cp:
            assert cp.boot_answer.status == "Accepted"
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"wss://127.0.0.1:{run.source.port}/CP2", subprotocols=["ocpp1.6"], ssl=client_tls,
                          additional_headers=basic_auth("CP2", "wrong"))
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidMessage):     # plain ws on the TLS port gets no HTTP answer
            await connect(f"ws://127.0.0.1:{run.source.port}/CP1", subprotocols=["ocpp1.6"],
                          additional_headers=basic_auth("CP1", "pw-CP1"), open_timeout=2)


async def test_tls_profile_3_takes_the_charger_id_from_the_client_certificate(make_ocpp_config, self_signed_tls,
                                                                             tmp_path):
    cert, key = self_signed_tls
    ca, client_cert, client_key = make_ca_and_client(tmp_path, "CP1")
    config = make_ocpp_config(security_profile=3, tls={"cert": str(cert), "key": str(key), "ca": str(ca)})
    client_tls = ssl.create_default_context(cafile=str(cert))
    client_tls.load_cert_chain(client_cert, client_key)
    async with running_source(config) as run:
        async with open_charge_point(run.source.port, "CP1", scheme="wss", ssl=client_tls) as cp:
            assert cp.boot_answer.status == "Accepted"
        with pytest.raises(InvalidStatus) as refused:        # CP1's certificate cannot speak for CP2
            await connect(f"wss://127.0.0.1:{run.source.port}/CP2", subprotocols=["ocpp1.6"], ssl=client_tls)
        assert refused.value.response.status_code == 403
        assert run.source.context.errors[("CP2", "auth_failed")] == 1


async def test_a_second_connection_replaces_the_first(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as first:
            async with open_charge_point(run.source.port, "CP1", "pw-CP1") as second:
                await eventually(lambda: first._connection.close_code == 4000, "the old socket closed")
                assert (await second.authorize("TAG-ANNA")) == "Accepted"
                assert run.source.context.devices["CP1"].online
        assert run.source.context.errors[("CP1", "replaced")] == 1


async def _answer(ws) -> list:
    """The next answer frame; requests of the central system (this raw socket ignores them) are skipped."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame[0] != 2:
            return frame


async def test_malformed_frames_get_callerror_and_another_charger_keeps_going(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP2", "pw-CP2") as healthy:
            ws = await connect(f"ws://127.0.0.1:{run.source.port}/CP1", subprotocols=["ocpp1.6"],
                               additional_headers=basic_auth("CP1", "pw-CP1"))
            frames = {
                "not json": ("-1", "FormationViolation"),
                '[2, "m1", "StartTransaction", {"connectorId": "one"}]': ("m1", "TypeConstraintViolation"),
                '[2, "m2", "Heartbeat", {"extra": 1}]': ("m2", "FormationViolation"),
                '[2, "m3", "BootNotification", {}]': ("m3", "ProtocolError"),
                '[2, "m4", "GetConfiguration", {}]': ("m4", "NotImplemented"),
                '[2, "m5", "NoSuchAction", {}]': ("m5", "NotSupported"),
            }
            for frame, (unique_id, code) in frames.items():
                await ws.send(frame)
                answer = await _answer(ws)
                assert answer[:3] == [4, unique_id, code], (frame, answer)
                assert (await healthy.authorize("TAG-BEN")) == "Accepted"
            await ws.send('[2, "ok", "Heartbeat", {}]')       # still connected and served
            assert (await _answer(ws))[:2] == [3, "ok"]
            await ws.close()
        errors = run.source.context.errors
        assert errors[("CP1", "ocpp_FormationViolation")] == 2
        assert errors[("CP1", "ocpp_TypeConstraintViolation")] == 1
        assert errors[("CP1", "ocpp_ProtocolError")] == 1 and errors[("CP1", "ocpp_NotImplemented")] == 1
        assert not any(device == "CP2" for device, _ in errors)


async def test_port_in_use_is_a_clear_error(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        from edge_agent.sources.ocpp import Source
        from tests.edge.sources.conftest import make_context

        other = Source(make_ocpp_config(port=run.source.port), make_context("other"))
        with pytest.raises(OSError, match="cannot listen"):
            await other.connect()
        await other.close()


async def test_boot_is_reported_with_the_message_time(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            ts = now_ms() - 3_600_000
            await cp.status(2, "Faulted", error_code="GroundFailure", ts_ms=ts)
            batch = await eventually(lambda: [b for b in run.of("CP1") if b.meta["evse"] == "2"], "status batch")
            got = {r.metric: (r.value, r.ts) for r in batch[0].readings}
            assert got["status"] == ("Faulted", ts) and got["error_code"] == ("GroundFailure", ts)
