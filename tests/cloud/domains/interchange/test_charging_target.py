"""Tomorrow's expected surplus as a charging target: the window choice and the fallback, by hand."""

from __future__ import annotations

import polars as pl

from cloud.domains.interchange.charging import ChargingTarget, choose_window, combine_expected

SLOT = 1_800_000
DAY0 = 1_000 * SLOT      # any slot start


def expected(shareable: list[float], demand: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"slot_start": [DAY0 + i * SLOT for i in range(len(shareable))],
                         "shareable_kwh": shareable, "demand_kwh": demand})


def test_the_longest_positive_run_at_its_mean_power():
    # surplus per slot: -1, 2, 3, -1, 1, 1, 1, 0 -> runs [1..2] (2 slots, 5 kWh) and [4..6] (3 slots, 3 kWh);
    # the longer one wins: 3 kWh / 3 slots = 1 kWh per half hour = 2 kW
    frame = expected([1, 4, 5, 1, 3, 3, 3, 2], [2, 2, 2, 2, 2, 2, 2, 2])
    assert choose_window(frame, max_kw=60) == ChargingTarget(DAY0 + 4 * SLOT, DAY0 + 7 * SLOT, 2.0, 3.0, 3)


def test_power_is_capped_at_max_kw_and_equal_runs_take_the_larger_energy():
    # runs [0..1]: 50 + 50 kWh and [3..4]: 10 + 10 kWh, both 2 slots: the first has more energy;
    # mean 50 kWh per half hour = 100 kW, capped at 60
    frame = expected([60, 60, 0, 20, 20], [10, 10, 5, 10, 10])
    target = choose_window(frame, max_kw=60)
    assert (target.from_ms, target.until_ms, target.power_kw, target.surplus_kwh) == \
        (DAY0, DAY0 + 2 * SLOT, 60.0, 100.0)
    assert target.params() == {"power_kw": 60.0, "from_ts": DAY0, "until_ts": DAY0 + 2 * SLOT}


def test_a_gap_in_the_slots_breaks_a_run_and_no_surplus_gives_none():
    frame = pl.DataFrame({"slot_start": [DAY0, DAY0 + SLOT, DAY0 + 3 * SLOT], "shareable_kwh": [2.0, 2.0, 2.0],
                          "demand_kwh": [1.0, 1.0, 1.0]})
    # slots 0 and 1 are one run (2 kWh, 2 slots -> 1 kWh per slot = 2 kW); slot 3 is not adjacent
    assert choose_window(frame, max_kw=60) == ChargingTarget(DAY0, DAY0 + 2 * SLOT, 2.0, 2.0, 2)
    assert choose_window(expected([1, 2], [1, 3]), max_kw=60) is None


def test_forecasts_first_else_the_same_slot_a_week_earlier():
    week = 7 * 48 * SLOT
    forecast = pl.DataFrame({"site": ["A"], "role": ["consumer"], "slot_start": [DAY0], "kwh": [4.0]})
    week_before = pl.DataFrame({"site": ["A", "A", "P", "P"], "role": ["consumer", "consumer", "producer", "producer"],
                                "slot_start": [DAY0 - week, DAY0 + SLOT - week] * 2, "kwh": [9.0, 5.0, 12.0, 10.0]})
    got = combine_expected([DAY0, DAY0 + SLOT], forecast, week_before)
    # slot 0: A's forecast 4 (not last week's 9), P's 12 from last week; slot 1: both from last week
    assert got.rows() == [(DAY0, 12.0, 4.0), (DAY0 + SLOT, 10.0, 5.0)]
