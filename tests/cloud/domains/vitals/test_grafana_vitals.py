"""The Grafana vitals board's path through the consent-checking API.

No Grafana server (nor the Infinity plugin) can run here. The closest honest substitute is to send
exactly the requests Grafana's Infinity backend sends for this board: ``GET`` on the data source's
base URL + the query's ``url``, the query's ``url_options.params`` with Grafana's variables filled in,
``Authorization: Bearer <service principal token>`` (the data source's bearer token) and
``X-Grafana-User: <login>`` (the data source header ``${__user.login}``), to the real app on a real
InfluxDB 1.6. The request is built from the exported board JSON and provisioning file, so a board
that asked for something else would be tested as such. What Grafana itself does (filling the macro
with the signed-in user) is not exercised.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from dashboards import catalog, vitals
from dashboards.common import DATASOURCE_UID as INFLUX_UID
from dashboards.provisioning import export

GRAFANA_TOKEN_ENV = "HINODE_TEST_GRAFANA_VITALS_TOKEN"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("grafana-export")
    paths = export(out, user="grafana", password_env="INFLUX_PASSWORD", vitals_api_url="https://cloud.example",
                   vitals_token_env=GRAFANA_TOKEN_ENV)
    sources = yaml.safe_load((out / "datasources" / "hinode.yaml").read_text())["datasources"]
    boards = {p.stem: json.loads(p.read_text()) for p in paths if p.suffix == ".json"}
    return out, sources, boards


def _targets(board: dict) -> list[dict]:
    return [t for p in board["panels"] for t in p.get("targets", [])]


def test_every_panel_and_variable_of_the_exported_vitals_board_uses_the_consent_api(exported):
    _, sources, boards = exported
    uids = {uid for uid in boards if uid.startswith("hinode-vitals-")}
    assert uids == {"hinode-vitals-en", "hinode-vitals-ja"}
    for uid in uids:
        board = boards[uid]
        assert len(board["panels"]) == 6                     # a panel per vital category
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": vitals.DATASOURCE_TYPE, "uid": vitals.DATASOURCE_UID}, panel["title"]
            assert panel["targets"], panel["title"]
        for target in _targets(board):
            assert target["datasource"]["uid"] == vitals.DATASOURCE_UID
            assert target["parser"] == "backend"             # sent by Grafana's server, with the data source's headers
            assert target["url"] == vitals.SERIES_PATH and not urlsplit(target["url"]).scheme   # never another host
        variables = board["templating"]["list"]
        assert [v["name"] for v in variables] == ["patient"]
        for variable in variables:
            assert variable["datasource"]["uid"] == vitals.DATASOURCE_UID
            assert variable["query"]["infinityQuery"]["datasource"]["uid"] == vitals.DATASOURCE_UID
        text = json.dumps(board)
        assert INFLUX_UID not in text and '"influxdb"' not in text and "SELECT" not in text
    # the board's data source: the API, with the service token from the environment and the user header
    (api,) = [s for s in sources if s["uid"] == vitals.DATASOURCE_UID]
    assert api["type"] == "yesoreyeram-infinity-datasource" and api["url"] == "https://cloud.example/api/vitals/"
    assert api["jsonData"]["httpHeaderName1"] == "X-Grafana-User"
    assert api["secureJsonData"] == {"bearerToken": "${%s}" % GRAFANA_TOKEN_ENV, "httpHeaderValue1": "$${__user.login}"}
    assert api["jsonData"]["allowedHosts"] == ["https://cloud.example/api/vitals/"]


def test_the_vitals_board_is_exported_only_with_the_api_url(tmp_path):
    paths = export(tmp_path, user="grafana", password_env="INFLUX_PASSWORD")
    assert not any("vitals" in p.name for p in paths)
    sources = yaml.safe_load((tmp_path / "datasources" / "hinode.yaml").read_text())["datasources"]
    assert [s["uid"] for s in sources] == [INFLUX_UID]
    assert not set(catalog.consent_api_dashboards()) & set(catalog.all_dashboards())


def test_export_command_line_with_the_vitals_api(tmp_path, capsys):
    from dashboards.__main__ import main
    assert main(["export", str(tmp_path), "--user", "grafana", "--password-env", "INFLUX_PASSWORD",
                 "--vitals-api-url", "http://cloud:8080/", "--vitals-token-env", "VITALS_TOKEN"]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "dashboards" / "json" / "hinode-vitals-ja.json") in printed
    sources = yaml.safe_load((tmp_path / "datasources" / "hinode.yaml").read_text())["datasources"]
    (api,) = [s for s in sources if s["uid"] == vitals.DATASOURCE_UID]
    assert api["url"] == "http://cloud:8080/api/vitals/" and api["secureJsonData"]["bearerToken"] == "${VITALS_TOKEN}"


def test_deploy_reads_the_user_macro_back_literally(exported, monkeypatch):
    from dashboards.deploy import read_export
    out, _, _ = exported
    monkeypatch.setenv("INFLUX_PASSWORD", "x")
    monkeypatch.setenv(GRAFANA_TOKEN_ENV, "service-token")
    (api,) = [s for s in read_export(out)["datasources"] if s["uid"] == vitals.DATASOURCE_UID]
    assert api["secureJsonData"] == {"bearerToken": "service-token", "httpHeaderValue1": "${__user.login}"}


# ---------------------------------------------------------------- the requests Grafana sends


def grafana_request(board: dict, category: str, patient: str, start_ms: int, end_ms: int) -> tuple[str, dict]:
    """(path relative to the data source URL, query params) of the board's panel for ``category``,
    with Grafana's substitutions ($patient, ${__from}, ${__to})."""
    (target,) = [t for t in _targets(board) if {"key": "category", "value": category} in t["url_options"]["params"]]
    values = {"$patient": patient, "${__from}": str(start_ms), "${__to}": str(end_ms)}
    query = {p["key"]: values.get(p["value"], p["value"]) for p in target["url_options"]["params"]}
    assert not any(re.search(r"\$", v) for v in query.values()), query
    return target["url"], query


