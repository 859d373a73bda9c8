"""``dashboards.deploy`` against recorded Grafana answers, not a live Grafana.

No Grafana server can run in this test environment (no binary, no network), so the HTTP API
answers the deploy needs are recorded in ``tests/dashboards/recorded/`` (Grafana 11.3, written from
the documented example responses; each file names its endpoint) and served by a small stateful
``http.server`` on a free loopback port (``tests/support/fake_grafana.py``): what one deploy PUTs
or POSTs, the next one reads back.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from dashboards.deploy import DeployError, deploy, read_export
from tests.support.fake_grafana import RECORDED, FakeGrafana

TOKEN = "glsa_test-token-0123456789abcdef"


def small_export(root: Path, boards: int = 3, rules: int = 2) -> Path:
    """The layout ``dashboards.provisioning.export`` writes, with a few tiny boards and rules."""
    (root / "datasources").mkdir(parents=True)
    (root / "dashboards" / "json").mkdir(parents=True)
    (root / "alerting").mkdir(parents=True)
    (root / "datasources" / "hinode.yaml").write_text(yaml.safe_dump({"apiVersion": 1, "datasources": [{
        "name": "hinode-influxdb", "uid": "hinode-influxdb", "type": "influxdb", "access": "proxy",
        "url": "http://127.0.0.1:8086", "user": "grafana", "jsonData": {"dbName": "hinode", "httpMode": "POST"},
        "secureJsonData": {"password": "${HINODE_TEST_INFLUX_PASSWORD}"}, "editable": False}]}))
    (root / "dashboards" / "hinode.yaml").write_text(yaml.safe_dump({"apiVersion": 1, "providers": [{
        "name": "hinode", "folder": "hinode", "folderUid": "hinode", "type": "file",
        "options": {"path": str(root / "dashboards" / "json")}}]}))
    for i in range(boards):
        uid = f"hinode-board{i}-en"
        (root / "dashboards" / "json" / f"{uid}.json").write_text(json.dumps({
            "uid": uid, "title": f"Board {i}", "schemaVersion": 39, "tags": ["hinode"],
            "panels": [{"type": "timeseries", "title": "kW", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
                        "targets": [{"refId": "A", "rawQuery": True, "query": "SELECT mean(kw) FROM m WHERE $timeFilter"}]}]}))
    (root / "alerting" / "hinode.yaml").write_text(yaml.safe_dump({"apiVersion": 1, "groups": [{
        "orgId": 1, "name": "hinode", "folder": "hinode", "interval": "1m", "rules": [{
            "uid": f"hinode-rule{j}", "title": f"Rule {j}", "condition": "B", "for": "5m",
            "noDataState": "NoData", "execErrState": "Error", "labels": {"severity": "warning"},
            "annotations": {"summary": f"rule {j}"},
            "data": [{"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": "hinode-influxdb",
                      "model": {"refId": "A", "rawQuery": True, "query": "SELECT count(x) FROM m WHERE $timeFilter"}},
                     {"refId": "B", "datasourceUid": "__expr__",
                      "model": {"refId": "B", "type": "threshold", "expression": "A",
                                "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}}]}
            for j in range(rules)]}]}))
    return root


@pytest.fixture
def export_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HINODE_TEST_INFLUX_PASSWORD", "influx-secret")
    return small_export(tmp_path / "export")


def test_recorded_files_say_what_they_are():
    files = sorted(RECORDED.glob("*.json"))
    assert len(files) >= 10
    for path in files:
        meta = json.loads(path.read_text())["_recorded"]
        assert meta["grafana_version"] and meta["endpoint"] and meta["method"], path.name
        assert "not captured from a live server" in meta["how"]


def test_first_deploy_creates_everything_and_second_changes_nothing(export_dir):
    with FakeGrafana(TOKEN) as grafana:
        first = deploy(export_dir, grafana.url, TOKEN)
        assert first["created"] == ["datasource:hinode-influxdb", "folder:hinode",
                                    "dashboard:hinode-board0-en", "dashboard:hinode-board1-en",
                                    "dashboard:hinode-board2-en", "alert-rule:hinode-rule0", "alert-rule:hinode-rule1"]
        assert first["changed"] == len(first["created"]) + len(first["updated"])
        assert grafana.datasources["hinode-influxdb"]["_secrets"] == {"password": "influx-secret"}
        assert {d["folderUid"] for d in grafana.dashboards.values()} == {"hinode"}
        assert {r["folderUID"] for r in grafana.rules.values()} == {"hinode"}
        assert grafana.group_intervals[("hinode", "hinode")] == 60

        writes = len(grafana.writes())
        second = deploy(export_dir, grafana.url, TOKEN)
        assert second["changed"] == 0 and not second["created"] and not second["updated"]
        assert len(second["unchanged"]) == 7
        assert len(grafana.writes()) == writes, "the second deploy wrote something"

        # Every request carried the token as a bearer token.
        assert {r["authorization"] for r in grafana.requests} == {f"Bearer {TOKEN}"}


def test_a_changed_board_or_rule_is_updated_alone(export_dir):
    with FakeGrafana(TOKEN) as grafana:
        deploy(export_dir, grafana.url, TOKEN)
        board = export_dir / "dashboards" / "json" / "hinode-board1-en.json"
        doc = json.loads(board.read_text())
        doc["title"] = "Board one"
        board.write_text(json.dumps(doc))
        alerts = export_dir / "alerting" / "hinode.yaml"
        doc = yaml.safe_load(alerts.read_text())
        doc["groups"][0]["rules"][0]["for"] = "10m"
        alerts.write_text(yaml.safe_dump(doc))
        result = deploy(export_dir, grafana.url, TOKEN)
        assert result["updated"] == ["dashboard:hinode-board1-en", "alert-rule:hinode-rule0"]
        assert result["changed"] == 2
        assert grafana.dashboards["hinode-board1-en"]["dashboard"]["version"] == 2
        assert deploy(export_dir, grafana.url, TOKEN)["changed"] == 0


def test_grafana_side_edit_is_put_back(export_dir):
    with FakeGrafana(TOKEN) as grafana:
        deploy(export_dir, grafana.url, TOKEN)
        grafana.datasources["hinode-influxdb"]["url"] = "http://elsewhere:8086"
        grafana.group_intervals[("hinode", "hinode")] = 300
        result = deploy(export_dir, grafana.url, TOKEN)
        assert result["updated"] == ["datasource:hinode-influxdb", "rule-group:hinode"]
        assert grafana.datasources["hinode-influxdb"]["url"] == "http://127.0.0.1:8086"


def test_unauthorized_names_the_failure_but_not_the_token(export_dir, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeGrafana("the-right-token") as grafana:
        with pytest.raises(DeployError) as err:
            deploy(export_dir, grafana.url, TOKEN)
    message = str(err.value)
    assert err.value.status == 401
    assert "data source hinode-influxdb: read: HTTP 401: Invalid API key" in message
    assert TOKEN not in message and TOKEN not in caplog.text
    assert grafana.requests[0]["authorization"] == f"Bearer {TOKEN}"


def test_unreachable_grafana_and_missing_environment(export_dir, tmp_path, monkeypatch):
    from hinode.services import free_port
    with pytest.raises(DeployError, match="cannot reach Grafana at http://127.0.0.1:") as err:
        deploy(export_dir, f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2)
    assert TOKEN not in str(err.value)
    monkeypatch.delenv("HINODE_TEST_INFLUX_PASSWORD")
    with pytest.raises(DeployError, match="not set: HINODE_TEST_INFLUX_PASSWORD"):
        read_export(export_dir)
    with pytest.raises(DeployError, match="no such export directory"):
        read_export(tmp_path / "nothing")


def test_the_real_export_deploys_and_redeploys_as_nothing(tmp_path, monkeypatch):
    """What ``python -m dashboards export`` writes (every board in both languages, every alert rule)."""
    from dashboards.catalog import all_dashboards
    from dashboards.provisioning import export
    monkeypatch.setenv("HINODE_TEST_INFLUX_PASSWORD", "influx-secret")
    export(tmp_path / "export", user="grafana", password_env="HINODE_TEST_INFLUX_PASSWORD")
    rules = [r["uid"] for g in yaml.safe_load((tmp_path / "export" / "alerting" / "hinode.yaml").read_text())["groups"]
             for r in g["rules"]]
    with FakeGrafana(TOKEN) as grafana:
        first = deploy(tmp_path / "export", grafana.url, TOKEN)
        assert sorted(grafana.dashboards) == sorted(all_dashboards())
        assert sorted(grafana.rules) == sorted(rules) and rules
        assert grafana.datasources["hinode-influxdb"]["_secrets"] == {"password": "influx-secret"}
        assert first["changed"] == 2 + len(all_dashboards()) + len(rules) + (first["updated"] != [])
        assert deploy(tmp_path / "export", grafana.url, TOKEN)["changed"] == 0


def test_hinode_dashboards_export_then_deploy(tmp_path, monkeypatch, capsys):
    """``hinode dashboards ...`` is ``python -m dashboards ...``; the token stays out of the output."""
    from hinode.cli import main
    monkeypatch.setenv("HINODE_TEST_INFLUX_PASSWORD", "influx-secret")
    assert main(["dashboards", "export", str(tmp_path / "out"), "--user", "grafana",
                 "--password-env", "HINODE_TEST_INFLUX_PASSWORD"]) == 0
    monkeypatch.delenv("HINODE_TEST_GRAFANA_TOKEN", raising=False)
    assert main(["dashboards", "deploy", str(tmp_path / "out"), "--url", "http://127.0.0.1:9",
                 "--token-env", "HINODE_TEST_GRAFANA_TOKEN"]) == 2
    monkeypatch.setenv("HINODE_TEST_GRAFANA_TOKEN", TOKEN)
    capsys.readouterr()
    with FakeGrafana(TOKEN) as grafana:
        assert main(["dashboards", "deploy", str(tmp_path / "out"), "--url", grafana.url,
                     "--token-env", "HINODE_TEST_GRAFANA_TOKEN"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert main(["dashboards", "deploy", str(tmp_path / "out"), "--url", grafana.url,
                     "--token-env", "HINODE_TEST_GRAFANA_TOKEN"]) == 0
        out = capsys.readouterr()
    assert first["changed"] > 0 and json.loads(out.out)["changed"] == 0
    assert TOKEN not in out.out + out.err
    with FakeGrafana(TOKEN) as grafana:      # the form, --token, works too, with a warning
        monkeypatch.delenv("HINODE_TEST_GRAFANA_TOKEN")
        assert main(["dashboards", "deploy", str(tmp_path / "out"), "--url", grafana.url, "--token", TOKEN]) == 0
        out = capsys.readouterr()
    assert json.loads(out.out)["changed"] > 0 and "prefer --token-env" in out.err and TOKEN not in out.err


def test_a_refused_write_names_the_object_status_and_grafanas_message(export_dir):
    from tests.support.fake_grafana import recorded
    with FakeGrafana(TOKEN) as grafana:
        grafana.fail[("POST", "/api/dashboards/db")] = (412, recorded("dashboards_db_POST")["responses"]["412"])
        with pytest.raises(DeployError) as err:
            deploy(export_dir, grafana.url, TOKEN)
    assert str(err.value) == "dashboard hinode-board0-en: save: HTTP 412: The dashboard has been changed by someone else"
    assert err.value.status == 412
