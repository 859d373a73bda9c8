"""What every board shares: the InfluxQL query type, the data source, variables, units, thresholds, texts.

Queries are plain InfluxQL (``/query``) with Grafana's ``$timeFilter`` and ``$__interval``: what
InfluxDB 1.x, 2.x (through DBRP) and 3.x all answer. No Flux, no SQL.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_UID = "hinode-influxdb"
DATASOURCE_TYPE = "influxdb"
DATASOURCE = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
LANGUAGES = ("en", "ja")

# Device measurements that carry ``seq`` (completeness, last seen). Personal kinds live elsewhere.
DEVICE_MEASUREMENTS = "/^(meter|charger|vehicle)$/"

# Units (Grafana unit ids) and thresholds shared by the boards and the alert rules.
UNIT_KW = "kwatt"
UNIT_KWH = "kwatth"
UNIT_VOLT = "volt"
UNIT_PERCENT = "percent"
UNIT_SECONDS = "s"
UNIT_COUNT = "short"
POWER_FACTOR_LOW = 0.85          # below: reactive-power surcharge territory (Japanese tariffs reward 0.85+)
POWER_FACTOR_OK = 0.95
VOLTAGE_LOW_V = 182.0            # 200 V service: 202 V ± 20 V (Electricity Business Act rule)
VOLTAGE_HIGH_V = 222.0
COMPLETENESS_WARN_PCT = 99.0
COMPLETENESS_BAD_PCT = 95.0
OFFLINE_AFTER = "5m"             # no data for this long = offline (the API's own reason: GET /api/devices)
INGEST_LAG_WARN_S = 5.0
INGEST_LAG_BAD_S = 30.0


class InfluxQLQuery(cogvariants.Dataquery):
    """A Grafana InfluxDB target in raw InfluxQL mode (the SDK ships no InfluxDB query type)."""

    def __init__(self, ref_id: str = "A", query: str = "", result_format: str = "time_series",
                 alias: str | None = None, hide: bool | None = None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id, "datasource": DATASOURCE.to_json(),
                                      "rawQuery": True, "query": self.query, "resultFormat": self.result_format}
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> "InfluxQLQuery":
        return cls(data.get("refId", "A"), data.get("query", ""), data.get("resultFormat", "time_series"),
                   data.get("alias"), data.get("hide"))


# So Dashboard.from_json gives typed InfluxQL targets back (round trip in the tests).
cogruntime.Runtime().register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json))


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQLQuery(ref_id, " ".join(query.split()))

    def build(self) -> InfluxQLQuery:
        return self._internal

    def table(self) -> typing.Self:
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> typing.Self:
        self._internal.alias = alias
        return self


class Text(typing.NamedTuple):
    en: str
    ja: str

    def __call__(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en


def uid(base: str, lang: str) -> str:
    return f"{base}-{lang}"


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    """``(None, "green"), (95, "red")``: the first step is the base (value None)."""
    return (dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=value, color=color) for value, color in steps]))


def completeness_thresholds() -> dash.ThresholdsConfig:
    return thresholds((None, "red"), (COMPLETENESS_BAD_PCT, "orange"), (COMPLETENESS_WARN_PCT, "green"))


def transformation(id_val: str, options: dict) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=id_val, options=options)


def site_variable(measurement: str, lang: str, *, multi: bool) -> dash.QueryVariable:
    label = Text("Site", "拠点")(lang)
    variable = (dash.QueryVariable("site").label(label).datasource(DATASOURCE)
                .query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "site"')
                .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC))
    if multi:
        variable = variable.multi(True).include_all(True)
    return variable


def device_variable(measurement: str, lang: str) -> dash.QueryVariable:
    return (dash.QueryVariable("device").label(Text("Device", "機器")(lang)).datasource(DATASOURCE)
            .query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "device" WHERE "site" =~ /^$site$/')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True))


def constant_variable(name: str, value: str, description: str) -> dash.ConstantVariable:
    return dash.ConstantVariable(name).value(value).description(description)


def board(base_uid: str, lang: str, title: Text, description: Text, tags: list[str]) -> dash.Dashboard:
    return (dash.Dashboard(title(lang)).uid(uid(base_uid, lang)).description(description(lang))
            .tags(["hinode", lang, *tags]).timezone("Asia/Tokyo").time("now/d", "now").refresh("1m")
            .fiscal_year_start_month(3).week_start("monday").editable())


def to_json(built: model.Dashboard) -> dict:
    """The dashboard as plain JSON (what Grafana's provisioning reads)."""
    import json

    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    data = json.loads(json.dumps(built, cls=JSONEncoder))
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number      # stable panel ids: links to a panel (viewPanel=) survive regeneration
    return data


def tag_variable(name: str, label: str, query: str) -> dash.QueryVariable:
    """A single-value variable listing one tag's values."""
    return (dash.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC))