SERVICE = "grafana-vitals"
SERVICE_TOKEN = "tok-grafana-vitals"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, exported):
    from tests.cloud.domains.vitals.kit import READ, demo_people, seed_demo, vitals_app, vitals_lines
    people = demo_people(**{SERVICE: (SERVICE_TOKEN, [READ])})
    config = {"domains": {"vitals": {"grafana": {"service_principals": [SERVICE]}}}}
    with vitals_app(tmp_path_factory.mktemp("grafana-vitals"), people, vitals_lines(days=3), setup=seed_demo,
                    extra_config=config) as (base, registry):
        yield base, registry, people, exported[2]["hinode-vitals-en"]


def as_grafana(base: str, token: str, *user: str) -> httpx.Client:
    """An HTTP client sending what the Infinity data source sends: the bearer token of the data source
    and, for each ``user``, an X-Grafana-User header (Grafana sends exactly one)."""
    headers = [("Authorization", f"Bearer {token}"), *(("X-Grafana-User", u) for u in user)]
    return httpx.Client(base_url=base + "/api/vitals/", headers=httpx.Headers(headers), timeout=10)


def series(client: httpx.Client, board: dict, category: str, patient: str = "p-7f3a9c") -> httpx.Response:
    import time
    now = int(time.time() * 1000)
    path, query = grafana_request(board, category, patient, now - 7 * 86_400_000, now)
    return client.get(path, params=query)


def grafana_audit(registry, after_id: int) -> list[dict]:
    return [r for r in reversed(registry.audit_rows(after_id=after_id)) if r["action"] == "grafana_query"]


def last_audit_id(registry) -> int:
    rows = registry.audit_rows(limit=1)
    return rows[0]["id"] if rows else 0


def test_a_user_with_consent_gets_the_series_through_grafana(stack):
    base, registry, _, board = stack
    before = last_audit_id(registry)
    with as_grafana(base, SERVICE_TOKEN, "dr-sato") as grafana:
        answer = series(grafana, board, "blood_pressure")
        assert answer.status_code == 200, answer.text
        rows = answer.json()["rows"]
        assert [r["systolic"] for r in rows] == [130.0, 134.0, 138.0]          # kit: 130 + 4i, oldest first
        assert [r["diastolic"] for r in rows] == [80.0, 82.0, 84.0]
        assert all(isinstance(r["time"], int) for r in rows) and rows == sorted(rows, key=lambda r: r["time"])
        assert "name" not in answer.text and "山田" not in answer.text
        empty = series(grafana, board, "blood_pressure", patient="p-41b2e0")     # consent, but no readings
        assert (empty.status_code, empty.json()["rows"]) == (200, [])
        (patient_variable,) = board["templating"]["list"]
        variable = grafana.get(patient_variable["query"]["infinityQuery"]["url"])      # the $patient variable's request
        assert variable.status_code == 200
        assert [r["pseudonym"] for r in variable.json()["rows"]] == ["p-41b2e0", "p-7f3a9c"]
        assert "山田" not in variable.text and "田中" not in variable.text
    row, _ = grafana_audit(registry, before)
    assert (row["actor"], row["via"], row["pseudonym"], row["outcome"], row["categories"], row["care_role"]) == \
        ("dr-sato", "grafana", "p-7f3a9c", "allowed", "blood_pressure", "doctor")
    assert row["consent_id"].startswith("c-")


