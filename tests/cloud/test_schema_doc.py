"""cloud/README.md's per-domain schema table names what the code writes.

The table had drifted (fields the code never wrote, a session stamped at its start instead of its
stop); these checks tie each row to the constants the writers use, so it cannot drift again.
"""

from pathlib import Path

import pytest

from cloud.domains.co2.jobs import slot_points
from cloud.domains.fleet import worker_points
from cloud.domains.interchange.data import FLOW_MEASUREMENT, SLOT_MEASUREMENT, STORED_FIELDS
from hinode.contract import META_KEYS, DeviceKind
from hinode.mobility import VEHICLE_METRICS

README = Path(__file__).resolve().parents[2] / "cloud" / "README.md"


def _rows() -> dict[str, str]:
    """The per-domain table: first cell -> the whole row."""
    text = README.read_text()
    table = text[text.index("**Per domain**"):]
    rows = {}
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| domain") and not line.startswith("|---"):
            rows[line.split("|")[1].strip()] = line
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.parametrize(("row", "kind"), [("chargers", DeviceKind.CHARGER), ("charging sessions",
                                           DeviceKind.CHARGING_SESSION), ("vitals", DeviceKind.VITALS),
                                           ("vehicles", DeviceKind.VEHICLE)])
def test_every_declared_meta_key_is_a_documented_tag(row, kind):
    line = _rows()[row]
    assert f"`{kind.value}`" in line
    tags = line.split("|")[3]
    for key in META_KEYS[kind]:
        assert f"`{key}`" in tags or f" {key}" in tags, f"{row}: meta tag {key!r} missing from {tags!r}"


def test_the_vehicle_row_lists_every_vehicle_metric():
    fields = _rows()["vehicles"].split("|")[4]
    assert [m for m in VEHICLE_METRICS if f"`{m}`" not in fields] == []


def test_the_session_row_stamps_a_session_at_its_stop():
    from edge_agent.sources.ocpp.charger import session_batch
    from edge_agent.sources.ocpp.sessions import SessionRecord

    batch = session_batch(SessionRecord(charger="CP01", connector=1, transaction_id="7", id_tag="T1", start_ms=1_000,
                                        stop_ms=9_000, energy_kwh=5.0, peak_w=7400.0, pv_kwh=2.0, stop_reason="Local"))
    assert {r.ts for r in batch.readings} == {9_000}
    line = _rows()["charging sessions"]
    assert "ts = session **stop**" in line
    assert [r.metric for r in batch.readings if f"`{r.metric}`" not in line] == []


def test_the_co2_and_interchange_rows_list_the_stored_fields():
    import polars as pl

    frame = pl.DataFrame({"site": ["s"], "slot_start": [0], "meters_expected": [2], "meters_measured": [2],
                          "kwh": [1.0], "kg_location": [1.0], "kg_market": [1.0], "kg_basic": [1.0]})
    (point,) = slot_points(frame)
    rows = _rows()
    co2 = rows["CO2 per slot"]
    assert [f for f in point.fields if f"`{f}`" not in co2] == []
    assert [t for t in point.tags if f"`{t}`" not in co2] == []
    interchange = rows["interchange"]
    assert f"`{SLOT_MEASUREMENT}`" in interchange and f"`{FLOW_MEASUREMENT}`" in interchange
    assert [f for f in STORED_FIELDS if f"`{f}`" not in interchange] == []


def test_the_fleet_row_names_the_worker_measurements():
    line = _rows()["fleet events"]
    for name in (worker_points.EVENT_MEASUREMENT, worker_points.VIOLATION_MEASUREMENT,
                 worker_points.TRIP_MEASUREMENT, worker_points.HUB_MEASUREMENT):
        assert f"`{name}`" in line
