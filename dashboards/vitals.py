"""The **vitals** board: one patient's vital signs, a panel per category, for a care team member.

Unlike every other board it never reads InfluxDB. Its only data source is the cloud API's consent
checking Grafana endpoints (``cloud/domains/vitals/router_grafana.py``) through the Infinity plugin
(``yesoreyeram-infinity-datasource``, 3.0+): Grafana's backend calls the API with the service
principal's bearer token and the signed-in Grafana user's login in ``X-Grafana-User`` (a data source
header with the ``${__user.login}`` macro, filled in by the plugin from the request's user, not by
the dashboard). The API checks that user's consent on every request, audits it as ``grafana_query``
and answers 403 when there is none, so a panel of someone without consent stays empty.
Design and limits: ``cloud/domains/vitals/BOARDS.md``.

The patient variable lists only the patients the Grafana user may see (``GET .../grafana/patients``).
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import dashboard as dash, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import Text, board, to_json
from hinode.vitals import VITAL_METRICS, Category, metrics_of

BASE_UID = "hinode-vitals"
DATASOURCE_UID = "hinode-vitals-api"
DATASOURCE_TYPE = "yesoreyeram-infinity-datasource"
DATASOURCE = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
USER_HEADER = "X-Grafana-User"
# Infinity's data-source-level macro for the signed-in Grafana user (a literal, not a dashboard variable).
USER_MACRO = "${__user.login}"
PATIENTS_PATH = "grafana/patients"      # relative to the data source's base URL (…/api/vitals/)
SERIES_PATH = "grafana/series"

CATEGORY_TITLES: dict[Category, Text] = {
    Category.BLOOD_PRESSURE: Text("Blood pressure", "血圧"),
    Category.SPO2: Text("SpO2", "SpO2（酸素飽和度）"),
    Category.TEMPERATURE: Text("Body temperature", "体温"),
    Category.WEIGHT: Text("Weight", "体重"),
    Category.GLUCOSE: Text("Blood glucose", "血糖値"),
    Category.HEART_RATE: Text("Heart rate", "心拍数"),
}
# UCUM -> Grafana unit id ("suffix:" where Grafana has none).
GRAFANA_UNITS = {"mm[Hg]": "suffix: mmHg", "Cel": "celsius", "%": "percent", "kg": "masskg", "cm": "suffix: cm",
                 "kg/m2": "suffix: kg/m²", "mg/dL": "suffix: mg/dL", "/min": "suffix: /min", "kJ": "suffix: kJ",
                 "s": "s"}


class InfinityQuery(cogvariants.Dataquery):
    """An Infinity target: JSON from a URL under the data source's base URL, parsed by the backend parser
    (so the request leaves from Grafana's server with the data source's headers, never from the browser)."""

    def __init__(self, ref_id: str = "A", url: str = "", params: list[tuple[str, str]] | None = None,
                 columns: list[tuple[str, str, str]] | None = None, result_format: str = "timeseries") -> None:
        self.ref_id = ref_id
        self.url = url
        self.params = list(params or [])
        self.columns = list(columns or [])        # (selector, display text, type)
        self.result_format = result_format

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": DATASOURCE.to_json(), "type": "json", "source": "url",
                "parser": "backend", "format": self.result_format, "url": self.url, "root_selector": "rows",
                "url_options": {"method": "GET", "data": "",
                                "params": [{"key": key, "value": value} for key, value in self.params]},
                "columns": [{"selector": selector, "text": text, "type": kind}
                            for selector, text, kind in self.columns]}

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> "InfinityQuery":
        params = [(p["key"], p["value"]) for p in data.get("url_options", {}).get("params", [])]
        columns = [(c["selector"], c["text"], c["type"]) for c in data.get("columns", [])]
        return cls(data.get("refId", "A"), data.get("url", ""), params, columns, data.get("format", "timeseries"))


cogruntime.Runtime().register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfinityQuery.from_json))


class Infinity(cogbuilder.Builder[InfinityQuery]):
    def __init__(self, url: str, params: list[tuple[str, str]], columns: list[tuple[str, str, str]],
                 ref_id: str = "A") -> None:
        self._internal = InfinityQuery(ref_id, url, params, columns)

    def build(self) -> InfinityQuery:
        return self._internal


def patient_variable(lang: str) -> dash.QueryVariable:
    query = {"queryType": "infinity", "refId": "variable",
             "infinityQuery": {**InfinityQuery("variable", PATIENTS_PATH, [], [("pseudonym", "pseudonym", "string")],
                                               "table").to_json()}}
    return (dash.QueryVariable("patient").label(Text("Patient", "利用者")(lang)).datasource(DATASOURCE)
            .query(query).refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(model.VariableSort.ALPHABETICAL_ASC))


def _prop(key: str, value: object) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=key, value=value)


def category_panel(category: Category, lang: str) -> timeseries.Panel:
    metrics = metrics_of(category)
    columns = [("time", "time", "timestamp_epoch")]
    for metric in metrics:
        vital = VITAL_METRICS[metric]
        columns.append((metric, vital.display_ja if lang == "ja" else vital.display, "number"))
    target = Infinity(SERIES_PATH, [("patient", "$patient"), ("category", category.value),
                                    ("from", "${__from}"), ("to", "${__to}")], columns)
    title = CATEGORY_TITLES[category]
    description = Text(f"Through the consent-checking API: empty without consent for {category.value}; "
                       "every view is audited.",
                       f"同意を確認するAPI経由: {category.value} の同意がなければ表示されません。閲覧はすべて記録されます。")
    panel = (timeseries.Panel().title(title(lang)).description(description(lang)).datasource(DATASOURCE)
             .with_target(target).span_nulls(True).show_points(common_models.VisibilityMode.ALWAYS).height(8).span(12))
    for metric, (_, text, _) in zip(metrics, columns[1:]):
        panel = panel.override_by_name(text, [_prop("unit", GRAFANA_UNITS[VITAL_METRICS[metric].unit])])
    return panel


def build(lang: str) -> dict:
    builder = (board(BASE_UID, lang, Text("Vital signs (with consent)", "バイタル（同意に基づく表示）"),
                     Text("One patient's vitals through the consent-checking API; never the database.",
                          "同意を確認するAPIだけを通した利用者のバイタル。データベースは直接読みません。"),
                     ["vitals", "personal"])
               .time("now-30d", "now").refresh("5m")
               .with_variable(patient_variable(lang)))
    for category in Category:
        builder = builder.with_panel(category_panel(category, lang))
    return to_json(builder.build())


def datasource(api_url: str = "http://127.0.0.1:8080", token_env: str = "HINODE_GRAFANA_VITALS_TOKEN") -> dict:
    """The provisioning entry of the consent-API data source. ``token_env`` names the environment variable
    holding the Grafana service principal's API token (Grafana expands it; never written out). The user
    header's value is the Infinity macro, written ``$${...}`` so Grafana's provisioning does not expand it."""
    base = api_url.rstrip("/") + "/api/vitals/"
    return {"name": "Hinode vitals (consent API)", "uid": DATASOURCE_UID, "type": DATASOURCE_TYPE,
            "access": "proxy", "url": base, "isDefault": False, "editable": False,
            "jsonData": {"auth_method": "bearerToken", "allowedHosts": [base], "httpHeaderName1": USER_HEADER,
                         "timeoutInSeconds": 30},
            "secureJsonData": {"bearerToken": f"${{{token_env}}}", "httpHeaderValue1": "$" + USER_MACRO}}
