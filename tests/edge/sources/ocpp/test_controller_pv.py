"""PV modes of the site controller: how a car's current follows the surplus, with evcc's
enable/disable hysteresis. Cars follow targets one step later (``controller_sim``).

Numbers (230 V, 3 phases: 690 W per A): 6 A = 4140 W; 6000 W -> 8.69 A -> 8.6 A
(targets are truncated to 0.1 A)."""

from __future__ import annotations

from edge_agent.sources.ocpp.controller import (
    Controller, ControllerSettings, DisableSettings, EnableSettings, LoadpointInput, SiteInput)
from tests.edge.sources.ocpp.controller_sim import Car, SimSite

KEY = ("cp1", 1)


def _site(car: Car, **settings) -> SimSite:
    return SimSite(Controller(ControllerSettings(**settings)), [car])


def _charging_car(current_a: float = 6.0, **fields) -> Car:
    car = Car(KEY, **fields)
    car.power_w = current_a * car.phases * 230
    return car


def test_current_follows_a_rising_surplus_within_one_step():
    site = _site(_charging_car(6.0))
    site.pv_w = 6000
    assert site.step(0).targets[KEY].current_a == 8.6
    assert site.target(KEY).reason == "pv surplus 6.0 kW"
    site.pv_w = 9000
    assert site.step(10).targets[KEY].current_a == 13.0      # 9000 / 690 = 13.04
    site.pv_w = 20000
    target = site.step(20).targets[KEY]
    assert (target.current_a, target.reason) == (16.0, "pv surplus 20.0 kW: max current 16 A")
    # the car's own draw is counted back: the grid now exports, the target holds
    assert site.grid_w == 16 * 690 - 20000
    assert site.step(30).targets[KEY].current_a == 16.0


def test_house_load_reduces_the_surplus():
    site = _site(_charging_car(6.0))
    site.pv_w, site.house_w = 9000, 2000
    decision = site.step(0)
    assert decision.surplus_w == 7000
    assert decision.targets[KEY].current_a == 10.1           # 7000 / 690 = 10.14


def test_charging_stops_only_after_the_disable_delay():
    site = _site(_charging_car(10.0))
    site.pv_w = 2000                                         # 2.9 A: below the 6 A minimum
    for now in range(0, 180, 10):
        target = site.step(now).targets[KEY]
        assert (target.current_a, target.enabled) == (6.0, True), now
    assert site.target(KEY).reason == "surplus below 6 A, pausing in 10 s"
    target = site.step(180).targets[KEY]
    assert (target.current_a, target.enabled) == (0.0, False)
    assert target.reason == "paused: surplus below 6 A for 3 min"
    assert site.step(190).targets[KEY].current_a == 0.0
    assert site.target(KEY).reason.startswith("paused: surplus below 6 A for 3 min; waiting for surplus")


def test_disable_timer_restarts_when_the_surplus_recovers_in_between():
    site = _site(_charging_car(10.0))
    site.pv_w = 2000
    site.run(0, 100)
    site.pv_w = 8000                                         # recovers for one step: timer reset
    assert site.step(110).targets[KEY].current_a == 11.5
    site.pv_w = 2000
    for decision in site.run(120, 290):
        assert decision.targets[KEY].current_a == 6.0
    assert site.step(300).targets[KEY].current_a == 0.0      # 120 + 180


def test_charging_starts_only_after_the_enable_delay():
    site = _site(Car(KEY))
    site.pv_w = 5000                                         # 7.2 A possible
    first = site.step(0).targets[KEY]
    assert (first.current_a, first.reason) == (0.0, "waiting for enable delay (1 min left)")
    assert site.step(50).targets[KEY].reason == "waiting for enable delay (10 s left)"
    started = site.step(60).targets[KEY]
    assert (started.current_a, started.enabled, started.reason) == (7.2, True, "pv surplus 5.0 kW")


