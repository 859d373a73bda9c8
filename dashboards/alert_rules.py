"""Grafana unified-alerting rules as a provisioning file (``apiVersion: 1``, ``groups: [...]``).

Each rule: A = an InfluxQL query (its own ``time > now() - N s``, not ``$timeFilter``: Grafana expands
``$NAME`` in provisioning files as environment variables) on the ``hinode-influxdb`` data source, B = reduce (last) per series,
C = threshold (the condition). Contact points and notification policies are left to the operator
(Grafana's default policy sends to its default contact point until one is configured).

Thresholds, all overridable through :func:`alert_groups`:
- device offline: a device (meter, charger, vehicle) with data in the last 24 hours but none in the
  current 10-minute bucket (silent for over 24 h it drops out of the rule: the boards still list it);
- outbox growing: an agent's ``queue_envelopes`` rose by more than ``outbox_growth`` over 15 minutes;
- completeness below ``completeness_pct`` (95 %) per device over the last hour;
- meter power above its site limit: ``site_power_limits_w`` maps site -> W; sites not listed use
  ``default_power_limit_w`` (DEFAULT_POWER_LIMIT_W, 500 kW: a placeholder; set each site's contract limit).
"""

from __future__ import annotations

import json
import re

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.common import COMPLETENESS_BAD_PCT, DATASOURCE_UID, DEVICE_MEASUREMENTS, InfluxQL
from dashboards.panels import completeness_query

GROUP = "hinode"
FOLDER = "Hinode"
DEFAULT_POWER_LIMIT_W = 500_000.0
DEFAULT_OUTBOX_GROWTH = 1000.0
_PROVISIONED_KEYS = ("uid", "title", "condition", "data", "noDataState", "execErrState", "for",
                     "annotations", "labels", "isPaused")


def _expression(builder, ref_id: str):
    built = builder.build()
    built.ref_id = ref_id
    built.datasource = {"type": "__expr__", "uid": "__expr__"}
    return _Built(built)


class _Built(cogbuilder.Builder):
    def __init__(self, value):
        self._value = value

    def build(self):
        return self._value


def _rule(uid: str, title: str, query: str, range_s: int, evaluator: str, limit: float, for_: str,
          summary: str, description: str, no_data: str = "OK") -> tuple[dict, int]:
    # No "$" anywhere in a rule's data: Grafana expands $NAME in provisioning files as environment variables.
    query = query.replace("$timeFilter", f"time > now() - {range_s}s")
    reduce = expr.TypeReduce().expression("A").reducer("last")
    threshold = expr.TypeThreshold().expression("B").conditions([
        expr.ExprTypeThresholdConditions().evaluator(
            expr.ExprTypeThresholdConditionsEvaluator().type(evaluator).params([limit]))])
    rule = (alerting.Rule(title).uid(uid).condition("C").for_val(for_).no_data_state(no_data)
            .exec_err_state("Error").rule_group(GROUP).labels({"system": "hinode"})
            .annotations({"summary": summary, "description": description})
            .with_query(alerting.Query("A").datasource_uid(DATASOURCE_UID).model(InfluxQL(query)))
            .with_query(alerting.Query("B").datasource_uid("__expr__").model(_expression(reduce, "B")))
            .with_query(alerting.Query("C").datasource_uid("__expr__").model(_expression(threshold, "C"))))
    return json.loads(json.dumps(rule.build(), cls=JSONEncoder)), range_s


def _provisioned(rule_json: dict, range_s: int) -> dict:
    """The SDK's API shape -> the provisioning file's shape (relative ranges in seconds)."""
    rule = {key: rule_json[key] for key in _PROVISIONED_KEYS if key in rule_json}
    for query in rule["data"]:
        query["relativeTimeRange"] = {"from": range_s if query["refId"] == "A" else 0, "to": 0}
    return rule


def _regex_alternatives(sites: list[str]) -> str:
    return "|".join(re.escape(site) for site in sites)


def alert_rules(site_power_limits_w: dict[str, float] | None = None,
                default_power_limit_w: float = DEFAULT_POWER_LIMIT_W,
                completeness_pct: float = COMPLETENESS_BAD_PCT,
                outbox_growth: float = DEFAULT_OUTBOX_GROWTH) -> list[dict]:
    limits = dict(site_power_limits_w or {})
    rules = [
        _rule("hinode-device-offline", "Device offline",
              f'SELECT count("seq") FROM {DEVICE_MEASUREMENTS} WHERE $timeFilter '
              f'GROUP BY time(10m), "site", "device" fill(0)', 86400, "lt", 1, "5m",
              "{{ $labels.site }}/{{ $labels.device }} sends no data",
              "No envelope in the current 10 minutes after data in the last 24 hours. The reason (agent offline, "
              "source error) is on the Operations board's silent devices (device_status) and in "
              "GET /api/devices?site={{ $labels.site }}."),
        _rule("hinode-outbox-growing", "Agent outbox growing",
              'SELECT last("queue_envelopes") - first("queue_envelopes") AS "growth" FROM "agent" '
              'WHERE $timeFilter GROUP BY "site", "device"', 900, "gt", outbox_growth, "15m",
              "Outbox of agent {{ $labels.device }} ({{ $labels.site }}) is growing",
              "queue_envelopes rose by more than the threshold in 15 minutes: the broker is unreachable or no ingest "
              "listens. Past queue.max_bytes the agent drops readings."),
        _rule("hinode-completeness-low", "Data completeness low",
              completeness_query(DEVICE_MEASUREMENTS, '"site" =~ /.*/', detail=False),
              3600, "lt", completeness_pct, "15m",
              "{{ $labels.site }}/{{ $labels.device }}: data completeness below threshold",
              "Distinct seqs received vs. expected over the last hour (gaps = lost envelopes)."),
    ]
    for site, limit in sorted(limits.items()):
        rules.append(_power_rule(f'"site" = \'{site}\'', limit, f"hinode-power-limit-{site}"[:40], site))
    others = f'"site" !~ /^({_regex_alternatives(sorted(limits))})$/' if limits else '"site" =~ /.*/'
    rules.append(_power_rule(others, default_power_limit_w, "hinode-power-limit-default", "other sites"))
    return [_provisioned(*rule) for rule in rules]


def _power_rule(site_condition: str, limit_w: float, uid: str, sites: str) -> tuple[dict, int]:
    return _rule(uid, f"Meter power above site limit ({sites})",
                 f'SELECT max("power_total") AS "power_w" FROM "meter" WHERE {site_condition} AND $timeFilter '
                 f'GROUP BY "site", "device"', 300, "gt", limit_w, "5m",
                 "{{ $labels.site }}/{{ $labels.device }} above the site limit",
                 f"power_total (W) above {limit_w:.0f} W, the limit set for {sites} "
                 "(dashboards.alert_rules: site_power_limits_w / default_power_limit_w).")


def alert_groups(**options) -> dict:
    """The whole provisioning document (``alerting/hinode.yaml``)."""
    return {"apiVersion": 1, "groups": [{"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": "1m",
                                         "rules": alert_rules(**options)}]}
