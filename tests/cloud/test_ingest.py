"""The ingest end to end: real Mosquitto -> IngestService -> real InfluxDB.

What a user sees: the values in InfluxDB under the documented schema, dead letters on
the dead-letter topics with their reason, and the counters.
"""

import json
import logging

import pytest

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from hinode import contract
from hinode.contract import Reading, TelemetryEnvelope
from tests.cloud.test_ingest_kit import (DeadLetterListener, Publisher, distinct_seqs, ingest_config, meter_envelope, now_ms,
                             running_ingest, wait_until)
from tests.support.prometheus_checks import check_exposition, value

pytestmark = pytest.mark.timeout(60)

SITE, AGENT = "hitachi-plant-a", "edge-1"


def realistic_envelopes(ts: int) -> dict[str, TelemetryEnvelope]:
    def env(kind, device, profile, readings, **extra):
        return TelemetryEnvelope(site=SITE, agent=AGENT, device=device, kind=kind, profile=profile, seq=1,
                                 readings=[Reading(ts=ts, **r) for r in readings], **extra)
    return {
        "meter": env("meter", "pm-line-3", "hinode-sim-meter", [
            {"metric": "active_power_w", "value": 15230.5, "unit": "W"},
            {"metric": "energy_import_wh", "value": 48_211_900, "unit": "Wh"},
            {"metric": "voltage_l1_v", "value": 229.8, "unit": "V"},
            {"metric": "power_factor", "value": 0.97}]),
        "charger": env("charger", "cp-07", "ocpp-1.6j", [
            {"metric": "status", "value": "Charging"},
            {"metric": "power_w", "value": 7200, "unit": "W"},
            {"metric": "session_energy_wh", "value": 5312.0, "unit": "Wh"},
            {"metric": "plugged_in", "value": True}]),
        "vitals": env("vitals", "hr-band-12", "ble-heart-rate", [
            {"metric": "heart_rate_bpm", "value": 72, "unit": "bpm"},
            {"metric": "spo2_pct", "value": 97.5, "unit": "%"},
            {"metric": "body_temp_c", "value": 36.6, "unit": "Cel", "quality": "uncertain"}],
            meta={"consent": "c-2024-0012"}),
        "vehicle": env("vehicle", "scooter-041", "gbfs-2.3", [
            {"metric": "lat", "value": 36.5993}, {"metric": "lon", "value": 140.6512},
            {"metric": "speed_kmh", "value": 4.2, "unit": "km/h"},
            {"metric": "battery_pct", "value": 81, "unit": "%"}, {"metric": "locked", "value": False}]),
        "agent": env("agent", "edge-1", "", [
            {"metric": "uptime_s", "value": 86_400, "unit": "s"},
            {"metric": "buffer_depth", "value": 0},
            {"metric": "cpu_temp_c", "value": None, "quality": "bad"},
            {"metric": "mqtt_connected", "value": True}]),
    }


def test_every_kind_lands_in_influx_under_the_schema(broker, influx):
    ts = now_ms() - 5_000
    envelopes = realistic_envelopes(ts)
    publisher = Publisher(broker)
    with running_ingest(ingest_config(broker, influx)) as service:
        for env in envelopes.values():
            publisher.envelope(env).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 5, 15, "5 envelopes acked")
        stats = service.stats()
    publisher.close()
    assert stats["written_envelopes"] == 5 and stats["dead_letter_total"] == 0
    assert stats["bad_quality_readings"] == 1 and stats["uncertain_quality_readings"] == 1
    assert stats["written_readings"] == 19  # 20 readings minus the bad one

    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        for kind, env in envelopes.items():
            # Personal kinds live in their own database (influx.personal), never in the general one.
            database = "hinode_personal" if contract.is_personal(kind) else "hinode"
            other = "hinode" if contract.is_personal(kind) else "hinode_personal"
            assert client.query_rows(f'SELECT * FROM "{kind}"', database=other) == [], kind
            rows = client.query_rows(f'SELECT * FROM "{kind}"', database=database)
            assert len(rows) == 1, kind
            row = rows[0]
            tags = {"site": SITE, "agent": AGENT, "device": env.device, **env.meta}
            if env.profile:
                tags["profile"] = env.profile
            assert {k: row[k] for k in ("site", "agent", "device", "profile", *env.meta) if row.get(k)} == tags
            assert row["time"] == ts and row["seq"] == 1
            for reading in env.readings:
                expected = None if reading.quality == "bad" else reading.value
                assert row.get(reading.metric) == expected, (kind, reading.metric)
            tag_keys = {r[0] for r in client.query(f'SHOW TAG KEYS FROM "{kind}"', database=database)[0]["values"]}
            assert tag_keys <= {"site", "agent", "device", "profile"} | contract.META_KEYS[kind]
            field_types = dict(client.query(f'SHOW FIELD KEYS FROM "{kind}"', database=database)[0]["values"])
            assert field_types["seq"] == "integer"
            for reading in env.readings:
                if isinstance(reading.value, bool):
                    assert field_types[reading.metric] == "boolean"
                elif isinstance(reading.value, (int, float)):
                    assert field_types[reading.metric] == "float", (kind, reading.metric)
        assert client.query_rows('SELECT uncertain_metrics FROM vitals',
                                 database="hinode_personal")[0]["uncertain_metrics"] == "body_temp_c"
        retention = {r[0]: r[1] for r in client.query('SHOW RETENTION POLICIES ON "hinode_personal"')[0]["values"]}
        assert retention["personal"] == "9600h0m0s"      # influx.personal.retention: 400d
        assert client.query_rows('SELECT bad_metrics FROM agent')[0]["bad_metrics"] == "cpu_temp_c"


