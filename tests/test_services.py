import json
import urllib.request

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
