"""Alert rules over one patient's vitals: pure functions over polars frames (no I/O).

A rule is a metric of hinode/vitals.py compared with a threshold. The defaults follow the issue
(SpO2 below 90 %, systolic at or above 180 mm[Hg], body temperature at or above 38.0 Cel, a weight
gain of 2 kg or more within 3 days); ``domains.vitals.alerts.rules`` in cloud.yaml changes the
defaults for everyone and a doctor changes them per patient (``alerts.py`` keeps those overrides).

The frame is what ``readings.fetch_vitals`` returns: a ``time`` column (ms) and one column per
metric (null where a row has no value, e.g. a special value the device sent instead of a number).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import polars as pl

from hinode.vitals import VITAL_METRICS, Category

DAY_MS = 86_400_000
# A weight gain is the difference of two scale readings (5 g resolution at best): compare it
# rounded, so 61.5 - 59.5 and 62.1 - 60.1 (1.9999999999999929 in binary) both count as 2.0.
GAIN_DECIMALS = 3

Comparison = Literal["below", "at_or_above", "gain_at_or_above"]


@dataclass(frozen=True)
class AlertRule:
    name: str
    metric: str
    comparison: Comparison
    threshold: float
    enabled: bool = True
    window_days: float | None = None      # gain rules: the span the gain is measured over

    @property
    def category(self) -> Category:
        return VITAL_METRICS[self.metric].category

    @property
    def unit(self) -> str:
        return VITAL_METRICS[self.metric].unit

    @property
    def window_ms(self) -> int:
        return int((self.window_days or 0) * DAY_MS)

    def describe(self) -> str:
        words = {"below": "<", "at_or_above": ">=", "gain_at_or_above": "gain >="}[self.comparison]
        within = f" within {self.window_days:g} days" if self.window_days else ""
        return f"{self.metric} {words} {self.threshold:g} {self.unit}{within}"


DEFAULT_RULES: dict[str, AlertRule] = {rule.name: rule for rule in (
    AlertRule("spo2_low", "spo2", "below", 90.0),
    AlertRule("systolic_high", "systolic", "at_or_above", 180.0),
    AlertRule("body_temp_high", "body_temp", "at_or_above", 38.0),
    AlertRule("weight_gain", "weight", "gain_at_or_above", 2.0, window_days=3.0),
)}


@dataclass(frozen=True)
class RuleChange:
    """A change of one rule: a new threshold and/or enabled flag (None keeps what it was)."""

    threshold: float | None = None
    enabled: bool | None = None


def apply_changes(rules: dict[str, AlertRule], changes: dict[str, RuleChange]) -> dict[str, AlertRule]:
    """``rules`` with ``changes`` applied; a change naming an unknown rule is a ValueError naming it."""
    unknown = sorted(set(changes) - set(rules))
    if unknown:
        raise ValueError(f"unknown alert rule(s) {', '.join(unknown)} (known: {', '.join(sorted(rules))})")
    changed = dict(rules)
    for name, change in changes.items():
        if change.threshold is not None:
            changed[name] = replace(changed[name], threshold=float(change.threshold))
        if change.enabled is not None:
            changed[name] = replace(changed[name], enabled=bool(change.enabled))
    return changed


@dataclass(frozen=True)
class Breach:
    """One reading that breaks a rule; ``value`` is the reading (for a gain rule: the gain)."""

    rule: str
    metric: str
    category: Category
    ts_ms: int
    value: float
    threshold: float
    unit: str


def evaluate(frame: pl.DataFrame, rules: dict[str, AlertRule] | list[AlertRule], *,
             since_ms: int | None = None) -> list[Breach]:
    """Every reading in ``frame`` (one patient's) that breaks an enabled rule, oldest first.

    ``since_ms``: only readings at or after it raise a breach; older rows still serve as the
    baseline of a gain rule (give the frame ``window_days`` more history than you look back).
    """
    rule_list = list(rules.values()) if isinstance(rules, dict) else list(rules)
    breaches: list[Breach] = []
    for rule in rule_list:
        if not rule.enabled or rule.metric not in frame.columns or frame.is_empty():
            continue
        values = (frame.select(pl.col("time").cast(pl.Int64), pl.col(rule.metric).cast(pl.Float64).alias("value"))
                  .drop_nulls("value").filter(pl.col("value").is_not_nan()).sort("time"))
        if rule.comparison == "gain_at_or_above":
            hits = _gains(values, rule)
        elif rule.comparison == "below":
            hits = values.filter(pl.col("value") < rule.threshold)
        else:
            hits = values.filter(pl.col("value") >= rule.threshold)
        if since_ms is not None:
            hits = hits.filter(pl.col("time") >= since_ms)
        breaches += [Breach(rule.name, rule.metric, rule.category, int(row["time"]), float(row["value"]),
                            rule.threshold, rule.unit) for row in hits.iter_rows(named=True)]
    return sorted(breaches, key=lambda b: (b.ts_ms, b.rule))


def _gains(values: pl.DataFrame, rule: AlertRule) -> pl.DataFrame:
    """Rows (time, value = gain) where a reading exceeds the lowest of the ``window_days`` before it."""
    if values.is_empty():
        return values
    baseline = (values.rolling(index_column="time", period=f"{rule.window_ms}i", closed="left")
                .agg(pl.col("value").min().alias("baseline")))
    return (values.with_columns(baseline["baseline"])
            .drop_nulls("baseline")
            .with_columns((pl.col("value") - pl.col("baseline")).round(GAIN_DECIMALS).alias("value"))
            .filter(pl.col("value") >= rule.threshold)
            .select("time", "value"))


def lookback_needed_ms(rules: dict[str, AlertRule] | list[AlertRule]) -> int:
    """How much history before the evaluated span the gain rules need as their baseline."""
    rule_list = list(rules.values()) if isinstance(rules, dict) else list(rules)
    return max((rule.window_ms for rule in rule_list if rule.enabled), default=0)


def alert_fields(rules: dict[str, AlertRule] | list[AlertRule]) -> list[str]:
    """The stored fields the enabled rules read (what the job SELECTs)."""
    rule_list = list(rules.values()) if isinstance(rules, dict) else list(rules)
    return sorted({rule.metric for rule in rule_list if rule.enabled})
