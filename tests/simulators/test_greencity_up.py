"""``hinode up``'s green-city backfill across runs (hinode/up_greencity.py): the first run writes the
history up to now, a second run soon after leaves it alone, a run hours later fills the pause for the
SME sites (the plant's pause stays a gap: its live counters restarted with the PV site simulator)."""

from __future__ import annotations

from datetime import datetime

import pytest

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from hinode.up_greencity import JST, GreenCity, history_start_ms

pytestmark = pytest.mark.timeout(120)

NOW = int(datetime(2026, 11, 27, 10, 40, tzinfo=JST).timestamp() * 1000)
MODEL_TIME_S = datetime(2026, 11, 27, 10, 30, tzinfo=JST).timestamp()
HOUR = 3_600_000


def last_time(client: InfluxClient, site: str) -> int:
    (row,) = client.query_rows(f'SELECT last("energy_import") FROM "meter" WHERE "site" = \'{site}\'')
    return row["time"]


def test_a_second_run_does_not_redo_the_history_and_a_later_one_fills_the_pause(influx, tmp_path):
    said: list[str] = []
    demo = GreenCity(tmp_path, influx.url, with_plant=True, say=said.append)
    demo.backfill(MODEL_TIME_S, now_ms=NOW)
    assert demo.range_ms == (history_start_ms(NOW), NOW)
    assert "green city: backfilled hitachi-omika, sme-press" in said[-1] and " lines in " in said[-1]
    client = InfluxClient(InfluxConfig(url=influx.url))
    count = 'SELECT count("energy_import") FROM "meter" WHERE "site" = \'sme-press\''
    before = client.query_rows(count)[0]["count"]

    again = GreenCity(tmp_path, influx.url, with_plant=True, say=said.append)
    again.backfill(MODEL_TIME_S, now_ms=NOW + 10 * 60_000)
    assert again.range_ms is None and "not redone" in said[-1]
    assert client.query_rows(count)[0]["count"] == before

    later = GreenCity(tmp_path, influx.url, with_plant=True, say=said.append)
    later.backfill(MODEL_TIME_S, now_ms=NOW + 5 * HOUR)
    assert later.range_ms == (NOW, NOW + 5 * HOUR)
    assert "backfilled sme-press, sme-plating, sme-food, city-hall-annex from" in said[-1]
    # 10:40 -> 15:40: the slot starts 11:00 .. 15:30 are new (10:30 is written again, the same point)
    assert client.query_rows(count)[0]["count"] == before + 10
    assert last_time(client, "sme-press") == NOW + 5 * HOUR - 10 * 60_000
    assert last_time(client, "hitachi-omika") == NOW - 10 * 60_000          # the plant: left as it was
    client.close()
