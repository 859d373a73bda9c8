"""Derived points -> line protocol: field types kept, tags sorted, bad values refused before sending."""

import pytest

from cloud.points import Point, encode_point, encode_points


def test_field_types_are_kept_and_tags_sorted():
    point = Point("energy_slot", {"site": "plant-a", "metric": "energy_import", "device": "m 1"},
                  {"consumption": 1.0, "readings": 12, "estimated": False, "note": 'said "hi"'}, 1_700_000_000_000)
    assert encode_point(point) == ('energy_slot,device=m\\ 1,metric=energy_import,site=plant-a '
                                   'consumption=1.0,readings=12i,estimated=false,note="said \\"hi\\"" 1700000000000')


def test_empty_tag_values_are_left_out():
    assert encode_point(Point("m", {"a": "", "b": "x"}, {"v": 2}, 5)) == "m,b=x v=2i 5"


@pytest.mark.parametrize("fields, error", [
    ({}, "no fields"), ({"v": float("nan")}, "cannot be stored"), ({"v": float("inf")}, "cannot be stored"),
    ({"v": None}, "expected float, int, bool or str"), ({"v": [1]}, "expected float"),
])
def test_unstorable_points_raise_before_anything_is_sent(fields, error):
    with pytest.raises((ValueError, TypeError), match=error):
        encode_points([Point("m", {"site": "s"}, fields, 1)])
