"""Personal data through real processes: an agent with a vitals device publishes on the personal
topic, the ingest stores it in the personal database only, and no general endpoint shows it."""

import pytest

pytestmark = pytest.mark.timeout(120)


def test_vitals_reach_only_the_personal_database_and_never_the_general_api(pipeline):
    agent = pipeline.agent([
        {"type": "synthetic", "name": "visit-kit", "kind": "vitals", "interval_s": 0.2, "metrics": 3,
         "devices": [{"id": "bp-cuff-1"}]},
        {"type": "synthetic", "name": "hall", "interval_s": 0.2, "metrics": 3, "devices": [{"id": "meter-9"}]}])

    def personal_rows():
        result = pipeline.influx.query('SELECT count("seq") FROM "vitals"', db="hinode_personal")["results"][0]
        return result.get("series", [{}])[0].get("values", [[0, 0]])[0][1]

    pipeline.wait(lambda: personal_rows() >= 10, "vitals in the personal database")
    pipeline.wait(lambda: pipeline.devices().get("meter-9", {}).get("online"), "the meter online")
    assert pipeline.query('SELECT count("seq") FROM "vitals"') == []            # nothing in the general database
    assert "bp-cuff-1" not in pipeline.devices()
    assert "bp-cuff-1" not in {d["device"] for d in pipeline.api("/api/latest")["devices"]}
    assert "bp-cuff-1" not in {d["device"] for d in pipeline.api("/api/completeness")["devices"]}
    retention = pipeline.influx.query('SHOW RETENTION POLICIES ON "hinode_personal"', db="hinode_personal")
    assert ["personal", "9600h0m0s"] == retention["results"][0]["series"][0]["values"][-1][:2]
    assert agent.metrics()["hinode_agent_published_envelopes_total"] > 0
