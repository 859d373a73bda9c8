"""Checks every process's /metrics must pass, on the text parsed by prometheus_client's own parser."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

MILLISECONDS = re.compile(r"(^|_)ms(_|$)")


def check_exposition(text: str, *, histograms: tuple[str, ...] = (), secrets: tuple[str, ...] = ()) -> dict:
    """Parse ``text`` and assert the rules; returns the families by name.

    Every family has HELP; every counter sample ends in ``_total`` (or ``_created``) and no gauge
    does; no name is in milliseconds; the named histograms have buckets up to +Inf that rise;
    no secret (or personal value) appears anywhere in the text.
    """
    families = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"{family.name}: two families of the same name"
        families[family.name] = family
        assert family.documentation.strip(), f"{family.name}: no HELP text"
        assert not MILLISECONDS.search(family.name), f"{family.name}: a duration in milliseconds"
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), f"counter sample {sample.name} without _total"
            if family.type == "gauge":
                assert not sample.name.endswith("_total"), f"gauge {sample.name} named like a counter"
    for name in histograms:
        assert name in families, f"histogram {name} missing; families: {sorted(families)}"
        family = families[name]
        assert family.type == "histogram", f"{name} is a {family.type}"
        series: dict[tuple, list[tuple[float, float]]] = {}
        for sample in family.samples:
            if sample.name == name + "_bucket":
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                series.setdefault(labels, []).append((float(sample.labels["le"]), sample.value))
        assert series, f"{name}: no buckets"
        for labels, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == float("inf"), f"{name}{labels}: no +Inf bucket"
            counts = [count for _, count in buckets]
            assert counts == sorted(counts), f"{name}{labels}: cumulative counts fall: {counts}"
    for secret in secrets:
        assert secret not in text, "a secret or personal value appears in /metrics"
    return families


def value(families: dict, sample_name: str, **labels) -> float:
    """The value of one sample (by sample name and exact labels, ``le`` included for buckets); 0 if absent."""
    family_name = re.sub(r"(_total|_bucket|_count|_sum|_created)$", "", sample_name)
    for family in (families.get(family_name), families.get(sample_name)):
        for sample in family.samples if family else ():
            if sample.name == sample_name and sample.labels == labels:
                return sample.value
    return 0.0


def histogram_count(families: dict, name: str, **labels) -> float:
    """Observations so far in histogram ``name`` (its ``_count``) for the given labels."""
    return value(families, name + "_count", **labels)
