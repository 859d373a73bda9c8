"""The green-city backfill (hinode/up_backfill.py) into a real InfluxDB 1.6: a year in seconds, the
energy domain's API reading the backfilled counters back as the model's energy, energy_slot equal to
what the energy job computes, idempotent rewrites, and the plant's counters running into the live PV
site simulator's without a reset."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import polars as pl
import pytest

from cloud.api import create_app
from cloud.config import CloudConfig, InfluxConfig
from cloud.domains.energy import service
from cloud.influx import InfluxClient
from hinode.up_backfill import backfill, site_history
from simulators.greencity import model
from simulators.greencity.omika import live_start_kwh
from simulators.greencity.sites import SITES
from simulators.modbus.sunspec_site import PvSiteSimulator
from tests.cloud.test_api_kit import serve_app

pytestmark = pytest.mark.timeout(120)

JST = timezone(timedelta(hours=9))
END = int(datetime(2026, 11, 27, 10, 40, tzinfo=JST).timestamp() * 1000)   # a Friday morning, mid-slot
START = END - 365 * model.DAY_MS
MODEL_TIME = datetime(2026, 11, 27, 10, 30, tzinfo=JST).timestamp()
DAY = datetime(2026, 6, 10, tzinfo=JST)                                       # a Wednesday in the rainy season


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    from hinode import services
    influx = services.influxdb(tmp_path_factory.mktemp("greencity") / "influxdb")
    influx.start()
    client = InfluxClient(InfluxConfig(url=influx.url))
    client.create_database()
    result = backfill(client, START, END, live_start_kwh=live_start_kwh(MODEL_TIME))
    yield influx, client, result
    client.close()
    influx.stop()


def test_a_year_of_five_sites_takes_seconds(filled):
    _, client, result = filled
    print(f"backfill: {result.lines} lines in {result.seconds:.2f} s")
    assert result.seconds < 20, result.seconds
    # every slot start of the year has a reading
    (row,) = client.query_rows('SELECT count("energy_import") FROM "meter" WHERE "site" = \'sme-press\'')
    assert row["count"] == 365 * 48 + 1          # START is mid-slot: its slot start too


def test_the_energy_api_reads_a_backfilled_day_as_the_models_energy(filled):
    influx, _, _ = filled
    start = int(DAY.timestamp() * 1000)
    config = CloudConfig.model_validate({"influx": {"url": influx.url}, "scheduler": {"enabled": False}})
    with serve_app(create_app(config)) as url:
        answer = httpx.get(f"{url}/api/energy/consumption", params={
            "site": "sme-press", "device": "main-meter", "start": DAY.isoformat(),
            "end": (DAY + timedelta(days=1)).isoformat()}, timeout=10)
    assert answer.status_code == 200, answer.text
    got = [s["consumption"] for s in answer.json()["slots"]]
    expected = model.site_energy("sme-press", start, start + model.DAY_MS).import_kwh
    assert len(got) == 48
    assert got == pytest.approx(expected.tolist(), abs=1e-6)
    assert 9 * 50 < sum(got) < 9 * 75        # a weekday: ~9 h of a 55 kW shift plus the base


def test_energy_slot_points_are_what_the_energy_job_computes(filled):
    _, client, result = filled
    start = int(DAY.timestamp() * 1000)
    rows = client.query_rows(f'SELECT "consumption", "readings" FROM "energy_slot" WHERE "site" = \'sme-food\' '
                             f'AND time >= {start}ms AND time < {start + model.DAY_MS}ms')
    assert len(rows) == 48 and {r["readings"] for r in rows} == {1}
    # the job's rule for one slot: readings in the slot plus the one before and the first after
    (history,) = site_history(SITES["sme-food"], START, END)
    inside = (history.ts >= start - model.SLOT_MS) & (history.ts <= start + model.DAY_MS)
    frame = pl.DataFrame({"ts": history.ts[inside], "value": history.counters["energy_import"][inside]})
    job = service.per_slot(service.consumption(frame), 1800, 32400).filter(
        (pl.col("slot_start") >= start) & (pl.col("slot_start") < start + model.DAY_MS))
    assert [r["consumption"] for r in rows] == pytest.approx(job["consumption"].to_list(), abs=1e-9)
    model_kwh = model.site_energy("sme-food", start, start + model.DAY_MS).import_kwh
    assert job["consumption"].to_list() == pytest.approx(model_kwh.tolist(), abs=1e-6)


def test_writing_the_same_range_again_changes_nothing(filled):
    _, client, _ = filled
    count = 'SELECT count("consumption") FROM "energy_slot" WHERE "site" = \'city-hall-annex\''
    before = client.query_rows(count)
    a_day_ago = END - model.DAY_MS
    backfill(client, a_day_ago, END, sites=["city-hall-annex"])
    assert client.query_rows(count) == before
    rows = client.query_rows('SELECT last("energy_import") FROM "meter" WHERE "site" = \'city-hall-annex\'')
    last_start = (END + 9 * 3_600_000) // model.SLOT_MS * model.SLOT_MS - 9 * 3_600_000
    assert rows[0]["last"] == pytest.approx(model.import_counter("city-hall-annex", last_start))


def test_the_plants_counters_run_into_the_live_pv_site_without_a_reset(filled):
    _, client, _ = filled
    sim = PvSiteSimulator(kwp=400, site_load_kw=150, clock=lambda: MODEL_TIME)
    sim.refresh(MODEL_TIME)
    live = {("pv-inverter", "energy_export"): sim.values(1)["energy_export"],
            ("grid-meter", "energy_import"): sim.values(2)["energy_import"],
            ("grid-meter", "energy_export"): sim.values(2)["energy_export"]}
    assert live_start_kwh(MODEL_TIME) == pytest.approx(live, rel=1e-4)     # the simulator's own start values
    for (device, metric), first_live in live.items():
        rows = client.query_rows(f'SELECT "{metric}" FROM "meter" WHERE "site" = \'hitachi-omika\' '
                                 f'AND "device" = \'{device}\' ORDER BY time DESC LIMIT 2')
        last, before = rows[0][metric], rows[1][metric]
        slot_kwh = last - before
        # the first live reading continues the history: not below it (a reset), not far above it (a jump)
        assert last <= first_live + 0.01 * max(first_live, 1.0), (device, metric, last, first_live)
        assert first_live - last <= max(3 * slot_kwh, 200.0), (device, metric, last, first_live)
        readings = pl.DataFrame({"ts": [rows[1]["time"], rows[0]["time"], END + 10_000],
                                 "value": [before, last, first_live]}, schema=service.READINGS_SCHEMA)
        assert service.consumption(readings)["event"].is_null().all()


def test_the_plants_pv_is_zero_at_night_and_its_meter_balances(filled):
    _, client, _ = filled
    (pv, grid) = [client.query_rows(f'SELECT "energy_export" FROM "meter" WHERE "site" = \'hitachi-omika\' '
                                    f'AND "device" = \'{d}\' AND time >= {int(DAY.timestamp() * 1000)}ms '
                                    f'AND time < {int(DAY.timestamp() * 1000) + model.DAY_MS}ms')
                  for d in ("pv-inverter", "grid-meter")]
    pv_steps = np.diff([r["energy_export"] for r in pv])
    assert pv_steps[:8].max() == 0 and pv_steps[40:].max() == 0        # 00:00-04:00 and 20:00-24:00
    assert pv_steps[20:28].min() > 0                                   # 10:00-14:00
    assert len(grid) == 48
