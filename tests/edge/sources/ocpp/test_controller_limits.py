"""Load management: site limits (A per phase, W) and circuit limits are never exceeded,
higher priority first, a loadpoint is paused rather than given less than its min current,
``now``/``minpv`` get their minimum before ``pv`` gets surplus."""

from __future__ import annotations

import math
import random

from edge_agent.sources.ocpp.controller import Circuit, Controller, ControllerSettings, SiteDecision
from tests.edge.sources.ocpp.controller_cars import charging_car
from tests.edge.sources.ocpp.controller_sim import Car, SimSite

A, B, C = ("cp-a", 1), ("cp-b", 1), ("cp-c", 1)


def _first_step_of_two_now_cars(settings: ControllerSettings, **car_fields) -> SiteDecision:
    """A (priority 2) and B (priority 1), both in mode ``now``: the controller's first decision."""
    high = Car(A, mode="now", priority=2, **car_fields)
    low = Car(B, mode="now", priority=1, **car_fields)
    return SimSite(Controller(settings), [low, high]).step(0)


def test_site_limit_in_amps_goes_to_the_higher_priority_first():
    decision = _first_step_of_two_now_cars(ControllerSettings(site_limit_a=40), max_current_a=32)
    assert decision.targets[A].current_a == 32.0
    low_target = decision.targets[B]
    assert (low_target.current_a, low_target.reason) == (8.0, "now: 8 A, capped by site limit 40 A")
    assert decision.reason == "no pv surplus; limited by site limit 40 A"


def test_a_loadpoint_that_cannot_get_its_min_current_is_paused():
    decision = _first_step_of_two_now_cars(ControllerSettings(site_limit_a=10))
    assert decision.targets[A].current_a == 10.0
    paused = decision.targets[B]
    assert (paused.current_a, paused.enabled) == (0.0, False)
    assert paused.reason == "paused: site limit 10 A leaves no room for 6 A"


def test_site_limit_in_watts():
    decision = _first_step_of_two_now_cars(ControllerSettings(site_limit_w=11000))
    # mins first (2 x 4140 W), then the high one gets the rest: (11000 - 4140) / 690 = 9.94
    assert decision.targets[A].current_a == 9.9
    assert decision.targets[B].current_a == 6.0
    assert decision.targets[A].reason == "now: 9.9 A, capped by site limit 11.0 kW"


def test_circuit_limit_caps_only_its_chargers():
    settings = ControllerSettings(circuits=[Circuit("hall-a", 20)])
    first = Car(A, mode="now", circuit="hall-a", priority=1)
    second = Car(B, mode="now", circuit="hall-a")
    outside = Car(C, mode="now")
    decision = SimSite(Controller(settings), [first, second, outside]).step(0)
    assert decision.targets[A].current_a == 14.0             # 20 - the other's 6 A minimum
    assert decision.targets[A].reason == "now: 14 A, capped by circuit hall-a 20 A"
    assert decision.targets[B].current_a == 6.0
    assert decision.targets[C].current_a == 16.0
    assert "limited by circuit hall-a 20 A" in decision.reason


def test_now_gets_its_minimum_before_a_higher_priority_pv_loadpoint():
    pv = charging_car(A, 10.0, priority=5)
    now = Car(B, mode="now")
    site = SimSite(Controller(ControllerSettings(site_limit_a=11)), [pv, now], pv_w=30000)
    decision = site.step(0)
    assert decision.targets[B].current_a == 11.0
    assert decision.targets[A].current_a == 0.0
    assert decision.targets[A].reason == "paused: site limit 11 A leaves no room for 6 A"
    now.connected, now.power_w = False, 0.0                  # room again: a fresh start, enable delay first
    assert site.step(10).targets[A].reason == "waiting for enable delay (1 min left)"
    assert site.step(70).targets[A].current_a == 11.0         # the site limit still caps it


def test_a_pv_car_waits_for_surplus_not_for_room_at_night():
    now = Car(A, mode="now")
    pv = Car(B)
    site = SimSite(Controller(ControllerSettings(site_limit_a=16)), [now, pv])
    night = site.step(0)
    assert night.targets[B].reason == "waiting for surplus (0.0 kW of 4.1 kW)"
    assert night.reason == "no pv surplus"
    site.pv_w = 30000
    day = site.step(10)
    assert day.targets[B].reason == "paused: site limit 16 A leaves no room for 6 A"
    assert day.reason == "pv surplus 30.0 kW; limited by site limit 16 A"   # the now car's draw counts


def test_a_full_now_car_leaves_the_surplus_to_pv_cars():
    full = Car(A, mode="now")                                 # plugged in, draws nothing
    pv = charging_car(B, 6.0)
    site = SimSite(Controller(ControllerSettings()), [full, pv], pv_w=8000)
    full.car_max_a = 0.0
    for decision in site.run(0, 50):                         # it may be about to start: 11 kW held for it
        assert decision.targets[A].current_a == 16.0
        assert decision.targets[B].current_a == 6.0
    for decision in site.run(60, 300):                       # a minute without drawing: full
        assert decision.targets[A].reason == "now: max current 16 A; car not taking power"
        assert decision.targets[B].current_a == 11.5         # 8000 / 690 = 11.59


def test_minpv_minimum_comes_off_the_surplus_before_pv():
    minpv = Car(A, mode="minpv", phases=1)
    pv = charging_car(B, 8.0, priority=5)
    site = SimSite(Controller(ControllerSettings()), [minpv, pv], pv_w=6000)
    decision = site.step(0)
    # 6000 - 1380 W for minpv's 6 A on 1p = 4620 W -> 6.69 A for the higher-priority pv car;
    # minpv gets its 1380 W plus the 66 W left over: 1446 / 230 = 6.29 A
    assert decision.targets[B].current_a == 6.6
    assert decision.targets[A].current_a == 6.2