def test_bad_payloads_are_dead_lettered_and_good_traffic_is_all_stored(broker, influx, caplog):
    caplog.set_level(logging.WARNING, logger="cloud.ingest")
    topic = contract.telemetry_topic(SITE, AGENT)
    good = [meter_envelope(seq, site=SITE, agent=AGENT) for seq in range(1, 41)]
    unknown_version = json.loads(contract.encode(good[0]))
    unknown_version["v"] = 2
    wrong_types = json.loads(contract.encode(good[0]))
    wrong_types["seq"] = "forty-two"
    other_site = meter_envelope(1, site="plant-b", agent=AGENT)
    bad = [
        ("malformed_json", b'{"v": 1, "site": '),
        ("wrong_type", b"[1, 2, 3]"),
        ("unknown_version", json.dumps(unknown_version).encode()),
        ("invalid", json.dumps(wrong_types).encode()),
        ("oversized", b'{"v": 1, "pad": "' + b"x" * contract.MAX_PAYLOAD_BYTES + b'"}'),
        ("topic_mismatch", contract.encode(other_site)),
    ]
    listener = DeadLetterListener(broker)
    publisher = Publisher(broker)
    with running_ingest(ingest_config(broker, influx)) as service:
        infos = []
        for index, env in enumerate(good):
            infos.append(publisher.envelope(env))
            if index % 7 == 3 and bad:
                infos.append(publisher.raw(topic, bad.pop(0)[1]))
        for _, payload in bad:
            infos.append(publisher.raw(topic, payload))
        for info in infos:
            info.wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 46, 20, "46 messages acked")
        stats = service.stats()
    publisher.close()
    letters = wait_until(lambda: len(listener.snapshot()) >= 6 and listener.snapshot(), 5, "6 dead letters")
    listener.close()

    codes = ["malformed_json", "wrong_type", "unknown_version", "invalid", "oversized", "topic_mismatch"]
    assert sorted(t for t, _ in letters) == sorted(contract.dead_letter_topic(c) for c in codes)
    for topic_seen, letter in letters:
        code = topic_seen.rsplit("/", 1)[1]
        assert letter.reason.startswith(f"{code}: ") and len(letter.reason) > len(code) + 2
        assert letter.topic == topic
        assert len(letter.payload.encode()) <= 4096 + 3
    by_code = {t.rsplit("/", 1)[1]: letter for t, letter in letters}
    assert by_code["invalid"].reason.startswith("invalid: seq:")
    assert by_code["oversized"].payload.startswith('{"v": 1, "pad": "xxx')
    assert stats["dead_letter"] == {code: 1 for code in codes}
    assert stats["received"] == 46 and stats["written_envelopes"] == 40
    assert distinct_seqs(influx) == {"pm-1": 40}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "dead letter" in r.getMessage()]
    assert len(warnings) == 6 and any("topic_mismatch" in w for w in warnings)


