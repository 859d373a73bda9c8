"""Sessions across network loss and agent restarts: late messages with old timestamps land on the
right session, and each finished session is one record."""

from __future__ import annotations

from edge_agent.sources.ocpp.sessions import SessionStore
from edge_agent.sources.ocpp.source import RECORD_COMMIT_S
from hinode.contract import SESSION_DEVICE_SUFFIX
from tests.edge.sources.ocpp.cp16_peer import eventually, now_ms, open_charge_point, running_source

SESSIONS = "CP1" + SESSION_DEVICE_SUFFIX


def _energy(wh: int, power_w: int) -> list[dict]:
    return [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"}]


def _values(batch) -> dict:
    return {r.metric: r.value for r in batch.readings}


async def test_reconnect_with_queued_messages_and_old_timestamps_gives_one_record(make_ocpp_config):
    start = now_ms() - 3_600_000            # the charger was offline for most of an hour
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            tx = await cp.start_transaction(2, "TAG-BEN", meter_start_wh=5_000, ts_ms=start)
            await cp.meter_values(2, tx, start + 60_000, _energy(5_300, 3_600))
        await eventually(lambda: not run.source.context.devices["CP1"].online, "CP1 offline")
        # back without a BootNotification (only the network was gone), sending its queue
        async with open_charge_point(run.source.port, "CP1", "pw-CP1", boot=False) as cp:
            await cp.meter_values(2, tx, start + 600_000, _energy(7_000, 10_800))
            await cp.meter_values(2, tx, start + 1_200_000, _energy(8_200, 4_000))
            await cp.stop_transaction(tx, meter_stop_wh=9_100, ts_ms=start + 1_800_000, reason="EVDisconnected")
            records = await eventually(lambda: run.of(SESSIONS), "the session record")
            await cp.stop_transaction(tx, meter_stop_wh=9_100, ts_ms=start + 1_800_000)    # sent twice
            assert run.source.context.devices["CP1"].online
            await eventually(lambda: run.source.chargers["CP1"].link is not None, "CP1 ready again without a boot")
            assert len(cp.got("GetConfiguration")) == 1
        assert len(run.of(SESSIONS)) == 1
        values = _values(records[0])
        assert records[0].readings[0].ts == start + 1_800_000
        assert values["start_ts"] == start and values["stop_ts"] == start + 1_800_000
        assert values["energy"] == 4.1 and values["peak_power"] == 10_800.0 and values["duration"] == 1800.0
        assert records[0].meta["evse"] == "2"
        late = [b for b in run.of("CP1") if any(r.metric == "energy_import" and r.ts == start + 600_000
                                                for r in b.readings)]
        assert late, "a late meter value keeps its own timestamp"


async def test_agent_restart_mid_session_completes_it_with_the_right_energy(make_ocpp_config):
    config = make_ocpp_config()
    start = now_ms() - 900_000
    async with running_source(config) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            tx = await cp.start_transaction(1, "TAG-ANNA", meter_start_wh=20_000, ts_ms=start)
            await cp.meter_values(1, tx, start + 60_000, _energy(20_500, 7_000))
            run.source.add_pv_energy("CP1", 1, 0.2)
    async with running_source(config) as run:           # a new Source on the same data
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            await cp.meter_values(1, tx, start + 300_000, _energy(21_500, 9_000))
            batch = await eventually(lambda: [b for b in run.of("CP1") if "session_energy" in _values(b)], "meter")
            assert _values(batch[-1])["session_energy"] == 1.5
            await cp.stop_transaction(tx, meter_stop_wh=22_000, ts_ms=start + 600_000)
            records = await eventually(lambda: run.of(SESSIONS), "the session record")
    values = _values(records[0])
    assert values["energy"] == 2.0 and values["peak_power"] == 9_000.0
    assert values["pv_energy"] == 0.2 and values["pv_share"] == 0.1
    assert records[0].meta["id_tag"] == "TAG-ANNA"


async def test_a_record_not_yet_committed_goes_out_again_after_a_restart(make_ocpp_config):
    config = make_ocpp_config()
    async with running_source(config) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            tx = await cp.start_transaction(1, "TAG-ANNA", 0, now_ms() - 10_000)
            await cp.stop_transaction(tx, 1_000, now_ms())
            first = await eventually(lambda: run.of(SESSIONS), "the record")
    # closed within RECORD_COMMIT_S of yielding it: the agent may not have committed it yet
    async with running_source(config) as run:
        again = await eventually(lambda: run.of(SESSIONS), "the record again")
        assert _values(again[0]) == _values(first[0]) and again[0].readings[0].ts == first[0].readings[0].ts
        await eventually(lambda: not pending_records_in(config), "the record deleted after its commit time",
                         timeout=RECORD_COMMIT_S * 3)
    async with running_source(config) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            await cp.authorize("TAG-ANNA")
        assert not run.of(SESSIONS), "a committed record is not sent a third time"


def pending_records_in(config) -> list:
    store = SessionStore(config.sessions_db)
    store.open()
    try:
        return store.pending_records()
    finally:
        store.close()


async def test_a_session_that_lost_its_stop_is_closed_when_the_connector_starts_another(make_ocpp_config):
    start = now_ms() - 7_200_000
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            old = await cp.start_transaction(1, "TAG-ANNA", 1_000, start)
            await cp.meter_values(1, old, start + 60_000, _energy(1_700, 3_000))
            new = await cp.start_transaction(1, "TAG-BEN", 2_000, start + 3_600_000)
            records = await eventually(lambda: run.of(SESSIONS), "the abandoned session's record")
            values = _values(records[0])
            assert values["session_id"] == str(old) and values["stop_reason"] == "Other"
            assert values["energy"] == 0.7 and values["stop_ts"] == start + 60_000
            await cp.stop_transaction(new, 2_500, start + 3_700_000)
            await eventually(lambda: len(run.of(SESSIONS)) == 2, "the new session's record")
        assert run.source.context.errors[("CP1", "session_abandoned")] == 1
