"""The doctor's report: findings, draft source sections, the draft site.yaml, text and JSON output."""

from __future__ import annotations

import json

import pytest
import yaml

from edge_agent.config import ConfigError, load_site_config
from edge_agent.doctor.cli import build_parser, main
from edge_agent.doctor.report import Report

METER = {"type": "modbus", "name": "modbus", "transport": "tcp", "host": "10.0.0.5", "port": 502,
         "devices": [{"id": "meter-1", "unit": 1, "profile": "hinode-sim-meter"}]}
RTU = {"type": "modbus", "name": "modbus", "transport": "rtu",
       "serial": {"port": "/dev/ttyUSB0", "baudrate": 9600, "parity": "E"},
       "devices": [{"id": "meter-1", "unit": 1, "profile": "eastron-sdm630"}]}
SUNSPEC = {"type": "sunspec", "name": "sunspec", "transport": "tcp", "host": "10.0.0.6",
           "devices": [{"id": "sunspec-1", "unit": 1, "base_address": 40000}]}


def write(tmp_path, draft: dict):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(draft, sort_keys=False))
    return path


def test_the_text_report_groups_findings_by_check_and_counts_them():
    report = Report()
    report.ok("modbus", "unit 1: profile hinode-sim-meter")
    report.warn("modbus", "unit 2: no profile matches")
    report.fail("site", "broker unreachable")
    report.suggest_source(METER)
    assert report.to_text().splitlines() == [
        "== modbus", "  OK   unit 1: profile hinode-sim-meter", "  WARN unit 2: no profile matches",
        "== site", "  FAIL broker unreachable", "== draft: 1 source section(s)",
        "-- 1 ok, 1 warnings, 1 failures"]
    assert report.failed and report.exit_code() == 1


def test_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="ok, warn or fail"):
        Report().add("info", "modbus", "x")


def test_sections_from_two_scans_get_unique_names_and_device_ids(tmp_path):
    report = Report()
    report.suggest_source(METER)
    report.suggest_source(RTU)
    report.suggest_source(SUNSPEC)
    assert [s["name"] for s in report.sources] == ["modbus", "modbus-2", "sunspec"]
    assert [d["id"] for s in report.sources for d in s["devices"]] == ["meter-1", "meter-1-2", "sunspec-1"]
    assert RTU["name"] == "modbus" and RTU["devices"][0]["id"] == "meter-1"      # the caller's dict is untouched
    config = load_site_config(write(tmp_path, report.draft_site("factory-7", "line-a",
                                                                {"host": "broker.example", "port": 8883})))
    assert (config.site, config.agent, config.mqtt.port) == ("factory-7", "line-a", 8883)
    assert [c.type for c in config.source_configs] == ["modbus", "modbus", "sunspec"]


def test_a_draft_without_sources_is_refused_rather_than_invalid():
    with pytest.raises(ValueError, match="no source suggested"):
        Report().draft_site("s", "a")


def test_check_config_would_catch_a_bad_suggestion(tmp_path):
    report = Report()
    report.suggest_source({**METER, "devices": [{"id": "m", "unit": 1, "profile": "no-such-profile"}]})
    with pytest.raises(ConfigError, match="no-such-profile"):
        load_site_config(write(tmp_path, report.draft_site("s", "a")))


def test_json_report_is_machine_readable():
    report = Report()
    report.ok("modbus", "unit 1 found")
    report.suggest_source(METER)
    report.details["modbus"] = {"requests": 12}
    out = json.loads(json.dumps(report.to_json()))
    assert out == {"ok": True, "findings": [{"level": "ok", "check": "modbus", "message": "unit 1 found"}],
                   "sources": [METER], "details": {"modbus": {"requests": 12}}}


def test_every_check_is_a_subcommand_with_the_common_options():
    import argparse

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == {"modbus", "opcua", "ocpp", "ble", "site"}
    for check, check_parser in sub.choices.items():
        options = {o for action in check_parser._actions for o in action.option_strings}
        assert {"--site", "--agent", "--draft", "--json"} <= options, check
    args = parser.parse_args(["modbus", "--site", "s1", "--agent", "a1", "--json"])
    assert (args.check, args.site, args.agent, args.json, args.draft) == ("modbus", "s1", "a1", True, None)


def test_cli_with_nothing_found_writes_no_draft_and_says_why(tmp_path, capsys):
    status = main(["modbus", "--units", "1", "--draft", str(tmp_path / "site.yaml")])
    out = capsys.readouterr().out
    assert status == 2 and not (tmp_path / "site.yaml").exists()
    assert "FAIL give either --host" in out and "no draft written: nothing was found" in out
