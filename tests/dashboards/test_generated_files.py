"""The generated boards and provisioning files, checked without a Grafana server (none can run here):
the JSON round-trips through the SDK's typed models, uids are stable and paired per language, and the
YAML files carry the keys Grafana's provisioning reads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import catalog
from dashboards.common import DATASOURCE_UID, InfluxQLQuery
from dashboards.provisioning import datasource, export

UIDS = {"hinode-site-energy-en", "hinode-site-energy-ja", "hinode-operations-en", "hinode-operations-ja",
        "hinode-charging-en", "hinode-charging-ja", "hinode-co2-en", "hinode-co2-ja",
        "hinode-interchange-en", "hinode-interchange-ja", "hinode-fleet-en", "hinode-fleet-ja"}


def test_boards_have_stable_uids_in_two_languages():
    boards = catalog.all_dashboards()
    assert set(boards) == UIDS
    assert catalog.all_dashboards() == boards                      # deterministic: same JSON every time
    for base in ("hinode-site-energy", "hinode-operations", "hinode-charging", "hinode-co2", "hinode-interchange",
                 "hinode-fleet"):
        en, ja = boards[f"{base}-en"], boards[f"{base}-ja"]
        assert [p["id"] for p in en["panels"]] == [p["id"] for p in ja["panels"]]
        assert [p["title"] for p in en["panels"]] != [p["title"] for p in ja["panels"]]
        assert [q for _, _, q in catalog.panel_queries(en)] == [q for _, _, q in catalog.panel_queries(ja)]
        assert any("\u3040" <= ch <= "\u9fff" for p in ja["panels"] for ch in p["title"])


@pytest.mark.parametrize("uid", sorted(UIDS))
def test_board_json_round_trips_through_the_sdk_types(uid):
    board = catalog.all_dashboards()[uid]
    model = Dashboard.from_json(board)
    assert model.uid == uid
    assert all(isinstance(t, InfluxQLQuery) for p in model.panels for t in p.targets or [])
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == board


def test_every_target_and_variable_uses_the_influxql_datasource():
    for board in catalog.all_dashboards().values():
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID and target["rawQuery"] is True
                assert "from(bucket" not in target["query"]                      # no Flux
        for name, query in catalog.variable_queries(board):
            assert query.startswith("SHOW TAG VALUES"), name
        assert board["fiscalYearStartMonth"] == 3                                # April (0 = January)
        assert board["timezone"] == "Asia/Tokyo"


def test_export_writes_what_grafana_provisioning_reads(tmp_path):
    paths = export(tmp_path, influx_url="http://influx:8086", database="hinode", user="grafana",
                   password_env="INFLUX_PASSWORD")
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert names == {"datasources/hinode.yaml", "dashboards/hinode.yaml", "alerting/hinode.yaml",
                     *{f"dashboards/json/{uid}.json" for uid in UIDS}}
    sources = yaml.safe_load((tmp_path / "datasources/hinode.yaml").read_text())
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert (source["uid"], source["type"], source["url"]) == (DATASOURCE_UID, "influxdb", "http://influx:8086")
    assert source["jsonData"]["version"] == "InfluxQL" and source["jsonData"]["dbName"] == "hinode"
    assert source["secureJsonData"] == {"password": "${INFLUX_PASSWORD}"} and source["user"] == "grafana"
    providers = yaml.safe_load((tmp_path / "dashboards/hinode.yaml").read_text())
    assert providers["apiVersion"] == 1
    assert providers["providers"][0]["options"]["path"] == str((tmp_path / "dashboards/json").resolve())
    for uid in UIDS:
        assert json.loads((tmp_path / f"dashboards/json/{uid}.json").read_text())["uid"] == uid
    alerting = yaml.safe_load((tmp_path / "alerting/hinode.yaml").read_text())
    assert alerting["apiVersion"] == 1
    rules = alerting["groups"][0]["rules"]
    assert {r["uid"] for r in rules} == {"hinode-device-offline", "hinode-outbox-growing", "hinode-completeness-low",
                                         "hinode-power-limit-default"}
    for rule in rules:
        assert rule["condition"] == "C" and rule["title"]
        refs = {q["refId"]: q for q in rule["data"]}
        assert refs["A"]["datasourceUid"] == DATASOURCE_UID and refs["A"]["relativeTimeRange"]["from"] > 0
        assert refs["B"]["model"]["type"] == "reduce" and refs["C"]["model"]["type"] == "threshold"
    assert "contactPoints" not in alerting                   # left to the operator


def test_token_datasource_for_influxdb_2_and_3_never_holds_the_secret():
    for version in (2, 3):
        (source,) = datasource(influx_url="https://influx:8181", database="hinode", token_env="INFLUX_TOKEN",
                               influx_version=version)["datasources"]
        assert source["jsonData"]["httpHeaderName1"] == "Authorization"
        assert source["secureJsonData"] == {"httpHeaderValue1": "Token ${INFLUX_TOKEN}"}
        assert source["jsonData"]["version"] == "InfluxQL"
    with pytest.raises(ValueError):
        datasource(password_env="A", token_env="B")
    with pytest.raises(ValueError):
        datasource(influx_version=4)


def test_export_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dashboards", "export", str(tmp_path), "--token-env", "TOK",
                             "--influx-version", "2", "--power-limit", "hitachi-omika=120000",
                             "--grafana-dir", "/etc/grafana/provisioning"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3 + len(UIDS)
    provider = yaml.safe_load((tmp_path / "dashboards/hinode.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/etc/grafana/provisioning/dashboards/json"
    rules = yaml.safe_load((tmp_path / "alerting/hinode.yaml").read_text())["groups"][0]["rules"]
    (site_rule,) = [r for r in rules if r["uid"] == "hinode-power-limit-hitachi-omika"]
    assert site_rule["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [120000.0]
    assert "'hitachi-omika'" in site_rule["data"][0]["model"]["query"]


def grafana_expand(text: str, environ: dict[str, str]) -> str:
    """What Grafana does to a provisioning file before parsing it: $NAME / ${NAME} from the
    environment (unset: empty), $$ a literal $ (an honest substitute: no Grafana server runs here)."""
    import re
    return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)",
                  lambda m: "$" if m.group(0) == "$$" else environ.get(m.group(1) or m.group(2), ""), text)


def test_alert_rules_survive_grafanas_environment_expansion_of_provisioning_files(tmp_path):
    """Grafana would blank `{{ $labels.site }}` and eat the `$` of /^(meter|...)$/ in an unescaped file."""
    from dashboards.alert_rules import alert_groups
    export(tmp_path, influx_url="http://influx:8086", database="hinode")
    expanded = yaml.safe_load(grafana_expand((tmp_path / "alerting/hinode.yaml").read_text(), {"HOME": "/root"}))
    assert expanded["groups"] == alert_groups()["groups"]
    summaries = [r["annotations"]["summary"] for r in expanded["groups"][0]["rules"]]
    assert any("{{ $labels.site }}" in s for s in summaries)