def test_enable_timer_restarts_when_the_surplus_dips():
    site = _site(Car(KEY))
    site.pv_w = 5000
    site.run(0, 40)
    site.pv_w = 3000                                         # below 4140 W: not enough for 6 A on 3p
    dip = site.step(50).targets[KEY]
    assert dip.reason == "waiting for surplus (3.0 kW of 4.1 kW)"
    site.pv_w = 5000
    for decision in site.run(60, 110):
        assert decision.targets[KEY].current_a == 0.0
    assert site.step(120).targets[KEY].current_a == 7.2      # 60 + 60


def test_negative_enable_threshold_requires_that_much_export():
    site = _site(Car(KEY, phases=1), enable=EnableSettings(threshold_w=-2000, delay_s=0))
    site.pv_w = 1500                                         # enough for 6 A on 1p, not 2 kW
    assert site.step(0).targets[KEY].reason == "waiting for surplus (1.5 kW of 2.0 kW)"
    site.pv_w = 2100
    assert site.step(10).targets[KEY].current_a == 9.1       # 2100 / 230 = 9.13


def test_disable_threshold_tolerates_that_much_grid_import():
    site = _site(_charging_car(6.0), disable=DisableSettings(threshold_w=1000, delay_s=180))
    site.pv_w = 3500                                         # 640 W import at 6 A: tolerated
    for decision in site.run(0, 600):
        assert decision.targets[KEY].current_a == 6.0
    assert site.grid_w == 640
    site.pv_w = 3000                                         # 1140 W import: not tolerated
    site.run(610, 780)
    assert site.target(KEY).current_a == 6.0
    assert site.step(790).targets[KEY].current_a == 0.0


def test_minpv_never_pauses_and_adds_surplus_on_top():
    site = _site(Car(KEY, mode="minpv"))
    for decision in site.run(0, 3600, 60):                  # an hour of night
        target = decision.targets[KEY]
        assert (target.current_a, target.enabled) == (6.0, True)
    assert site.target(KEY).reason == "min current 6 A (pv surplus 0.0 kW)"
    site.pv_w = 10000
    assert site.step(3660).targets[KEY].current_a == 14.4    # 10000 / 690 = 14.49


def test_now_charges_at_max_current_without_any_pv():
    site = _site(Car(KEY, mode="now", max_current_a=32))
    for decision in site.run(0, 600, 60):
        target = decision.targets[KEY]
        assert (target.current_a, target.phases, target.reason) == (32.0, 3, "now: max current 32 A")
    assert site.grid_w == 32 * 690


def test_off_and_unplugged_loadpoints_get_nothing():
    off = Car(("cp1", 1), mode="off")
    unplugged = Car(("cp2", 1), mode="now", connected=False)
    site = SimSite(Controller(ControllerSettings()), [off, unplugged], pv_w=20000)
    decision = site.step(0)
    assert decision.targets[off.key].current_a == 0.0
    assert decision.targets[off.key].reason == "mode off"
    assert decision.targets[unplugged.key].reason == "no vehicle connected"
    assert not decision.targets[unplugged.key].enabled


def test_unplugging_forgets_the_pv_state():
    car = _charging_car(10.0)
    site = _site(car)
    site.pv_w = 8000
    site.step(0)
    car.connected, car.power_w = False, 0.0
    site.step(10)
    car.connected = True                                     # a new car: waits for the enable delay again
    assert site.step(20).targets[KEY].reason == "waiting for enable delay (1 min left)"


def test_user_limit_caps_or_pauses():
    def target(user_limit_a):
        lp = LoadpointInput(KEY, "now", connected=True, charging=False, power_w=0, phases_active=3,
                            user_limit_a=user_limit_a)
        return Controller(ControllerSettings()).step(0, SiteInput(grid_w=0, pv_w=0), [lp]).targets[KEY]

    assert (target(10).current_a, target(10).reason) == (10.0, "now: 10 A, capped by user limit")
    assert (target(4).current_a, target(4).reason) == (
        0.0, "paused: user limit 4 A is below min current 6 A")
    assert target(0).current_a == 0.0
    assert target(None).current_a == 16.0


def test_same_inputs_same_decisions():
    def day() -> list:
        site = _site(_charging_car(6.0))
        out = []
        for now in range(0, 3600, 30):
            site.pv_w = 3000 + (now * 7919) % 6000
            out.append(site.step(now))
        return out

    assert day() == day()
