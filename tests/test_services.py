from pathlib import Path
import os
import urllib.request

import pytest

from hinode import services


def test_private_broker_and_influx_start_on_loopback(broker, influx):
    assert services.port_open("127.0.0.1", broker.port)
    conf = (broker.log_path.parent / "mosquitto.conf").read_text()
    assert "set_tcp_nodelay true" in conf
    influx.query("CREATE DATABASE t")
    body = b"m,site=a v=1.5 1700000000000"
    req = urllib.request.Request(f"{influx.url}/write?db=t&precision=ms", data=body, method="POST")
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 204
    result = influx.query("SELECT v FROM m", db="t")
    assert result["results"][0]["series"][0]["values"] == [[1700000000000, 1.5]]


def test_hinode_up_puts_the_outbox_in_its_data_dir_even_when_the_data_dir_is_relative(tmp_path, monkeypatch):
    """With the default `--data-dir data` the outbox landed in data/edge/data/edge/outbox.db: the
    path was relative, and the agent resolves it against its config file's folder (data/edge)."""
    import yaml
    from edge_agent.config import load_site_config
    from hinode.up import Plan, site_config
    monkeypatch.chdir(tmp_path)
    ports = {"mqtt": 1883, "modbus": 15020, "sunspec": 15021, "opcua": 14840, "agent_metrics": 19108,
             "pv_site": 15022, "ocpp": 19000}
    (tmp_path / "data" / "edge").mkdir(parents=True)
    secrets = tmp_path / "data" / "edge" / "charger-secrets.yaml"
    secrets.write_text(yaml.safe_dump({f"CP{i:02d}": "pw" for i in range(1, 11)}))
    config = site_config(Plan(data_dir=Path("data")), ports, secrets)
    site_yaml = tmp_path / "data" / "edge" / "site.yaml"
    site_yaml.write_text(yaml.safe_dump(config))
    assert load_site_config(site_yaml).queue.path == tmp_path / "data" / "edge" / "outbox.db"


def test_free_port_stays_in_the_range_it_is_given_and_a_bad_range_is_named(monkeypatch):
    monkeypatch.setenv(services.PORT_RANGE_ENV, "23000-24000")
    ports = {services.free_port() for _ in range(20)}
    assert all(23000 <= port < 24000 for port in ports) and len(ports) == 20
    monkeypatch.setenv(services.PORT_RANGE_ENV, "24000-23000")
    with pytest.raises(ValueError, match="HINODE_PORT_RANGE='24000-23000': expected low-high"):
        services.free_port()


def test_each_xdist_worker_gets_its_own_port_slice(monkeypatch):
    from types import SimpleNamespace
    from tests.conftest import pytest_configure
    slices = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv(services.PORT_RANGE_ENV, "20000-32000")       # what both workers start from
        pytest_configure(SimpleNamespace(workerinput={"workerid": worker, "workercount": 2}))
        slices.append(os.environ[services.PORT_RANGE_ENV])
    assert slices == ["20000-26000", "26000-32000"]
