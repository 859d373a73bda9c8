"""1p/3p switching (evcc's pvScalePhases) with the maintainer's example from evcc#32137:
min 6 A, max 32 A -> 1p->3p above 230 x 32 = 7360 W, 3p->1p below 3 x 230 x 6 = 4140 W.
Scaling up waits for the enable delay (60 s), down for the disable delay (180 s)."""

from __future__ import annotations

from edge_agent.sources.ocpp.controller import Controller, ControllerSettings
from tests.edge.sources.ocpp.controller_sim import Car, SimSite

KEY = ("cp1", 1)


def _switchable(phases: int, current_a: float, mode: str = "pv", **fields) -> Car:
    car = Car(KEY, mode=mode, phases=phases, max_current_a=32, switchable=True, **fields)
    car.power_w = current_a * phases * 230
    return car


def _site(car: Car) -> SimSite:
    return SimSite(Controller(ControllerSettings()), [car])


def test_one_to_three_phases_above_7360_w_after_the_enable_delay():
    site = _site(_switchable(1, 32.0))
    site.pv_w = 7360                                         # exactly what 1p can take: stays
    for decision in site.run(0, 600):
        assert (decision.targets[KEY].phases, decision.targets[KEY].current_a) == (1, 32.0)
    site.pv_w = 7361
    first = site.step(610).targets[KEY]
    assert (first.phases, first.reason) == (1, "pv surplus 7.4 kW: max current 32 A; switching to 3p in 1 min")
    for decision in site.run(620, 660):
        assert decision.targets[KEY].phases == 1
    switched = site.step(670).targets[KEY]
    assert (switched.phases, switched.current_a) == (3, 10.6)     # 7361 / 690 = 10.67
    assert switched.reason == "pv surplus 7.4 kW; switched to 3p"
    for decision in site.run(680, 1200):
        assert decision.targets[KEY].phases == 3


def test_three_to_one_phase_below_4140_w_after_the_disable_delay():
    site = _site(_switchable(3, 8.0))
    site.pv_w = 4140                                         # exactly 6 A on 3p: stays
    for decision in site.run(0, 1200):
        assert (decision.targets[KEY].phases, decision.targets[KEY].current_a) == (3, 6.0)
    site.pv_w = 4139
    for decision in site.run(1210, 1380):
        target = decision.targets[KEY]
        assert (target.phases, target.current_a) == (3, 6.0)   # floored at min while the timers run
    assert site.target(KEY).reason == "surplus below 6 A, pausing in 10 s; switching to 1p in 10 s"
    switched = site.step(1390).targets[KEY]
    # the switch wins over the pause: on 1 phase the surplus is plenty
    assert (switched.phases, switched.current_a, switched.enabled) == (1, 17.9, True)   # 4139 / 230 = 17.99
    for decision in site.run(1400, 2000):
        assert decision.targets[KEY].phases == 1
        assert decision.targets[KEY].current_a == 17.9


def test_switches_at_once_when_not_charging():
    site = _site(_switchable(3, 0.0))
    site.pv_w = 2000                                         # too little for 3p, plenty for 1p
    first = site.step(0).targets[KEY]
    assert (first.phases, first.current_a) == (1, 0.0)
    assert first.reason == "waiting for enable delay (1 min left); switched to 1p"
    started = site.step(60).targets[KEY]
    assert (started.phases, started.current_a) == (1, 8.6)      # 2000 / 230 = 8.69


def test_starts_on_three_phases_when_the_surplus_is_large():
    site = _site(_switchable(1, 0.0))
    site.pv_w = 9000
    assert site.step(0).targets[KEY].phases == 3
    assert site.step(60).targets[KEY].current_a == 13.0         # 9000 / 690


def test_phase_timer_restarts_when_the_condition_clears():
    site = _site(_switchable(1, 32.0))
    site.pv_w = 8000
    site.run(0, 40)
    site.pv_w = 7000                                          # back below 7360 for a step
    site.step(50)
    site.pv_w = 8000
    for decision in site.run(60, 110):
        assert decision.targets[KEY].phases == 1
    assert site.step(120).targets[KEY].phases == 3             # 60 + 60


def test_minpv_scales_down_to_one_phase_to_import_less():
    site = _site(_switchable(3, 6.0, mode="minpv"))
    for decision in site.run(0, 170):
        assert (decision.targets[KEY].phases, decision.targets[KEY].current_a) == (3, 6.0)
    at_one = site.step(180).targets[KEY]
    assert (at_one.phases, at_one.current_a) == (1, 6.0)
    assert site.grid_w == 1380


def test_now_mode_uses_three_phases():
    site = _site(_switchable(1, 32.0, mode="now"))
    target = site.step(0).targets[KEY]
    assert (target.phases, target.current_a) == (3, 32.0)


def test_fixed_phase_config_is_kept():
    car = _switchable(3, 6.0, phases_config="3")
    site = _site(car)
    site.pv_w = 2000
    for decision in site.run(0, 600):
        assert decision.targets[KEY].phases == 3
    one = _switchable(1, 32.0, phases_config="1")
    site = _site(one)
    site.pv_w = 20000
    for decision in site.run(0, 600):
        assert (decision.targets[KEY].phases, decision.targets[KEY].current_a) == (1, 32.0)


def test_charger_without_phase_switching_keeps_its_phases():
    car = Car(KEY, phases=3, max_current_a=32)
    car.power_w = 4140
    site = _site(car)
    site.pv_w = 2000
    for decision in site.run(0, 170):
        assert decision.targets[KEY].phases == 3
    assert site.step(180).targets[KEY].current_a == 0.0         # paused, not switched
