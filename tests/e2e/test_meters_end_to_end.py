"""Values served by the simulators reach InfluxDB and the API through a real agent,
broker, ingest and InfluxDB: Modbus TCP, Modbus RTU, SunSpec, OPC UA (plain and secured)."""

import pytest

from hinode.certs import make_self_signed

pytestmark = pytest.mark.timeout(120)

PHASES = ("l1", "l2", "l3")


def assert_meter_physics(values: dict) -> None:
    """What a factory manager would check on the board: plausible, self-consistent values."""
    for phase in PHASES:
        assert 220 < values[f"voltage_{phase}"] < 240
        assert values[f"current_{phase}"] >= 0
    assert values["power_total"] == pytest.approx(sum(values[f"power_{p}"] for p in PHASES), rel=1e-3)
    assert 0.8 < values["power_factor"] <= 1.0
    assert 49 < values["frequency"] < 51
    assert values["energy_import"] > 0


def latest(pipeline, device: str) -> dict:
    return pipeline.api(f"/api/devices/plant-1/{device}/latest")["values"]


def test_modbus_tcp_meters_reach_influxdb_and_api(pipeline):
    sim = pipeline.simulator("modbus", "--port", "0", "--meters", "3", "--interval", "0.2")
    pipeline.agent([{"type": "modbus", "name": "hall-a", "transport": "tcp", "host": "127.0.0.1",
                     "port": sim.tcp_port, "poll_interval_s": 0.2,
                     "devices": [{"id": f"meter-{u}", "unit": u, "profile": "hinode-sim-meter"} for u in (1, 2, 3)]}])
    pipeline.wait(lambda: all(pipeline.seq_accounting().get(f"meter-{u}", (0,))[0] >= 10 for u in (1, 2, 3)),
                  "10 envelopes per meter in InfluxDB")
    rows = pipeline.query('SELECT last("power_total") AS p, last("energy_import") AS e FROM "meter" GROUP BY "device"')
    assert {r["device"] for r in rows} == {"meter-1", "meter-2", "meter-3"}
    for unit in (1, 2, 3):
        assert_meter_physics(latest(pipeline, f"meter-{unit}"))
    # the board's view: every meter online, nothing missing
    devices = pipeline.wait(lambda: (d := pipeline.devices()) and all(d[f"meter-{u}"]["online"] for u in (1, 2, 3)) and d,
                            "meters online in the API")
    for unit in (1, 2, 3):
        assert devices[f"meter-{unit}"]["completeness"]["missing"] == 0
    # live: values keep changing
    first = pipeline.query('SELECT last("seq") FROM "meter" WHERE "device"=\'meter-1\'')[0]["last"]
    pipeline.wait(lambda: pipeline.query('SELECT last("seq") FROM "meter" WHERE "device"=\'meter-1\'')[0]["last"] > first + 5,
                  "new envelopes")


def test_modbus_rtu_meter_over_serial_line(pipeline):
    sim = pipeline.simulator("modbus", "--rtu", "--meters", "2", "--interval", "0.5", "--baudrate", "38400")
    pipeline.agent([{"type": "modbus", "name": "rs485", "transport": "rtu",
                     "serial": {"port": sim.pts, "baudrate": 38400}, "poll_interval_s": 0.5, "timeout_s": 1.0,
                     "devices": [{"id": f"rtu-{u}", "unit": u, "profile": "hinode-sim-meter"} for u in (1, 2)]}])
    pipeline.wait(lambda: all(pipeline.seq_accounting().get(f"rtu-{u}", (0,))[0] >= 3 for u in (1, 2)),
                  "RTU meters in InfluxDB")
    assert_meter_physics(latest(pipeline, "rtu-2"))


