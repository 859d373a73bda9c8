"""Two batches of one connector at the same millisecond become one envelope.

Seen in ``hinode up``: a 2.0.1 charger's StatusNotification and TransactionEvent of the same
instant made two envelopes that InfluxDB stores as one point, so the second's seq hid the
first's and the board showed the charger 93 % complete although nothing was lost."""

import asyncio

from edge_agent.sources.base import DeviceBatch, reading
from edge_agent.sources.ocpp.source import merged, same_point
from hinode.contract import DeviceKind
from tests.edge.sources.ocpp.cp16_peer import running_source

T = 1_780_000_000_000


def batch(ts: int, evse: str = "1", **values) -> DeviceBatch:
    return DeviceBatch(device="CP1", kind=DeviceKind.CHARGER, profile="ocpp-ocpp2.0.1",
                       readings=[reading(ts, metric, value) for metric, value in values.items()],
                       meta={"station": "CP1", "evse": evse})


def test_batches_sharing_a_timestamp_merge_and_the_later_value_wins():
    status = batch(T, status="Occupied", mode="pv")
    event = batch(T, status="Charging", power_total=7400.0)
    assert same_point(status, event)
    values = {(r.ts, r.metric): r.value for r in merged(status, event).readings}
    assert values == {(T, "status"): "Charging", (T, "mode"): "pv", (T, "power_total"): 7400.0}


def test_other_instants_or_connectors_stay_apart():
    assert not same_point(batch(T, status="Charging"), batch(T + 1, status="Charging"))
    assert not same_point(batch(T, status="Charging"), batch(T, evse="2", status="Charging"))


async def test_the_source_yields_one_envelope_per_instant(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        queue = run.source._queue
        for item in (batch(T, status="Occupied"), batch(T, status="Charging", power_total=7400.0),
                     batch(T + 10_000, power_total=7300.0)):
            queue.put_nowait(item)
        deadline = asyncio.get_running_loop().time() + 5
        while len(run.of("CP1")) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        got = run.of("CP1")
    assert [sorted((r.ts, r.metric, r.value) for r in b.readings) for b in got] == [
        [(T, "power_total", 7400.0), (T, "status", "Charging")],
        [(T + 10_000, "power_total", 7300.0)]]
