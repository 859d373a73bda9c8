"""The alert rules over hand-made frames; every expected breach worked out by hand in the comments."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import polars as pl

from cloud.domains.vitals.alert_config import AlertsConfig
from cloud.domains.vitals.alert_rules import (DAY_MS, DEFAULT_RULES, RuleChange, alert_fields, apply_changes,
                                              evaluate, lookback_needed_ms)
from hinode.backoff import Backoff
from hinode.vitals import Category

T0 = 1_764_374_400_000          # 2025-11-29T00:00:00Z
HOUR_MS = 3_600_000


def frame(metric: str, points: list[tuple[int, float | None]]) -> pl.DataFrame:
    return pl.DataFrame({"time": [t for t, _ in points], metric: [v for _, v in points]},
                        schema={"time": pl.Int64, metric: pl.Float64})


def hits(breaches):
    return [(b.rule, b.ts_ms, b.value) for b in breaches]


def test_spo2_below_90_alerts_and_90_itself_does_not():
    data = frame("spo2", [(T0, 95.0), (T0 + 1, 89.0), (T0 + 2, 90.0), (T0 + 3, 88.5), (T0 + 4, None)])
    breaches = evaluate(data, DEFAULT_RULES)
    assert hits(breaches) == [("spo2_low", T0 + 1, 89.0), ("spo2_low", T0 + 3, 88.5)]
    assert breaches[0].category == Category.SPO2 and breaches[0].unit == "%" and breaches[0].threshold == 90.0


def test_systolic_and_temperature_alert_at_the_threshold():
    systolic = evaluate(frame("systolic", [(T0, 179.0), (T0 + 1, 180.0), (T0 + 2, 200.0)]), DEFAULT_RULES)
    assert hits(systolic) == [("systolic_high", T0 + 1, 180.0), ("systolic_high", T0 + 2, 200.0)]
    temperature = evaluate(frame("body_temp", [(T0, 37.9), (T0 + 1, 38.0), (T0 + 2, 38.4)]), DEFAULT_RULES)
    assert hits(temperature) == [("body_temp_high", T0 + 1, 38.0), ("body_temp_high", T0 + 2, 38.4)]
    assert temperature[0].unit == "Cel"


def test_weight_gain_is_the_latest_minus_the_lowest_of_the_three_days_before():
    data = frame("weight", [
        (T0, 60.0),
        (T0 + 1 * DAY_MS, 59.5),     # baseline [T0-3d, +1d): 60.0 -> gain -0.5
        (T0 + 2 * DAY_MS, 61.0),     # [T0-1d, +2d): min 59.5 -> 1.5
        (T0 + 3 * DAY_MS, 61.4),     # [T0, +3d): min 59.5 -> 1.9 (not yet)
        (T0 + 4 * DAY_MS, 62.0),     # [+1d, +4d): min 59.5 -> 2.5  ALERT
        (T0 + 5 * DAY_MS, 61.5),     # [+2d, +5d): min 61.0 -> 0.5
        (T0 + 9 * DAY_MS, 70.0),     # [+6d, +9d): nothing before it -> no baseline, no alert
    ])
    breaches = evaluate(data, DEFAULT_RULES)
    assert hits(breaches) == [("weight_gain", T0 + 4 * DAY_MS, 2.5)]
    assert breaches[0].unit == "kg" and breaches[0].threshold == 2.0


def test_weight_gain_of_exactly_2_kg_over_exactly_3_days_alerts_despite_binary_fractions():
    # 62.1 - 60.1 is 1.9999999999999929 in binary floating point: compared rounded to grams, it is 2.0.
    data = frame("weight", [(T0, 60.1), (T0 + 3 * DAY_MS, 62.1), (T0 + 6 * DAY_MS + 1, 64.0)])
    assert hits(evaluate(data, DEFAULT_RULES)) == [("weight_gain", T0 + 3 * DAY_MS, 2.0)]
    # 64.0 at +6d+1ms: [+3d+1ms, +6d+1ms) holds nothing (62.1 is 1 ms too old) -> no alert


def test_since_limits_the_alerts_but_older_rows_remain_the_baseline():
    data = frame("weight", [(T0, 60.0), (T0 + 2 * DAY_MS, 62.5), (T0 + 2 * DAY_MS + HOUR_MS, 63.0)])
    since = T0 + 2 * DAY_MS + 1
    assert hits(evaluate(data, DEFAULT_RULES, since_ms=since)) == [("weight_gain", T0 + 2 * DAY_MS + HOUR_MS, 3.0)]


def test_overrides_change_the_threshold_or_switch_a_rule_off():
    data = pl.DataFrame({"time": [T0, T0 + 1], "spo2": [91.0, 93.0], "systolic": [185.0, 120.0]})
    assert hits(evaluate(data, DEFAULT_RULES)) == [("systolic_high", T0, 185.0)]
    changed = apply_changes(DEFAULT_RULES, {"spo2_low": RuleChange(threshold=92), "systolic_high": RuleChange(enabled=False)})
    assert hits(evaluate(data, changed)) == [("spo2_low", T0, 91.0)]
    assert DEFAULT_RULES["spo2_low"].threshold == 90.0            # the defaults themselves are untouched
    with pytest.raises(ValueError, match="unknown alert rule.*pulse_low"):
        apply_changes(DEFAULT_RULES, {"pulse_low": RuleChange(threshold=40)})


def test_missing_columns_empty_frames_and_nan_give_no_alert():
    assert evaluate(pl.DataFrame({"time": [T0], "heart_rate": [200.0]}), DEFAULT_RULES) == []
    assert evaluate(frame("spo2", []), DEFAULT_RULES) == []
    assert evaluate(frame("spo2", [(T0, float("nan"))]), DEFAULT_RULES) == []


def test_what_the_job_needs_to_read():
    assert alert_fields(DEFAULT_RULES) == ["body_temp", "spo2", "systolic", "weight"]
    assert lookback_needed_ms(DEFAULT_RULES) == 3 * DAY_MS
    no_gain = apply_changes(DEFAULT_RULES, {"weight_gain": RuleChange(enabled=False)})
    assert lookback_needed_ms(no_gain) == 0 and "weight" not in alert_fields(no_gain)


def test_config_changes_the_defaults_and_names_an_unknown_rule():
    config = AlertsConfig.model_validate({"rules": {"spo2_low": {"threshold": 92}, "weight_gain": {"enabled": False}}})
    rules = config.default_rules()
    assert rules["spo2_low"].threshold == 92 and not rules["weight_gain"].enabled and rules["systolic_high"].enabled
    assert config.lookback_days == 7
    with pytest.raises(ValidationError, match="unknown rule.*spo2_high"):
        AlertsConfig.model_validate({"rules": {"spo2_high": {"threshold": 99}}})
    with pytest.raises(ValidationError, match="webhook_retry_max_s"):
        AlertsConfig.model_validate({"webhook_retry_initial_s": 60, "webhook_retry_max_s": 10})
    assert [Backoff(30, 100).ceiling_for(n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]