def test_sunspec_meter_is_discovered_without_a_profile(pipeline):
    sim = pipeline.simulator("modbus", "--sunspec", "--port", "0", "--meters", "1", "--interval", "0.5")
    pipeline.agent([{"type": "sunspec", "name": "pv", "transport": "tcp", "host": "127.0.0.1",
                     "port": sim.tcp_port, "poll_interval_s": 0.5, "devices": [{"id": "pv-meter", "unit": 1}]}])
    pipeline.wait(lambda: pipeline.seq_accounting().get("pv-meter", (0,))[0] >= 3, "SunSpec meter in InfluxDB")
    values = pipeline.wait(lambda: (v := latest(pipeline, "pv-meter")) and "manufacturer" in v and v,
                           "model 1 identity stored")
    assert 220 < values["voltage_l1"] < 240
    assert values["frequency"] == pytest.approx(50, abs=1)
    assert values["power_total"] > 0
    assert "reactive_power" not in values        # "not implemented" (0x8000) is filtered, not stored


@pytest.mark.parametrize("secured", [False, True], ids=["plain", "Basic256Sha256"])
def test_opcua_meters_by_subscription(pipeline, tmp_path, secured):
    sim_args = ["opcua", "--port", "0", "--meters", "2", "--interval", "0.3"]
    security = {}
    if secured:
        cert, key = tmp_path / "edge-client.der", tmp_path / "edge-client.key"
        make_self_signed(cert, key, "edge-01", "urn:hinode:edge:edge-01")
        sim_args += ["--security", "Basic256Sha256", "--cert-dir", str(tmp_path / "server-pki"), "--trust", str(cert)]
        security = {"security": {"policy": "Basic256Sha256", "mode": "SignAndEncrypt",
                                 "certificate": str(cert), "private_key": str(key)}}
    sim = pipeline.simulator(*sim_args)
    pipeline.agent([{"type": "opcua", "name": "line-2", "endpoint": f"opc.tcp://127.0.0.1:{sim.tcp_port}/hinode/",
                     "mode": "subscribe", "publishing_interval_ms": 300, "sampling_interval_ms": 100, **security,
                     "devices": [{"id": f"ua-{i}", "profile": "hinode-sim-meter-opcua", "node_name": f"Meter0{i}"}
                                 for i in (1, 2)]}])
    pipeline.wait(lambda: all(pipeline.seq_accounting().get(f"ua-{i}", (0,))[0] >= 3 for i in (1, 2)),
                  "OPC UA meters in InfluxDB")
    values = pipeline.wait(lambda: (v := latest(pipeline, "ua-1")) and "energy_import" in v and "power_l3" in v and v,
                           "all OPC UA metrics")
    assert 220 < values["voltage_l1"] < 240
    assert values["energy_import"] > 0


def test_units_of_a_site_local_profile_reach_the_api(pipeline, tmp_path):
    """A profile kept in the site's own profile_dirs showed values without units: the cloud re-read shipped files."""
    import yaml
    from device_profiles.schema import find_profile
    profile = yaml.safe_load(find_profile("hinode-sim-meter").read_text())
    profile["id"] = "omika-hall-meter"
    profile["registers"] = [dict(r, unit="kW" if r["metric"] == "power_limit" else r.get("unit", ""))
                            for r in profile["registers"]]
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "omika-hall-meter.yaml").write_text(yaml.safe_dump(profile))
    sim = pipeline.simulator("modbus", "--port", "0", "--meters", "1", "--interval", "0.5")
    pipeline.agent([{"type": "modbus", "name": "hall-a", "transport": "tcp", "host": "127.0.0.1",
                     "port": sim.tcp_port, "poll_interval_s": 0.5,
                     "devices": [{"id": "hall-meter", "unit": 1, "profile": "omika-hall-meter"}]}],
                   profile_dirs=[str(tmp_path / "profiles")])
    device = pipeline.wait(lambda: (d := pipeline.devices().get("hall-meter")) and d["units"] and d,
                           "units of the site-local profile in /api/devices")
    assert device["profile"] == "omika-hall-meter"
    assert device["units"]["voltage_l1"] == "V" and device["units"]["energy_import"] == "kWh"
    assert device["counters"] == ["energy_import"]
    assert latest(pipeline, "hall-meter") and pipeline.api("/api/devices/plant-1/hall-meter/latest")["units"]["power_total"] == "W"
