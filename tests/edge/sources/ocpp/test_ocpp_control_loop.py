"""The controller loop inside the source: grid meter from the agent's latest values, targets sent to a
real 1.6 charge point only when they change, site readings, PV energy in the session record.
Time is compressed: steps are called with simulated timestamps."""

from __future__ import annotations

from edge_agent.sources.base import DeviceBatch, reading
from hinode.contract import SESSION_DEVICE_SUFFIX, Command, CommandStatus, DeviceKind
from tests.edge.sources.ocpp.cp16_peer import (assert_valid_envelopes, eventually, now_ms, open_charge_point,
                                               running_source)

CONTROLLER = {"interval_s": 3600, "grid_meter": {"device": "grid-meter", "metric": "power_total"},
              "pv_meters": [{"device": "pv-inverter", "metric": "power_total"}],
              "enable": {"threshold_w": 0, "delay_s": 60}, "disable": {"threshold_w": 0, "delay_s": 180}}


def meter(context, device: str, kw: float, ts: int) -> None:
    context.latest.update(DeviceBatch(device=device, kind=DeviceKind.METER, profile="m",
                                      readings=[reading(ts, "power_total", kw * 1000, "W")]))


def limits(cp) -> list[tuple[float, int | None]]:
    out = []
    for p in cp.got("SetChargingProfile"):
        period = p["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][0]
        out.append((float(period["limit"]), period.get("number_phases")))
    return out


async def test_pv_surplus_becomes_a_limit_and_pv_energy(make_ocpp_config):
    config = make_ocpp_config(controller=CONTROLLER)
    async with running_source(config) as run:
        source, context = run.source, run.source.context
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            await eventually(lambda: source.chargers["CP1"].link is not None, "CP1 ready")
            await cp.status(1, "SuspendedEVSE")
            await eventually(lambda: source.chargers["CP1"].connectors[1].status == "SuspendedEVSE", "status")
            await eventually(lambda: source.control_idle, "the loop's own steps done")
            t0 = now_ms() + 1_000
            meter(context, "grid-meter", -8.0, t0)          # 8 kW export
            meter(context, "pv-inverter", 9.5, t0)
            await source.control.step(t0)
            assert limits(cp)[-1] == (0.0, 3)               # pv mode waits the enable delay
            decision = await source.control.step(t0 + 61_000)
            target = decision.targets[("CP1", 1)]
            assert target.enabled and target.current_a == 11.5        # 8000 W / (230 V x 3) = 11.59 → 11.5 A
            assert limits(cp)[-1] == (11.5, 3)

            tx = await cp.start_transaction(1, "TAG-ANNA", 10_000, t0 + 62_000)
            await cp.meter_values(1, tx, t0 + 65_000, [
                {"value": "10000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "7935", "measurand": "Power.Active.Import", "unit": "W"}])
            await eventually(lambda: source.chargers["CP1"].connectors[1].power_w == 7935.0, "power seen")
            meter(context, "grid-meter", 0.0, t0 + 70_000)   # the car now takes the surplus
            meter(context, "pv-inverter", 9.5, t0 + 70_000)
            sent = len(limits(cp))
            await source.control.step(t0 + 71_000)
            assert len(limits(cp)) == sent, "an unchanged target is not sent again"

            site = (await eventually(lambda: [b for b in run.of("chargers") if b.readings[0].ts == t0 + 71_000],
                                     "the site batch of the step"))[0]
            values = {r.metric: (r.value, r.unit) for r in site.readings}
            assert values["grid_power"] == (0.0, "W") and values["pv_power"] == (9500.0, "W")
            assert values["ev_power"] == (7935.0, "W") and values["surplus"] == (7935.0, "W")
            assert values["load_power"] == (1565.0, "W")    # 0 + 9500 - 7935
            assert isinstance(values["decision"][0], str) and values["decision"][0]
            charger_batch = [b for b in run.of("CP1") if any(r.metric == "target_current" for r in b.readings)][-1]
            got = {r.metric: r.value for r in charger_batch.readings}
            assert got["target_current"] == 11.5 and got["target_phases"] == 3 and got["decision"]

            await cp.stop_transaction(tx, 10_100, t0 + 80_000)
            record = (await eventually(lambda: run.of("CP1" + SESSION_DEVICE_SUFFIX), "record"))[0]
            got = {r.metric: r.value for r in record.readings}
            # 100 % PV share x 7935 W x 10 s (t0+61 s → t0+71 s) = 0.022042 kWh of 0.1 kWh
            assert abs(got["pv_energy"] - 7935 * 10 / 3_600_000) < 1e-6
            assert abs(got["pv_share"] - 0.2204) < 1e-3
        assert_valid_envelopes(run.batches)


async def test_mode_now_and_a_site_target_command(make_ocpp_config):
    config = make_ocpp_config(controller=CONTROLLER)
    async with running_source(config) as run:
        source = run.source
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            await eventually(lambda: source.chargers["CP1"].link is not None, "CP1 ready")
            await cp.status(1, "Preparing")
            await eventually(lambda: 1 in source.chargers["CP1"].connectors, "connector 1 known")
            command = Command(id="c1", site="s", agent="a", target="CP1", name="set_mode", params={"mode": "now"},
                              issued_ts=now_ms(), expires_ts=now_ms() + 60_000)
            assert (await source.handle_command(command, "CP1")).status == CommandStatus.DONE
            await eventually(lambda: (16.0, 3) in limits(cp), "full current in mode now")
            start, until = now_ms() - 1_000, now_ms() + 3_600_000
            target = Command(id="c2", site="s", agent="a", target="chargers", name="site_target",
                             params={"power_kw": 20, "from_ts": start, "until_ts": until},
                             issued_ts=now_ms(), expires_ts=now_ms() + 60_000)
            assert (await source.handle_command(target, None)).status == CommandStatus.DONE
            await eventually(lambda: any(r.metric == "site_target" and r.value == 20_000.0
                                         for b in run.of("chargers") for r in b.readings), "site_target reading")
    async with running_source(config) as run:             # the site target survives a restart
        assert run.source.control.site_target.power_kw == 20.0
        assert run.source.control.site_target.until_ms == until


async def test_a_rejected_target_is_counted_and_sent_again_without_holding_up_others(make_ocpp_config):
    config = make_ocpp_config(controller=CONTROLLER, chargers=[{"id": "CP1", "password": "pw-CP1", "mode": "now"},
                                                              {"id": "CP2", "password": "pw-CP2", "mode": "now"}])
    async with running_source(config) as run:
        source = run.source
        async with open_charge_point(source.port, "CP1", "pw-CP1") as cp1, \
                open_charge_point(source.port, "CP2", "pw-CP2") as cp2:
            cp1.answer_status["SetChargingProfile"] = "Rejected"
            for cp, name in ((cp1, "CP1"), (cp2, "CP2")):
                await eventually(lambda: source.chargers[name].link is not None, f"{name} ready")
                await cp.status(1, "Preparing")
                await eventually(lambda: 1 in source.chargers[name].connectors, f"{name} connector 1")
            await eventually(lambda: source.control_idle, "the loop's own steps done")
            t0 = now_ms() + 1_000
            await source.control.step(t0)
            assert limits(cp2)[-1] == (16.0, 3) and limits(cp1)[-1] == (16.0, 3)
            sent1, sent2 = len(limits(cp1)), len(limits(cp2))
            await source.control.step(t0 + 10_000)
            assert len(limits(cp1)) == sent1 + 1, "the rejected target goes out again"
            assert len(limits(cp2)) == sent2, "the accepted one does not"
            assert source.context.errors[("CP1", "set_limit_rejected")] >= 2
