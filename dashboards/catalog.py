"""Every generated board, in every language: the one list export, deploy and the tests read."""

from __future__ import annotations

from typing import Callable

from dashboards import charging, co2, fleet, interchange, operations, site_energy, vitals
from dashboards.common import LANGUAGES

BOARDS: dict[str, Callable[[str], dict]] = {
    site_energy.BASE_UID: site_energy.build,
    operations.BASE_UID: operations.build,
    charging.BASE_UID: charging.build,
    co2.BASE_UID: co2.build,
    interchange.BASE_UID: interchange.build,
    fleet.BASE_UID: fleet.build,
}

# Boards whose every query goes to the vitals domain's consent-checking API (Infinity data source),
# never to InfluxDB: kept apart from BOARDS (InfluxQL, rendered and run against InfluxDB in tests) and
# exported only when the API's URL is given (``export(..., vitals_api_url=...)``).
CONSENT_API_BOARDS: dict[str, Callable[[str], dict]] = {
    vitals.BASE_UID: vitals.build,
}


def all_dashboards() -> dict[str, dict]:
    """uid -> dashboard JSON, each board in English (``-en``) and Japanese (``-ja``)."""
    return _built(BOARDS)


def consent_api_dashboards() -> dict[str, dict]:
    """uid -> JSON of the boards reading only the vitals consent API (``CONSENT_API_BOARDS``)."""
    return _built(CONSENT_API_BOARDS)


def _built(builders: dict[str, Callable[[str], dict]]) -> dict[str, dict]:
    boards = {}
    for build in builders.values():
        for lang in LANGUAGES:
            data = build(lang)
            boards[data["uid"]] = data
    return boards


def _panels(dashboard_json: dict) -> list[dict]:
    panels = []
    for panel in dashboard_json.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))     # panels inside collapsed rows
    return panels


def panel_queries(dashboard_json: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, InfluxQL text) of every target of every panel, in board order."""
    return [(panel.get("title", ""), target.get("refId", ""), target.get("query", ""))
            for panel in _panels(dashboard_json) for target in panel.get("targets", []) or []
            if not target.get("hide")]


def variable_queries(dashboard_json: dict) -> list[tuple[str, str]]:
    """(variable name, InfluxQL text) of every query variable."""
    return [(variable["name"], variable["query"]) for variable in dashboard_json.get("templating", {}).get("list", [])
            if variable.get("type") == "query"]