def test_a_reading_of_the_wrong_type_is_dead_lettered_alone_and_the_rest_of_its_envelope_is_stored(broker, influx):
    """One string where the field is numeric used to dead-letter the whole envelope: its good readings were lost."""
    listener = DeadLetterListener(broker)
    publisher = Publisher(broker)
    ts = now_ms()
    # A large batch window so the conflicting envelope shares its batch with good ones.
    with running_ingest(ingest_config(broker, influx, batch_max_ms=400)) as service:
        publisher.envelope(meter_envelope(1, ts=ts)).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 1, 10, "first envelope stored")
        conflicting = TelemetryEnvelope(site="plant-a", agent="edge-1", device="pm-1", kind="meter", seq=9,
                                        readings=[Reading(ts=ts + 9, metric="power_w", value="n/a"),
                                                  Reading(ts=ts + 9, metric="voltage_v", value=231.5)])
        infos = [publisher.envelope(meter_envelope(seq, ts=ts + seq)) for seq in range(2, 9)]
        infos.append(publisher.envelope(conflicting))
        infos += [publisher.envelope(meter_envelope(seq, ts=ts + seq)) for seq in range(10, 17)]
        for info in infos:
            info.wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 16, 15, "16 messages acked")
        stats = service.stats()
    publisher.close()
    letters = wait_until(listener.snapshot, 5, "the dead letter")
    listener.close()
    assert [t for t, _ in letters] == [contract.dead_letter_topic("field_type_conflict")]
    letter = letters[0][1]
    assert "power_w sent as string, stored as float" in letter.reason
    carried = json.loads(letter.payload)
    assert [(r["metric"], r["value"]) for r in carried["readings"]] == [("power_w", "n/a")]
    assert stats["dead_letter"] == {"field_type_conflict": 1} and stats["type_conflict_readings"] == 1
    assert distinct_seqs(influx) == {"pm-1": 16}
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        row = client.query_rows(f'SELECT voltage_v, power_w, bad_metrics FROM meter WHERE time = {ts + 9}ms')[0]
    assert row["voltage_v"] == 231.5 and row["power_w"] is None and row["bad_metrics"] == "power_w"


def test_personal_data_influx_refuses_is_dead_lettered_without_its_payload(broker, influx, caplog):
    caplog.set_level(logging.DEBUG)
    listener = DeadLetterListener(broker)
    publisher = Publisher(broker)
    ts = now_ms()
    config = ingest_config(broker, influx, influx_options={"personal": {"retention": "1h"}})
    with running_ingest(config) as service:
        # Older than the personal retention policy: InfluxDB refuses the point ("beyond retention policy").
        old = TelemetryEnvelope(site="plant-a", agent="edge-1", device="bp-7", kind="vitals", seq=1,
                                readings=[Reading(ts=ts - 3 * 3600_000, metric="systolic", value=128.0)],
                                meta={"subject": "p-5c1e"})
        fresh = TelemetryEnvelope(site="plant-a", agent="edge-1", device="bp-7", kind="vitals", seq=2,
                                  readings=[Reading(ts=ts, metric="systolic", value=131.0)], meta={"subject": "p-5c1e"})
        publisher.envelope(old).wait_for_publish(5)
        publisher.envelope(fresh).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 2, 15, "2 messages acked")
        stats = service.stats()
        metrics = service.prometheus_text()
    publisher.close()
    letters = wait_until(listener.snapshot, 5, "the dead letter")
    listener.close()
    assert [t for t, _ in letters] == [contract.dead_letter_topic("influx_rejected")]
    letter = letters[0][1]
    assert letter.personal and letter.payload == "" and letter.payload_bytes == len(contract.encode(old))
    assert letter.topic == contract.personal_topic("plant-a", "edge-1")
    assert stats["dead_letter"] == {"influx_rejected": 1}
    assert distinct_seqs(influx, database="hinode_personal", measurement="vitals") == {"bp-7": 1}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("p-5c1e", "systolic", "128.0", "131.0"):
        assert secret not in logged and secret not in metrics and secret not in letter.reason


def test_prometheus_text_and_stats_carry_counters_but_no_secrets(broker, influx, caplog):
    caplog.set_level(logging.DEBUG)
    config = ingest_config(broker, influx,
                           mqtt_options={"username": "ingest", "password": "mqtt-pw-do-not-show"},
                           influx_options={"username": "writer", "password": "influx-pw-do-not-show"})
    publisher = Publisher(broker)
    with running_ingest(config) as service:
        publisher.envelope(meter_envelope(1)).wait_for_publish(5)
        publisher.raw(contract.telemetry_topic("plant-a", "edge-1"), b"nope").wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 2, 10, "2 messages acked")
        text = service.prometheus_text()
        stats = service.stats()
    publisher.close()
    families = check_exposition(text, histograms=("hinode_ingest_lag_seconds", "hinode_ingest_influx_write_seconds"))
    assert value(families, "hinode_ingest_received_total") == 2
    assert value(families, "hinode_ingest_written_envelopes_total") == 1
    assert value(families, "hinode_ingest_dead_letter_total", reason="malformed_json") == 1
    assert families["hinode_ingest_queue_depth"].type == "gauge" and value(families, "hinode_ingest_queue_depth") == 0
    assert {"hinode_ingest_lag_max_seconds", "hinode_ingest_last_batch_duration_seconds"} <= set(families)
    for secret in ("mqtt-pw-do-not-show", "influx-pw-do-not-show"):
        assert secret not in text and secret not in json.dumps(stats) and secret not in caplog.text