def test_without_consent_or_without_a_forwarded_user_grafana_gets_nothing(stack):
    base, registry, people, board = stack
    before = last_audit_id(registry)
    refused = []
    with as_grafana(base, SERVICE_TOKEN, "son-yamada") as family:          # family, no consent
        refused.append(series(family, board, "blood_pressure"))
        assert family.get(vitals.PATIENTS_PATH).json()["rows"] == []
    with as_grafana(base, SERVICE_TOKEN, "cm-kato") as manager:             # consent: blood_pressure, weight only
        assert series(manager, board, "blood_pressure").status_code == 200
        refused.append(series(manager, board, "spo2"))
    with as_grafana(base, SERVICE_TOKEN) as nobody:                         # no X-Grafana-User
        refused.append(series(nobody, board, "blood_pressure"))
        assert nobody.get(vitals.PATIENTS_PATH).status_code == 403
    with as_grafana(base, SERVICE_TOKEN, "someone-else") as unknown:        # not a care team member
        refused.append(series(unknown, board, "blood_pressure"))
    with as_grafana(base, SERVICE_TOKEN, "son-yamada", "dr-sato") as twice:  # a query header added by an editor
        refused.append(series(twice, board, "blood_pressure"))
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert "rows" not in answer.json() and "130" not in answer.text and "systolic" not in answer.text
    assert "no consent for role family to see blood_pressure" in refused[0].json()["detail"]
    assert "no consent for role care_manager to see spo2" in refused[1].json()["detail"]
    assert "not in the care team" in refused[3].json()["detail"]
    assert "more than once" in refused[4].json()["detail"]
    rows = grafana_audit(registry, before)
    assert [(r["actor"], r["via"], r["outcome"]) for r in rows] == [
        ("son-yamada", "grafana", "denied"), ("cm-kato", "grafana", "allowed"), ("cm-kato", "grafana", "denied"),
        (SERVICE, "grafana", "denied"), ("someone-else", "grafana", "denied"), (SERVICE, "grafana", "denied")]


def test_a_principal_that_is_not_grafana_cannot_impersonate_with_the_header(stack):
    base, registry, people, board = stack
    before = last_audit_id(registry)
    son_token = people["son-yamada"][0]
    with as_grafana(base, son_token, "dr-sato") as impostor:                # the family member claims the doctor
        answer = series(impostor, board, "blood_pressure")
        assert answer.status_code == 403 and "not a Grafana service principal" in answer.json()["detail"]
        assert "rows" not in answer.json()
        assert impostor.get(vitals.PATIENTS_PATH).status_code == 403
    doctor_token = people["dr-sato"][0]
    with as_grafana(base, doctor_token, "dr-sato") as doctor_direct:        # even for oneself: only Grafana's path
        assert series(doctor_direct, board, "blood_pressure").status_code == 403
    rows = grafana_audit(registry, before)
    assert [(r["actor"], r["via"], r["outcome"]) for r in rows] == [("son-yamada", "api", "denied"),
                                                                   ("dr-sato", "api", "denied")]


def test_a_revoked_consent_stops_the_next_grafana_query(stack):
    base, registry, _, board = stack
    consent = registry.grant_consent("p-7f3a9c", "family", ["heart_rate"], granted_by="hanako-yamada")
    with as_grafana(base, SERVICE_TOKEN, "son-yamada") as family:
        assert series(family, board, "heart_rate").status_code == 200
        assert series(family, board, "blood_pressure").status_code == 403
        registry.revoke_consent("p-7f3a9c", consent["id"], revoked_by="hanako-yamada")
        answer = series(family, board, "heart_rate")
        assert answer.status_code == 403 and "revoked" in answer.json()["detail"]
