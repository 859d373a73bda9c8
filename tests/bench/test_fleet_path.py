"""bench/fleet_path.py: its seeded world, and a --quick run through a real broker, ingest, InfluxDB and
`python -m cloud serve`'s fleet worker (the figures themselves are the bench's; here only that it measures)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

REPO = Path(__file__).resolve().parents[2]
if not (REPO / "bench" / "fleet_path.py").is_file():     # run from outside the repository: its working directory
    REPO = Path.cwd()
sys.path.insert(0, str(REPO / "bench"))

import fleet_path  # noqa: E402
import fleet_scenario as scenario  # noqa: E402

from cloud.domains.fleet.events import fixes_from_envelope  # noqa: E402
from cloud.domains.fleet.zones import ZoneIndex  # noqa: E402
from hinode import contract, mobility  # noqa: E402


def test_zones_are_seeded_valid_and_load_as_the_fleet_domains_zones():
    zones = scenario.make_zones(500, seed=3)
    assert zones == scenario.make_zones(500, seed=3)
    assert zones != scenario.make_zones(500, seed=4)
    index = ZoneIndex.from_geojson(zones, source="bench")
    assert len(index) == 500
    assert all(shape(f["geometry"]).is_valid for f in zones["features"])
    kinds = {f["properties"]["kind"] for f in zones["features"]}
    assert kinds == {"slow", "no_parking", "no_ride"}
    assert all(f["properties"]["max_speed_kmh"] > 0 for f in zones["features"] if f["properties"]["kind"] == "slow")


def test_a_fix_payload_is_a_vehicle_envelope_with_the_vocabularys_units():
    zones = scenario.make_zones(20, seed=0)
    vehicle = scenario.make_vehicles(1, zones, seed=0)[0]
    lon, lat, heading = vehicle.position(12.5)
    payload = scenario.fix_payload(vehicle, 7, 1_790_000_000_123, lon, lat, heading)
    assert mobility.is_vehicle_payload(payload)
    envelope = contract.decode_telemetry(payload, contract.telemetry_topic(scenario.FLEET, vehicle.id))
    assert (envelope.site, envelope.agent, envelope.device, envelope.seq) == (scenario.FLEET, vehicle.id, vehicle.id, 7)
    assert all(r.unit == mobility.VEHICLE_METRICS[r.metric] for r in envelope.readings)
    [fix] = fixes_from_envelope(envelope)
    assert (fix.ts_ms, fix.speed_kmh, fix.state, fix.vehicle_type) == (
        1_790_000_000_123, vehicle.speed_kmh, "on_trip", vehicle.vehicle_type)
    assert fix.lon == pytest.approx(lon, abs=1e-7) and fix.lat == pytest.approx(lat, abs=1e-7)


def test_vehicles_move_at_their_speed_and_cross_zone_edges_every_minute_or_so():
    zones = scenario.make_zones(500, seed=0)
    vehicles = scenario.make_vehicles(1000, zones, seed=0)
    assert all(v.speed_kmh <= mobility.VEHICLE_TYPE_INFO[v.vehicle_type].max_speed_kmh for v in vehicles)

    def step_m(v):
        (lon1, lat1, _), (lon2, lat2, _) = v.position(1.0), v.position(2.0)
        return math.hypot((lon2 - lon1) * scenario._M_PER_DEG_LON, (lat2 - lat1) * scenario._M_PER_DEG_LAT)

    at_speed = [step_m(v) == pytest.approx(v.speed_kmh / 3.6, rel=1e-6) for v in vehicles]
    assert sum(at_speed) >= 990       # the others turned back within that second
    assert all(step_m(v) <= v.speed_kmh / 3.6 + 1e-6 for v in vehicles)
    rounds = 13     # a fix every 5 s for a minute, after the first
    points = np.array([(*v.position(5.0 * k)[:2], 5000.0 * k) for k in range(rounds) for v in vehicles])
    tree = shapely.STRtree([shape(f["geometry"]) for f in zones["features"]])
    hits = tree.query(shapely.points(points[:, :2]), predicate="intersects")
    changes = fleet_path.expected_zone_events(hits, points, len(vehicles), (5.0, 1e9))
    assert changes >= len(vehicles)           # at least one entry or exit per vehicle-minute
    assert fleet_path.expected_zone_events(hits, points, len(vehicles), (1e8, 1e9)) == 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_quick_run_measures_the_path_through_broker_ingest_and_the_fleet_worker(tmp_path):
    out = tmp_path / "fleet.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "fleet_path.py"), "--quick", "--worker", "serve",
                          "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=380)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r = json.loads(out.read_text())
    sent_s = r["warmup_s"] + r["window_s"] + 1.0
    assert r["published"] == pytest.approx(r["vehicles"] / r["interval_s"] * sent_s, rel=0.05)
    assert r["acked"] == r["published"] and r["refused"] == 0 and r["unacked"] == 0
    assert r["stored_by_ingest"] == r["published"]
    assert r["zone_events_expected"] > 100
    assert r["zone_events_seen"] >= 0.9 * r["zone_events_expected"]
    assert 0 < r["latency_ms"]["p50"] < 60_000
    assert r["worker_us_per_update"] > 0 and r["reference"]["per_point_us"] > 0
    assert r["paho_alone"]["handled"] == pytest.approx(r["published_in_window"], rel=0.05)
    assert r["stages"]["us_per_fix"]["FleetTracker.update (zones included)"] > 0
    assert "cloud serve" in r["worker"]
    assert "ratio fleet worker CPU per update / shapely per-point query:" in run.stdout
    assert "ratio p99 latency / target:" in run.stdout
