"""Each allocation rule on a small community over two slots, two producers, flows: hand-checked."""

from __future__ import annotations

import polars as pl
import pytest

from cloud.domains.interchange.service import allocate, allocate_by_month, flows, participants_frame

S1, S2 = 0, 1_800_000

# Producer P and consumers A, B, C. Slot 1: P offers 100 kWh, demand A 40, B 30, C 10 (80 in all).
# Slot 2: P offers 30 kWh, demand A 40, B 30, C 2 (72 in all).
SLOTS = pl.DataFrame({
    "slot_start": [S1] * 4 + [S2] * 4,
    "site": ["P", "A", "B", "C"] * 2,
    "generation_kwh": [100.0, None, None, None, 30.0, None, None, None],
    "consumption_kwh": [None, 40.0, 30.0, 10.0, None, 40.0, 30.0, 2.0],
})
PARTICIPANTS = participants_frame([
    {"site": "P", "role": "producer"},
    {"site": "A", "role": "consumer", "static_share": 0.5, "priority": 2},
    {"site": "B", "role": "consumer", "static_share": 0.3, "priority": 2},
    {"site": "C", "role": "consumer", "static_share": 0.2, "priority": 1},
])


def table(frame: pl.DataFrame, *columns: str) -> dict:
    return {(r["slot_start"], r["site"]): tuple(r[c] for c in columns)
            for r in frame.sort("slot_start", "site").iter_rows(named=True)}


def test_static_key_exports_an_unused_share_instead_of_giving_it_to_the_others():
    got = table(allocate(SLOTS, PARTICIPANTS, "static"), "received_kwh", "grid_kwh", "supplied_kwh", "export_kwh")
    assert got == {
        # slot 1: A min(0.5*100, 40) = 40, B min(0.3*100, 30) = 30, C min(0.2*100, 10) = 10; P supplies 80, exports 20
        (S1, "A"): (40.0, 0.0, 0.0, 0.0), (S1, "B"): (30.0, 0.0, 0.0, 0.0), (S1, "C"): (10.0, 0.0, 0.0, 0.0),
        (S1, "P"): (0.0, 0.0, 80.0, 20.0),
        # slot 2: A min(15, 40) = 15 (grid 25), B min(9, 30) = 9 (grid 21), C min(6, 2) = 2: C's unused 4 kWh
        # are exported although A and B still buy from the grid; P supplies 15 + 9 + 2 = 26, exports 30 - 26 = 4
        (S2, "A"): (15.0, 25.0, 0.0, 0.0), (S2, "B"): (9.0, 21.0, 0.0, 0.0), (S2, "C"): (2.0, 0.0, 0.0, 0.0),
        (S2, "P"): (0.0, 0.0, 26.0, 4.0),
    }


def test_pro_rata_splits_in_proportion_to_consumption_capped_at_it():
    got = table(allocate(SLOTS, PARTICIPANTS, "pro_rata"), "received_kwh", "grid_kwh", "supplied_kwh", "export_kwh")
    assert got == {
        # slot 1: 100 >= 80, everyone covered; P exports 100 - 80 = 20
        (S1, "A"): (40.0, 0.0, 0.0, 0.0), (S1, "B"): (30.0, 0.0, 0.0, 0.0), (S1, "C"): (10.0, 0.0, 0.0, 0.0),
        (S1, "P"): (0.0, 0.0, 80.0, 20.0),
        # slot 2: 30 / 72 each: A 40*30/72 = 16.666667 (grid 23.333333), B 30*30/72 = 12.5 (grid 17.5),
        # C 2*30/72 = 0.833333 (grid 1.166667); P supplies all 30, exports 0
        (S2, "A"): (16.666667, 23.333333, 0.0, 0.0), (S2, "B"): (12.5, 17.5, 0.0, 0.0),
        (S2, "C"): (0.833333, 1.166667, 0.0, 0.0), (S2, "P"): (0.0, 0.0, 30.0, 0.0),
    }


def test_priority_order_serves_the_first_and_splits_a_tie_pro_rata():
    got = table(allocate(SLOTS, PARTICIPANTS, "priority"), "received_kwh", "grid_kwh", "supplied_kwh", "export_kwh")
    assert got == {
        (S1, "A"): (40.0, 0.0, 0.0, 0.0), (S1, "B"): (30.0, 0.0, 0.0, 0.0), (S1, "C"): (10.0, 0.0, 0.0, 0.0),
        (S1, "P"): (0.0, 0.0, 80.0, 20.0),
        # slot 2: C (priority 1) takes its 2; 28 left for A and B (priority 2, 70 demand): A 40*28/70 = 16,
        # B 30*28/70 = 12
        (S2, "A"): (16.0, 24.0, 0.0, 0.0), (S2, "B"): (12.0, 18.0, 0.0, 0.0), (S2, "C"): (2.0, 0.0, 0.0, 0.0),
        (S2, "P"): (0.0, 0.0, 30.0, 0.0),
    }


