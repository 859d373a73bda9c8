"""The site side of the controller: surplus without a grid meter, the site-level target,
residual power, PV shares for the sessions' pv_energy, and the decision's reason."""

from __future__ import annotations

import pytest

from edge_agent.sources.ocpp.controller import (
    Controller, ControllerSettings, LoadpointInput, SiteInput)
from tests.edge.sources.ocpp.controller_cars import charging_car
from tests.edge.sources.ocpp.controller_sim import Car, SimSite

A, B, C = ("cp-a", 1), ("cp-b", 1), ("cp-c", 2)


def test_without_grid_meter_the_surplus_is_estimated_from_pv():
    car = charging_car(A, 6.0)
    site = SimSite(Controller(ControllerSettings()), [car], pv_w=5000, house_w=800, grid_meter=False)
    decision = site.step(0)
    # evcc: grid ~ EV power - PV (the house is invisible without a grid meter)
    assert decision.grid_estimated
    assert decision.grid_w == 4140 - 5000
    assert decision.surplus_w == 5000
    assert decision.targets[A].current_a == 7.2              # 5000 / 690 = 7.25
    assert decision.reason == "pv surplus 5.0 kW; no grid meter: estimated from pv"


def test_without_any_meter_pv_charging_stops_but_now_goes_on():
    pv = charging_car(A, 10.0)
    now = Car(B, mode="now")
    site = SimSite(Controller(ControllerSettings()), [pv, now], pv_w=20000, grid_meter=False, pv_meter=False)
    first = site.step(0)
    assert first.reason == "no grid or pv meter: surplus unknown"
    assert first.surplus_w == 0.0 and first.grid_w is None
    assert first.targets[A].current_a == 6.0
    assert first.targets[B].current_a == 16.0
    later = site.run(10, 180)[-1]
    assert later.targets[A].current_a == 0.0
    assert later.targets[B].current_a == 16.0


def test_site_target_replaces_the_surplus_while_set():
    car = charging_car(A, 6.0)
    site = SimSite(Controller(ControllerSettings()), [car], pv_w=20000, site_target_w=8000)
    decision = site.step(0)
    assert decision.available_w == 8000
    assert decision.targets[A].current_a == 11.5             # 8000 / 690 = 11.59
    assert decision.reason == "site target 8.0 kW"
    site.pv_w = 0                                            # no local PV: the target still holds
    assert site.step(10).targets[A].current_a == 11.5
    site.pv_w, site.site_target_w = 20000, None              # cleared: back to the surplus
    assert site.step(20).targets[A].current_a == 16.0


def test_site_target_is_shared_by_priority_and_starts_a_car_after_the_enable_delay():
    first = Car(A, priority=1)
    second = Car(B)
    site = SimSite(Controller(ControllerSettings()), [first, second], site_target_w=12000)
    site.run(0, 50)
    decision = site.step(60)
    assert decision.targets[A].current_a == 16.0             # 11040 W
    assert decision.targets[B].current_a == 0.0              # 960 W left: not enough for 6 A
    assert sum(t.current_a * t.phases * 230 for t in decision.targets.values()) <= 12000


def test_residual_power_keeps_that_much_feed_in():
    car = charging_car(A, 6.0)
    site = SimSite(Controller(ControllerSettings(residual_w=500)), [car], pv_w=9000)
    decision = site.step(0)
    assert decision.surplus_w == 8500
    assert decision.targets[A].current_a == 12.3             # 8500 / 690 = 12.32
    site.run(10, 100)
    assert site.grid_w == pytest.approx(12.3 * 690 - 9000)   # -513 W: about 500 W fed in


def test_pv_share_splits_the_pv_covered_part_pro_rata():
    first = charging_car(A, 16.0, mode="now")
    second = charging_car(B, 16.0, mode="now")
    parked = Car(C, mode="now", connected=False)
    controller = Controller(ControllerSettings())
    site = SimSite(controller, [first, second, parked], pv_w=6000, house_w=1000)
    site.step(0)
    # grid = 1000 + 2 x 11040 - 6000 = 17080 W; EVs draw 22080 W, of which 5000 W is PV
    shares = controller.pv_share()
    assert shares[A] == pytest.approx(5000 / 22080)          # 0.2264
    assert shares[B] == pytest.approx(5000 / 22080)
    assert shares[C] == 0.0
    site.pv_w = 30000                                        # exporting: all of it is PV
    site.step(10)
    assert controller.pv_share() == {A: 1.0, B: 1.0, C: 0.0}
    site.pv_w = 0                                            # night
    site.step(20)
    assert controller.pv_share()[A] == 0.0


def test_pv_share_counts_the_site_target_as_pv():
    car = charging_car(A, 16.0, mode="now")
    controller = Controller(ControllerSettings())
    SimSite(controller, [car], site_target_w=5520).step(0)
    assert controller.pv_share()[A] == pytest.approx(0.5)    # 5520 of 11040 W


def test_pv_share_before_any_step_is_empty():
    assert Controller(ControllerSettings()).pv_share() == {}


def test_pure_step_without_loadpoints():
    decision = Controller(ControllerSettings()).step(0, SiteInput(grid_w=-3000, pv_w=5000), [])
    assert (decision.targets, decision.surplus_w, decision.reason) == ({}, 3000, "pv surplus 3.0 kW")


def test_unknown_mode_counts_as_off():
    lp = LoadpointInput(A, "turbo", connected=True, charging=True, power_w=4000, phases_active=3)
    target = Controller(ControllerSettings()).step(0, SiteInput(grid_w=0, pv_w=0), [lp]).targets[A]
    assert (target.current_a, target.reason) == (0.0, "unknown mode 'turbo': off")


def test_a_broken_grid_reading_counts_as_no_grid_meter():
    lp = LoadpointInput(A, "pv", connected=True, charging=True, power_w=4140, phases_active=3)
    decision = Controller(ControllerSettings()).step(0, SiteInput(grid_w=float("nan"), pv_w=5000), [lp])
    assert decision.grid_estimated and decision.surplus_w == 5000
    assert decision.targets[A].current_a == 7.2


def test_negative_or_missing_charger_power_counts_as_nothing():
    lp = LoadpointInput(A, "pv", connected=True, charging=True, power_w=float("nan"), phases_active=0)
    decision = Controller(ControllerSettings()).step(0, SiteInput(grid_w=-5000, pv_w=None), [lp])
    assert decision.ev_power_w == 0.0
    target = decision.targets[A]
    assert (target.current_a, target.phases) == (7.2, 3)     # unknown phases: 3, as OCPP assumes


def test_clock_stepping_back_restarts_a_timer_instead_of_freezing_it():
    car = charging_car(A, 10.0)
    site = SimSite(Controller(ControllerSettings()), [car], pv_w=2000)
    site.run(1000, 1100)
    site.run(0, 170)                                          # the clock jumped back 1100 s
    assert site.target(A).current_a == 6.0
    assert site.step(180).targets[A].current_a == 0.0


def test_min_current_above_max_current_pauses_with_a_reason():
    lp = LoadpointInput(A, "now", connected=True, charging=False, power_w=0, phases_active=3,
                        min_current_a=6, max_current_a=5)
    target = Controller(ControllerSettings()).step(0, SiteInput(grid_w=0, pv_w=0), [lp]).targets[A]
    assert (target.current_a, target.reason) == (0.0, "paused: max current 5 A is below min current 6 A")
