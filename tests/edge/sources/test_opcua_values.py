"""DataValue -> Reading rules of the OPC UA source, on asyncua's own DataValue types.

The asyncua test server never sends a value together with a Bad status, NaN, or a
missing timestamp, but other servers do; these cases are checked here directly.
"""

from __future__ import annotations

import datetime as dt
import math
import time

import pytest
from asyncua import ua

from device_profiles.schema import OpcuaNode
from edge_agent.sources.opcua.nodes import BoundNode, convert, value_timestamp
from edge_agent.sources.opcua.subscription import split_cycle
from edge_agent.sources.base import reading
from hinode.contract import Quality

pytestmark = pytest.mark.timeout(10)
UTC = dt.timezone.utc


def bound(scale: float = 1.0, offset: float = 0.0) -> BoundNode:
    spec = OpcuaNode(metric="power_total", node_id="ns={ns};s={device}.PowerTotal", unit="kW", scale=scale, offset=offset)
    return BoundNode("power_total", spec, ua.NodeId("M1.PowerTotal", 2))


def value(raw, status=ua.StatusCodes.Good, variant=ua.VariantType.Double, **stamps) -> ua.DataValue:
    return ua.DataValue(ua.Variant(raw, variant), StatusCode=ua.StatusCode(status), **stamps)


def test_good_uncertain_and_bad_status():
    good = convert(bound(), value(12.5), 1000)
    assert (good.reading.value, good.reading.quality, good.reading.unit, good.problem) == (12.5, Quality.GOOD, "kW", "")
    uncertain = convert(bound(), value(12.5, ua.StatusCodes.UncertainLastUsableValue), 1000)
    assert (uncertain.reading.value, uncertain.reading.quality) == (12.5, Quality.UNCERTAIN)
    # a server may keep the last value next to a Bad status: it must not pass as a reading value
    bad = convert(bound(), value(12.5, ua.StatusCodes.BadSensorFailure), 1000)
    assert (bad.reading.value, bad.reading.quality, bad.problem) == (None, Quality.BAD, "bad_status")


def test_scale_offset_and_value_types():
    assert convert(bound(scale=0.001, offset=1.0), value(2500.0), 0).reading.value == pytest.approx(3.5)
    assert convert(bound(), value(7, variant=ua.VariantType.Int32), 0).reading.value == 7
    assert convert(bound(), value(True, variant=ua.VariantType.Boolean), 0).reading.value is True
    assert convert(bound(scale=10), value(True, variant=ua.VariantType.Boolean), 0).reading.value is True
    assert convert(bound(), value("RUN", variant=ua.VariantType.String), 0).reading.value == "RUN"
    for raw, variant in ((math.nan, ua.VariantType.Double), ([1.0, 2.0], ua.VariantType.Double),
                         (None, ua.VariantType.Null)):
        out = convert(bound(), value(raw, variant=variant), 0)
        assert (out.reading.value, out.reading.quality, out.problem) == (None, Quality.BAD, "bad_value")


def test_timestamp_source_then_server_then_now():
    source = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    server = dt.datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert value_timestamp(value(1.0, SourceTimestamp=source, ServerTimestamp=server)) == 1767323045678
    assert value_timestamp(value(1.0, ServerTimestamp=server)) == 1767323046000
    # 1601-01-01 is OPC UA's "no timestamp"
    assert value_timestamp(value(1.0, SourceTimestamp=dt.datetime(1601, 1, 1, tzinfo=UTC),
                                 ServerTimestamp=server)) == 1767323046000
    before = time.time() * 1000
    assert before - 1 <= value_timestamp(value(1.0)) <= time.time() * 1000 + 1


def test_two_updates_of_a_metric_in_one_cycle_go_to_separate_batches():
    cycle = [reading(1, "voltage_l1", 230.0), reading(1, "current_l1", 10.0),
             reading(2, "voltage_l1", 231.0), reading(3, "voltage_l1", 232.0), reading(2, "current_l1", 11.0)]
    batches = split_cycle(cycle)
    assert [[(r.metric, r.ts) for r in b] for b in batches] == [
        [("voltage_l1", 1), ("current_l1", 1)], [("voltage_l1", 2), ("current_l1", 2)], [("voltage_l1", 3)]]