def test_two_producers_pool_and_supply_in_proportion_to_what_they_offer():
    slots = pl.DataFrame({
        "slot_start": [S1] * 4,
        "site": ["P1", "P2", "A", "B"],
        # P1: generation 90, metered export 60 -> shareable 60, self 30.
        # P2: generation 50, own consumption 10, no export meter -> shareable 50 - 10 = 40, self 10.
        "generation_kwh": [90.0, 50.0, None, None],
        "consumption_kwh": [None, 10.0, 50.0, 30.0],
        "shareable_kwh": [60.0, None, None, None],
    })
    parts = participants_frame([{"site": "P1", "role": "producer"}, {"site": "P2", "role": "producer"},
                                {"site": "A", "role": "consumer"}, {"site": "B", "role": "consumer"}])
    allocation = allocate(slots, parts, "pro_rata")
    got = table(allocation, "shareable_kwh", "self_kwh", "supplied_kwh", "export_kwh", "received_kwh", "grid_kwh")
    assert got == {
        # pool 100 >= demand 80: A 50, B 30; P1 supplies 80*60/100 = 48 (exports 12), P2 80*40/100 = 32 (exports 8);
        # P2's grid import: own consumption 10 - self 10 = 0
        (S1, "A"): (0.0, 0.0, 0.0, 0.0, 50.0, 0.0), (S1, "B"): (0.0, 0.0, 0.0, 0.0, 30.0, 0.0),
        (S1, "P1"): (60.0, 30.0, 48.0, 12.0, 0.0, 0.0), (S1, "P2"): (40.0, 10.0, 32.0, 8.0, 0.0, 0.0),
    }
    # A's 50 come 60 % from P1 (30) and 40 % from P2 (20); B's 30: 18 and 12
    assert flows(allocation).rows() == [(S1, "P1", "A", 30.0), (S1, "P1", "B", 18.0),
                                        (S1, "P2", "A", 20.0), (S1, "P2", "B", 12.0)]


def test_flows_add_a_zero_for_stored_pairs_so_a_resettled_flow_is_overwritten():
    allocation = allocate(SLOTS, PARTICIPANTS, "priority")
    assert flows(allocation).filter(pl.col("slot_start") == S2).rows() == [(S2, "P", "A", 16.0), (S2, "P", "B", 12.0),
                                                                           (S2, "P", "C", 2.0)]
    # P -> X was stored by an earlier settlement: it gets a 0 in both slots; P -> A keeps its kWh
    pairs = pl.DataFrame({"from": ["P", "P"], "to": ["A", "X"]})
    assert flows(allocation, zero_pairs=pairs).rows() == [
        (S1, "P", "A", 40.0), (S1, "P", "B", 30.0), (S1, "P", "C", 10.0), (S1, "P", "X", 0.0),
        (S2, "P", "A", 16.0), (S2, "P", "B", 12.0), (S2, "P", "C", 2.0), (S2, "P", "X", 0.0)]


def test_the_rule_changes_with_the_month_and_reruns_are_identical():
    rules = pl.DataFrame({"slot_start": [S1, S2], "rule": ["static", "priority"]})
    once = allocate_by_month(SLOTS, PARTICIPANTS, rules)
    assert table(once, "rule", "received_kwh")[(S2, "A")] == ("priority", 16.0)
    assert table(once, "rule", "received_kwh")[(S1, "C")] == ("static", 10.0)
    assert once.equals(allocate_by_month(SLOTS, PARTICIPANTS, rules))


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule 'fair' is not one of static, pro_rata, priority"):
        allocate(SLOTS, PARTICIPANTS, "fair")


@pytest.mark.parametrize("rule", ["static", "pro_rata", "priority"])
def test_no_generation_or_no_demand_gives_zeros_not_nan(rule):
    slots = pl.DataFrame({
        "slot_start": [S1] * 4 + [S2] * 4, "site": ["P", "A", "B", "C"] * 2,
        # slot 1 (night): nothing to share, demand 5 + 3 + 0; slot 2 (holiday noon): 50 kWh, nobody uses any
        "generation_kwh": [0.0, None, None, None, 50.0, None, None, None],
        "consumption_kwh": [None, 5.0, 3.0, 0.0, None, 0.0, 0.0, 0.0],
    })
    got = table(allocate(slots, PARTICIPANTS, rule), "received_kwh", "grid_kwh", "supplied_kwh", "export_kwh")
    assert got == {
        (S1, "A"): (0.0, 5.0, 0.0, 0.0), (S1, "B"): (0.0, 3.0, 0.0, 0.0), (S1, "C"): (0.0, 0.0, 0.0, 0.0),
        (S1, "P"): (0.0, 0.0, 0.0, 0.0),
        (S2, "A"): (0.0, 0.0, 0.0, 0.0), (S2, "B"): (0.0, 0.0, 0.0, 0.0), (S2, "C"): (0.0, 0.0, 0.0, 0.0),
        (S2, "P"): (0.0, 0.0, 0.0, 50.0),    # all 50 kWh exported
    }


def test_priority_off_the_30_minute_grid_gives_the_same_numbers():
    # slot starts 0 and 1000 ms are not on the 30-minute grid: the (slot, level) sums are joined, not gathered
    off_grid = SLOTS.with_columns(pl.when(pl.col("slot_start") == S2).then(1000).otherwise(S1).alias("slot_start"))
    on = allocate(SLOTS, PARTICIPANTS, "priority").sort("slot_start", "site").drop("slot_start")
    off = allocate(off_grid, PARTICIPANTS, "priority").sort("slot_start", "site").drop("slot_start")
    assert off.equals(on)