def test_surplus_goes_to_the_higher_priority_and_the_other_pauses_after_the_delay():
    high = charging_car(A, 6.0, priority=1)
    low = charging_car(B, 6.0)
    site = SimSite(Controller(ControllerSettings()), [low, high], pv_w=10000)
    for decision in site.run(0, 170):
        assert decision.targets[A].current_a == 14.4         # 10000 / 690 = 14.49
        assert decision.targets[B].current_a == 6.0          # 64 W left: floored until the delay
    decision = site.step(180)
    assert (decision.targets[A].current_a, decision.targets[B].current_a) == (14.4, 0.0)
    site.run(190, 1200)
    assert site.target(B).current_a == 0.0
    assert site.grid_w == 14.4 * 690 - 10000


def test_equal_priority_a_charging_car_keeps_the_surplus():
    idle = Car(A)
    charging = charging_car(B, 8.0)
    site = SimSite(Controller(ControllerSettings()), [idle, charging], pv_w=6000)
    for decision in site.run(0, 600):
        assert decision.targets[B].current_a == 8.6
        assert decision.targets[A].current_a == 0.0


def test_pending_start_claims_the_surplus_so_only_one_car_starts():
    first = Car(A, priority=1)
    second = Car(B)
    site = SimSite(Controller(ControllerSettings()), [first, second], pv_w=5000)
    site.run(0, 600)
    assert site.target(A).current_a == 7.2
    assert site.target(B).current_a == 0.0


def test_limits_hold_at_every_step_of_a_simulated_day():
    """Eight chargers behind two circuits, every mode, cars coming and going, PV with seeded
    random clouds, one step every 30 s for 24 h: no step may exceed a limit."""
    settings = ControllerSettings(site_limit_a=63, site_limit_w=40000,
                                  circuits=[Circuit("hall-a", 32), Circuit("hall-b", 25)])
    rng = random.Random(20261129)
    modes = ["pv", "pv", "minpv", "now", "pv", "minpv", "pv", "now"]
    cars = [Car((f"cp{i}", 1), mode=mode, priority=i % 3, max_current_a=32 if i % 2 else 16,
                phases=3, switchable=i % 4 == 0, circuit=("hall-a", "hall-b", None)[i % 3],
                connected=False, car_max_a=rng.choice([16.0, 32.0, 11.0]))
            for i, mode in enumerate(modes)]
    site = SimSite(Controller(settings), cars)
    limit_hits, charged_wh, pv_wh = set(), 0.0, 0.0
    interval = 30
    for now in range(0, 24 * 3600, interval):
        hour = now / 3600
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
        site.pv_w = 45000 * sun * rng.uniform(0.3, 1.0)
        site.house_w = rng.uniform(2000, 8000)
        for car in cars:
            if rng.random() < 0.01:
                car.connected = not car.connected
                if not car.connected:
                    car.power_w = 0.0
        decision = site.step(now)
        targets = decision.targets
        by_key = {car.key: car for car in cars}
        assert sum(t.current_a for t in targets.values()) <= 63 + 1e-9, now
        assert sum(t.current_a * t.phases * 230 for t in targets.values()) <= 40000 + 1e-6, now
        for circuit, limit in (("hall-a", 32), ("hall-b", 25)):
            in_circuit = sum(t.current_a for k, t in targets.items() if by_key[k].circuit == circuit)
            assert in_circuit <= limit + 1e-9, (now, circuit)
        for key, target in targets.items():
            car = by_key[key]
            assert target.current_a == 0 or car.min_current_a <= target.current_a <= car.max_current_a, (now, key)
            assert target.reason
            if not car.connected or car.mode == "off":
                assert target.current_a == 0
            if car.mode == "minpv" and car.connected and target.current_a == 0:
                assert target.reason.startswith("paused: ") and "leaves no room" in target.reason
        if "limited by" in decision.reason:
            limit_hits.add(decision.reason.split("limited by ")[1])
        ev_w = sum(car.power_w for car in cars)
        charged_wh += ev_w * interval / 3600
        pv_wh += sum(share * by_key[k].power_w for k, share in site.controller.pv_share().items()) * interval / 3600
    # the day exercised the limits and charged, mostly from PV
    assert any("site limit" in hit for hit in limit_hits), limit_hits
    assert any("circuit" in hit for hit in limit_hits), limit_hits
    assert charged_wh > 100_000
    assert 0 < pv_wh < charged_wh


def test_a_full_pv_car_of_higher_priority_leaves_the_surplus_to_the_next():
    full = charging_car(A, 6.0, priority=1)
    other = charging_car(B, 6.0)
    site = SimSite(Controller(ControllerSettings()), [full, other], pv_w=12000)
    first = site.step(0)
    assert (first.targets[A].current_a, first.targets[B].current_a) == (16.0, 6.0)   # 12000 - 11040 W left
    full.car_max_a = 0.0                                     # the battery is full
    site.run(10, 60)
    later = site.step(70)
    assert later.targets[A].reason == "pv surplus 12.0 kW: max current 16 A; car not taking power"
    assert later.targets[B].current_a == 16.0
    full.car_max_a = 1000.0                                  # draws again: the budget is its own again
    site.step(80)
    assert site.step(90).targets[B].current_a == 6.0
