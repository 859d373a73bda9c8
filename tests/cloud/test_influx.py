"""The InfluxDB client against a real InfluxDB 1.6: round trip and error classification."""

import pytest

from cloud.config import InfluxConfig
from cloud.influx import (InfluxAuthError, InfluxClient, InfluxQueryError, InfluxRejected, InfluxUnavailable,
                          quote_string)
from cloud.lineproto import envelope_to_lines
from hinode import services
from hinode.contract import Reading, TelemetryEnvelope

pytestmark = pytest.mark.timeout(60)

TS = 1_700_000_000_000


@pytest.fixture
def client(influx):
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode", timeout_s=3)) as c:
        c.create_database()
        yield c


def test_write_and_query_round_trip_keeps_values_types_and_escaped_text(client):
    env = TelemetryEnvelope(site="plant-a", agent="edge-1", device="pm-1", kind="meter",
                            profile="ACME meter, v=2", seq=7, readings=[
                                Reading(ts=TS, metric="power_w", value=1520),
                                Reading(ts=TS, metric="status", value='said "hi" C:\\temp'),
                                Reading(ts=TS, metric="online", value=True),
                                Reading(ts=TS + 1000, metric="power_w", value=1519.5, quality="uncertain")])
    client.write_lines(envelope_to_lines(env))
    client.write_lines(envelope_to_lines(env))  # a redelivered duplicate overwrites identical points

    rows = client.query_rows("SELECT * FROM meter WHERE device = $device", params={"device": "pm-1"})
    assert rows == [
        {"_measurement": "meter", "time": TS, "agent": "edge-1", "device": "pm-1", "online": True,
         "power_w": 1520, "profile": "ACME meter, v=2", "seq": 7, "site": "plant-a",
         "status": 'said "hi" C:\\temp', "uncertain_metrics": None},
        {"_measurement": "meter", "time": TS + 1000, "agent": "edge-1", "device": "pm-1", "online": None,
         "power_w": 1519.5, "profile": "ACME meter, v=2", "seq": 7, "site": "plant-a",
         "status": None, "uncertain_metrics": "power_w"}]
    field_types = {name: kind for name, kind in client.query("SHOW FIELD KEYS FROM meter")[0]["values"]}
    assert field_types == {"online": "boolean", "power_w": "float", "seq": "integer", "status": "string",
                           "uncertain_metrics": "string"}
    tag_keys = [row[0] for row in client.query("SHOW TAG KEYS FROM meter")[0]["values"]]
    assert tag_keys == ["agent", "device", "profile", "site"]


def test_query_groups_series_with_tags(client):
    client.write_lines([f"meter,device=a,site=s p=1 {TS}", f"meter,device=b,site=s p=2 {TS}",
                        f"meter,device=b,site=s p=4 {TS + 1}"])
    series = client.query(f"SELECT count(p) FROM meter WHERE site = {quote_string('s')} GROUP BY device")
    assert [(s["tags"], s["values"]) for s in series] == [({"device": "a"}, [[0, 1]]), ({"device": "b"}, [[0, 2]])]


def test_stopped_influx_is_retryable_and_the_client_recovers(client, influx):
    client.write_lines([f"meter,site=s p=1 {TS}"])
    influx.stop()
    with pytest.raises(InfluxUnavailable, match="unreachable"):
        client.write_lines([f"meter,site=s p=2 {TS + 1}"])
    with pytest.raises(InfluxUnavailable):
        client.query("SELECT * FROM meter")
    influx.start()
    client.write_lines([f"meter,site=s p=2 {TS + 1}"])
    assert client.query("SELECT count(p) FROM meter")[0]["values"] == [[0, 2]]


def test_credentials_in_the_url_never_reach_error_messages():
    port = services.free_port()  # nothing listens there
    with InfluxClient(InfluxConfig(url=f"http://writer:url-secret@127.0.0.1:{port}")) as c:
        with pytest.raises(InfluxUnavailable) as caught:
            c.write_lines([f"meter,site=s p=1 {TS}"])
    assert "url-secret" not in str(caught.value) and f"***@127.0.0.1:{port}" in str(caught.value)


def test_field_type_conflict_is_rejected_with_the_server_message(client):
    client.write_lines([f"meter,site=s power_w=1.5 {TS}"])
    with pytest.raises(InfluxRejected) as caught:
        client.write_lines([f"meter,site=s power_w=true {TS + 1}"])
    assert caught.value.status == 400
    assert "field type conflict" in caught.value.message
    assert not isinstance(caught.value, InfluxUnavailable)


def test_unparseable_lines_are_rejected(client):
    with pytest.raises(InfluxRejected, match="unable to parse"):
        client.write_lines(["meter,site=s power_w=NaN 1"])


def test_missing_database_is_retryable_not_a_rejection(influx):
    with InfluxClient(InfluxConfig(url=influx.url, database="never_created")) as c:
        with pytest.raises(InfluxUnavailable, match="database not found") as caught:
            c.write_lines([f"meter,site=s p=1 {TS}"])
    assert caught.value.status == 404


def test_bad_influxql_is_a_query_error(client):
    with pytest.raises(InfluxQueryError, match="error parsing query"):
        client.query("SELEKT * FROM meter")


def test_gzip_writes(influx):
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode"), gzip=True) as c:
        c.create_database()
        c.write_lines([f"meter,site=s p={i} {TS + i}" for i in range(100)])
        assert c.query("SELECT count(p) FROM meter")[0]["values"] == [[0, 100]]


def test_basic_auth_and_wrong_credentials(tmp_path):
    proc = services.influxdb(tmp_path / "influx-auth")
    conf = proc.log_path.parent / "influxdb.conf"
    conf.write_text(conf.read_text().replace("[http]\n  enabled = true", "[http]\n  enabled = true\n  auth-enabled = true"))
    proc.start()
    try:
        # With auth on and no user yet, InfluxDB 1.x accepts only the first admin's creation.
        proc.query("CREATE USER admin WITH PASSWORD 'right-pw' WITH ALL PRIVILEGES")
        good = InfluxConfig(url=proc.url, username="admin", password="right-pw")
        bad = InfluxConfig(url=proc.url, username="admin", password="wrong-pw")
        with InfluxClient(good) as c:
            c.create_database()
            c.write_lines([f"meter,site=s p=1 {TS}"])
            assert c.query("SELECT p FROM meter")[0]["values"] == [[TS, 1]]
        with InfluxClient(bad) as c:
            with pytest.raises(InfluxAuthError) as caught:
                c.write_lines([f"meter,site=s p=2 {TS}"])
        assert caught.value.status == 401
        assert "wrong-pw" not in str(caught.value) and "right-pw" not in str(caught.value)
    finally:
        proc.stop()