def test_duplicates_overwrite_identical_points_and_seq_gaps_are_counted(broker, influx):
    publisher = Publisher(broker)
    with running_ingest(ingest_config(broker, influx)) as service:
        for seq in (1, 2, 2, 5, 1):  # a redelivered 2, a gap of 3 and 4, an old 1 again
            publisher.envelope(meter_envelope(seq)).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 5, 10, "5 messages acked")
        stats = service.stats()
    publisher.close()
    assert stats["written_envelopes"] == 5
    assert (stats["duplicates"], stats["gaps"]) == (2, 2)
    assert stats["devices"] == {"plant-a/pm-1": {"highest_seq": 5, "duplicates": 2, "gaps": 2}}
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        assert client.query("SELECT count(power_w) FROM meter")[0]["values"][0][1] == 3
    assert distinct_seqs(influx) == {"pm-1": 3}


def test_declared_meta_keys_become_tags_and_others_are_refused_and_counted(broker, influx):
    publisher = Publisher(broker)
    ts = now_ms()
    scooter = dict(site="plant-a", agent="edge-1", kind="vehicle", readings=[Reading(ts=ts, metric="battery_pct", value=81)])
    with running_ingest(ingest_config(broker, influx, meta_max_values=2)) as service:
        envelopes = [
            TelemetryEnvelope(device="sc-1", seq=1, meta={"fleet": "hitachi-east", "rider": "taro"}, **scooter),
            TelemetryEnvelope(device="sc-2", seq=1, meta={"fleet": "hitachi-west"}, **scooter),
            TelemetryEnvelope(device="sc-3", seq=1, meta={"fleet": "third-fleet"}, **scooter),     # over the bound
            TelemetryEnvelope(device="sc-4", seq=1, meta={"fleet": "has space"}, **scooter),       # not an id
        ]
        for envelope in envelopes:
            publisher.envelope(envelope).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 4, 15, "4 envelopes acked")
        stats = service.stats()
        text = service.prometheus_text()
    publisher.close()
    assert stats["written_envelopes"] == 4 and stats["dead_letter_total"] == 0     # the readings are all stored
    assert stats["meta_refused"] == {("vehicle", "undeclared_key"): 1, ("vehicle", "too_many_values"): 1,
                                     ("vehicle", "not_an_id"): 1}
    assert 'hinode_ingest_meta_refused_total{kind="vehicle",reason="undeclared_key"} 1.0' in text
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        tags = {r[0] for r in client.query('SHOW TAG KEYS FROM "vehicle"')[0]["values"]}
        fleets = {r["device"]: r.get("fleet") for r in client.query_rows('SELECT battery_pct, fleet FROM vehicle GROUP BY device')}
    assert tags == {"site", "agent", "device", "fleet"}
    assert fleets == {"sc-1": "hitachi-east", "sc-2": "hitachi-west", "sc-3": None, "sc-4": None}


def test_catalogs_and_command_results_are_stored_and_personal_catalogs_kept_apart(broker, influx):
    publisher = Publisher(broker)
    ts = now_ms()
    catalog = contract.AgentCatalog(site="plant-a", agent="edge-1", ts=ts, devices=[
        contract.DeviceCatalog(device="pm-1", kind="meter", profile="site-meter", metrics=[
            contract.MetricInfo(metric="energy_import", unit="kWh", counter=True, rollover=42949672.96),
            contract.MetricInfo(metric="power_limit", unit="kW", writable=True)]),
        contract.DeviceCatalog(device="bp-7", kind="vitals", profile="ble-bp", metrics=[
            contract.MetricInfo(metric="systolic", unit="mm[Hg]")])])
    result = contract.CommandResult(id="c-1", site="plant-a", agent="edge-1", status="done", message="wrote 40",
                                    ts=ts, data={"value": 40})
    with running_ingest(ingest_config(broker, influx)) as service:
        publisher.raw(contract.catalog_topic("plant-a", "edge-1"), contract.encode(catalog)).wait_for_publish(5)
        publisher.raw(contract.result_topic("plant-a", "edge-1"), contract.encode(result)).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 2, 15, "catalog and result acked")
    publisher.close()
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        general = client.query_rows('SELECT * FROM hinode_catalog')
        personal = client.query_rows('SELECT * FROM hinode_catalog', database="hinode_personal")
        results = client.query_rows('SELECT * FROM hinode_command_result')
    assert {(r["device"], r["metric"], r["unit"], r["counter"], r["rollover"], r["writable"]) for r in general} == {
        ("pm-1", "energy_import", "kWh", True, 42949672.96, False), ("pm-1", "power_limit", "kW", False, 0.0, True)}
    assert [(r["device"], r["metric"]) for r in personal] == [("bp-7", "systolic")]
    assert [(r["id"], r["status"], r["message"], r["data"]) for r in results] == [("c-1", "done", "wrote 40", '{"value":40}')]
