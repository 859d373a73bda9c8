"""The MQTT inventory: sites with agents and fleets with vehicles; errors name the file and the key."""

from __future__ import annotations

import pytest
import yaml

from hinode.security.inventory import InventoryError, load_inventory


def load(tmp_path, data):
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path)


def test_a_fleet_given_by_prefix_and_count_and_by_list_expands_to_vehicle_identities(tmp_path):
    inventory = load(tmp_path, {"sites": {"plant-1": ["edge-01"]},
                                "fleets": {"hitachi-scooters": {"prefix": "sc-", "count": 3},
                                           "hitachi-slowmobility": {"vehicles": ["sm-01"]}}})
    assert inventory.vehicles() == [("hitachi-scooters", "sc-001"), ("hitachi-scooters", "sc-002"),
                                    ("hitachi-scooters", "sc-003"), ("hitachi-slowmobility", "sm-01")]
    assert inventory.agents()[0] == ("plant-1", "edge-01") and len(inventory.agents()) == 5


@pytest.mark.parametrize("data, message", [
    ({}, "sites: list at least one site"),
    ({"sites": {"x": ["a"]}, "fleets": {"x": {"count": 2, "prefix": "v"}}}, "fleets.x: 'x' is also a site"),
    ({"fleets": {"f": {}}}, "fleets.f: no vehicles"),
    ({"fleets": {"f": {"vehicles": ["v1", "v1"]}}}, "fleets.f: a vehicle id appears twice"),
    ({"fleets": {"f": {"vehicles": ["bad id"]}}}, "fleets.f.vehicles.0"),
    ({"fleets": {"f": {"count": -1}}}, "fleets.f.count"),
])
def test_inventory_errors_name_the_file_and_the_key(tmp_path, data, message):
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, data)
    assert str(tmp_path / "inventory.yaml") in str(caught.value) and message in str(caught.value)
