"""OCPP sampled values → readings named like the meters' (README table), and the catalog.

Pure functions: both version handlers hand over :class:`Sample` with a float value.
"""

from __future__ import annotations

import re
from functools import lru_cache

from edge_agent.sources.base import reading
from edge_agent.sources.ocpp.model import Sample
from hinode.contract import MetricInfo, Reading

# measurand -> (metric base name, unit it is reported in after conversion)
_NAMED = {
    "Energy.Active.Import.Register": ("energy_import", "kWh"),
    "Energy.Active.Export.Register": ("energy_export", "kWh"),
    "Power.Active.Import": ("power", "W"),
    "Power.Active.Export": ("power_export", "W"),
    "Power.Offered": ("power_offered", "W"),
    "Current.Import": ("current", "A"),
    "Current.Offered": ("current_offered", "A"),
    "Voltage": ("voltage", "V"),
    "Frequency": ("frequency", "Hz"),
    "Power.Factor": ("power_factor", ""),
    "SoC": ("soc", "%"),
    "Temperature": ("temperature", "°C"),
}
COUNTERS = ("energy_import", "energy_export")

# Scale to the unit we send, the meters' units: energy in kWh, power in W (reactive and apparent likewise).
_SCALE = {
    "Wh": (0.001, "kWh"), "kWh": (1.0, "kWh"),
    "W": (1.0, "W"), "kW": (1000.0, "W"),
    "varh": (0.001, "kvarh"), "kvarh": (1.0, "kvarh"),
    "var": (1.0, "var"), "kvar": (1000.0, "var"),
    "VA": (1.0, "VA"), "kVA": (1000.0, "VA"),
    "Percent": (1.0, "%"),
    "Celsius": (1.0, "°C"), "Celcius": (1.0, "°C"),
}
_DEFAULT_UNIT = {
    "Energy": "Wh", "Power.Active": "W", "Power.Offered": "W", "Power.Reactive": "var",
    "Current": "A", "Voltage": "V", "Frequency": "Hz", "SoC": "Percent", "Temperature": "Celsius",
}


def _default_unit(measurand: str) -> str:
    if measurand.startswith("Energy.Reactive"):
        return "varh"
    for prefix, unit in _DEFAULT_UNIT.items():
        if measurand.startswith(prefix):
            return unit
    return ""


def snake_case(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "_", name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return text.strip("_").lower()


@lru_cache(maxsize=256)
def phase_suffix(phase: str) -> str:
    """"L1" / "L1-N" → "l1"; "L1-L2" → "l1_l2"; "N" → "n"; "" → ""."""
    phase = phase.strip()
    if phase.endswith("-N"):
        phase = phase[:-2]
    return snake_case(phase)


def convert(value: float, unit: str, measurand: str) -> tuple[float, str]:
    """(value, unit) in the units we send."""
    unit = unit or _default_unit(measurand)
    if unit == "Fahrenheit":
        return (value - 32.0) * 5.0 / 9.0, "°C"
    if unit == "K":
        return value - 273.15, "°C"
    factor, target = _SCALE.get(unit, (1.0, unit))
    return value * factor, target


@lru_cache(maxsize=1024)
def metric_name(measurand: str, phase: str) -> str:
    measurand = measurand or "Energy.Active.Import.Register"
    base, _ = _NAMED.get(measurand, (snake_case(measurand), ""))
    suffix = phase_suffix(phase)
    if base == "power":
        return f"power_{suffix}" if suffix else "power_total"
    return f"{base}_{suffix}" if suffix else base


def to_reading(sample: Sample) -> Reading:
    measurand = sample.measurand or "Energy.Active.Import.Register"
    value, unit = convert(sample.value, sample.unit, measurand)
    return reading(sample.ts_ms, metric_name(measurand, sample.phase), round(value, 6), unit)


def to_readings(samples: list[Sample]) -> list[Reading]:
    """One reading per sample; of two samples with the same metric and ts (an Outlet and an
    EV location, say) the Outlet's wins."""
    chosen: dict[tuple[int, str], tuple[Sample, Reading]] = {}
    for sample in samples:
        r = to_reading(sample)
        key = (r.ts, r.metric)
        if key in chosen and sample.location not in ("", "Outlet"):
            continue
        chosen[key] = (sample, r)
    return [r for _, r in chosen.values()]


def power_w(samples: list[Sample]) -> float | None:
    """The total active import power of a message in W: the unphased value, else the phases' sum."""
    total, phases = None, []
    for s in samples:
        if s.measurand != "Power.Active.Import":
            continue
        watts = s.value * 1000.0 if s.unit == "kW" else s.value
        if phase_suffix(s.phase):
            phases.append(watts)
        else:
            total = watts
    if total is None and phases:
        total = sum(phases)
    return total


def energy_wh(samples: list[Sample]) -> float | None:
    """The newest import register value in Wh, if the message has one."""
    found = None
    for s in sorted(samples, key=lambda s: s.ts_ms):
        if (s.measurand or "Energy.Active.Import.Register") == "Energy.Active.Import.Register" and not s.phase:
            found = s.value * 1000.0 if s.unit == "kWh" else s.value
    return found


# Metrics every connector batch may carry besides the measurands (README).
STATE_METRICS = [
    MetricInfo(metric="status"), MetricInfo(metric="error_code"),
    MetricInfo(metric="session_energy", unit="kWh"), MetricInfo(metric="mode", writable=True),
    MetricInfo(metric="target_current", unit="A"), MetricInfo(metric="target_phases"),
    MetricInfo(metric="decision"),
]


def catalog(measurands: list[str] | tuple[str, ...]) -> list[MetricInfo]:
    """What a charger sends when asked for these measurands (phases as the table lists them)."""
    metrics: dict[str, MetricInfo] = {}
    for measurand in measurands:
        unit = convert(0.0, "", measurand)[1]
        phases = [""]
        if measurand in ("Power.Active.Import", "Current.Import", "Voltage"):
            phases += ["L1", "L2", "L3"]
        for phase in phases:
            name = metric_name(measurand, phase)
            metrics[name] = MetricInfo(metric=name, unit=unit, counter=name in COUNTERS)
    for info in STATE_METRICS:
        metrics.setdefault(info.metric, info)
    return list(metrics.values())


SESSION_METRICS = [
    MetricInfo(metric="session_id"), MetricInfo(metric="start_ts", unit="ms"), MetricInfo(metric="stop_ts", unit="ms"),
    MetricInfo(metric="duration", unit="s"), MetricInfo(metric="energy", unit="kWh"),
    MetricInfo(metric="peak_power", unit="W"), MetricInfo(metric="pv_energy", unit="kWh"),
    MetricInfo(metric="pv_share"), MetricInfo(metric="stop_reason"),
]

SITE_METRICS = [
    MetricInfo(metric="grid_power", unit="W"), MetricInfo(metric="pv_power", unit="W"),
    MetricInfo(metric="load_power", unit="W"), MetricInfo(metric="ev_power", unit="W"),
    MetricInfo(metric="surplus", unit="W"), MetricInfo(metric="site_target", unit="W"),
    MetricInfo(metric="decision"),
]
