"""Our metric names and units for SunSpec points; offsets, types and scale factors come from the model JSON.

A point listed here gets the name chosen for it, so the same quantity has the same name in
every model (``W`` of a meter, an inverter and model 701 is ``power_total``). Any other
top-level point of a model we read gets its SunSpec name in snake_case (``WMaxRtg`` ->
``w_max_rtg``). Units are converted as for the meters: energies in kWh (kVAh, kvarh),
power factors in percent to fractions; power stays in W.
"""

from __future__ import annotations

import re

_PHASES = {"A": "l1", "B": "l2", "C": "l3"}

IDENTITY = {"Mn": "manufacturer", "Md": "model", "Vr": "version", "SN": "serial_number"}


def _meter() -> dict[str, str]:
    names = {"A": "current_total", "PhV": "voltage_ln_avg", "PPV": "voltage_ll_avg", "Hz": "frequency",
             "W": "power_total", "VA": "apparent_power_total", "VAR": "reactive_power_total",
             "PF": "power_factor", "Evt": "meter_events"}
    for phase, n in _PHASES.items():
        names[f"Aph{phase}"] = f"current_{n}"
        names[f"PhVph{phase}"] = f"voltage_{n}"
        names[f"Wph{phase}"] = f"power_{n}"
        names[f"VAph{phase}"] = f"apparent_power_{n}"
        names[f"VARph{phase}"] = f"reactive_power_{n}"
        names[f"PFph{phase}"] = f"power_factor_{n}"
    for pair, metric in (("AB", "voltage_l1_l2"), ("BC", "voltage_l2_l3"), ("CA", "voltage_l3_l1")):
        names[f"PhVph{pair}"] = metric           # model_20x.json spells them PhVph..; older tables PPVph..
        names[f"PPVph{pair}"] = metric
    for kind, prefix in (("Wh", "energy"), ("VAh", "apparent_energy")):
        for direction, word in (("Exp", "export"), ("Imp", "import")):
            names[f"Tot{kind}{direction}"] = f"{prefix}_{word}"
            for phase, n in _PHASES.items():
                names[f"Tot{kind}{direction}Ph{phase}"] = f"{prefix}_{word}_{n}"
    for quadrant in ("ImpQ1", "ImpQ2", "ExpQ3", "ExpQ4"):
        word = quadrant[:3].replace("Imp", "import").replace("Exp", "export") + "_" + quadrant[3:].lower()
        names[f"TotVArh{quadrant}"] = f"reactive_energy_{word}"
        for phase, n in _PHASES.items():
            names[f"TotVArh{quadrant}Ph{phase}"] = f"reactive_energy_{word}_{n}"
    return names


def _inverter() -> dict[str, str]:
    names = {"A": "current_total", "W": "power_total", "Hz": "frequency", "VA": "apparent_power_total",
             "VAr": "reactive_power_total", "PF": "power_factor", "WH": "energy_export",
             "DCA": "dc_current", "DCV": "dc_voltage", "DCW": "dc_power",
             "TmpCab": "temperature_cabinet", "TmpSnk": "temperature_heatsink",
             "TmpTrns": "temperature_transformer", "TmpOt": "temperature_other",
             "St": "inverter_state", "StVnd": "inverter_state_vendor",
             "Evt1": "inverter_events", "Evt2": "inverter_events_2"}
    for phase, n in _PHASES.items():
        names[f"Aph{phase}"] = f"current_{n}"
        names[f"PhVph{phase}"] = f"voltage_{n}"
    for pair, metric in (("AB", "voltage_l1_l2"), ("BC", "voltage_l2_l3"), ("CA", "voltage_l3_l1")):
        names[f"PPVph{pair}"] = metric
    for i in range(1, 5):
        names[f"EvtVnd{i}"] = f"inverter_events_vendor_{i}"
    return names


def _der_ac() -> dict[str, str]:
    names = {"ACType": "ac_type", "St": "der_state", "InvSt": "inverter_state", "ConnSt": "grid_connection",
             "Alrm": "der_alarms", "DERMode": "der_mode", "W": "power_total", "VA": "apparent_power_total",
             "Var": "reactive_power_total", "PF": "power_factor", "A": "current_total", "LLV": "voltage_ll_avg",
             "LNV": "voltage_ln_avg", "Hz": "frequency", "TotWhInj": "energy_export", "TotWhAbs": "energy_import",
             "TotVarhInj": "reactive_energy_injected", "TotVarhAbs": "reactive_energy_absorbed",
             "TmpAmb": "temperature_ambient", "TmpCab": "temperature_cabinet", "TmpSnk": "temperature_heatsink",
             "TmpTrns": "temperature_transformer", "TmpSw": "temperature_switch", "TmpOt": "temperature_other",
             "ThrotPct": "throttle_pct", "ThrotSrc": "throttle_source", "MnAlrmInfo": "alarm_info",
             "VL1L2": "voltage_l1_l2", "VL2L3": "voltage_l2_l3", "VL3L1": "voltage_l3_l1"}
    for i in (1, 2, 3):
        names.update({f"WL{i}": f"power_l{i}", f"VAL{i}": f"apparent_power_l{i}", f"VarL{i}": f"reactive_power_l{i}",
                      f"PFL{i}": f"power_factor_l{i}", f"AL{i}": f"current_l{i}", f"VL{i}": f"voltage_l{i}",
                      f"TotWhInjL{i}": f"energy_export_l{i}", f"TotWhAbsL{i}": f"energy_import_l{i}",
                      f"TotVarhInjL{i}": f"reactive_energy_injected_l{i}",
                      f"TotVarhAbsL{i}": f"reactive_energy_absorbed_l{i}"})
    return names


_BATTERY = {
    "AHRtg": "battery_capacity_ah", "WHRtg": "battery_capacity", "WChaRteMax": "battery_charge_power_max",
    "WDisChaRteMax": "battery_discharge_power_max", "DisChaRte": "self_discharge_rate", "SoCMax": "soc_max",
    "SoCMin": "soc_min", "SocRsvMax": "soc_reserve_max", "SoCRsvMin": "soc_reserve_min", "SoC": "soc",
    "DoD": "depth_of_discharge", "SoH": "soh", "NCyc": "battery_cycles", "ChaSt": "battery_charge_state",
    "LocRemCtl": "battery_control_mode", "Typ": "battery_type", "State": "battery_state",
    "StateVnd": "battery_state_vendor", "Evt1": "battery_events", "Evt2": "battery_events_2",
    "EvtVnd1": "battery_events_vendor_1", "EvtVnd2": "battery_events_vendor_2", "V": "battery_voltage",
    "VMax": "battery_voltage_max", "VMin": "battery_voltage_min", "CellVMax": "cell_voltage_max",
    "CellVMin": "cell_voltage_min", "CellVAvg": "cell_voltage_avg", "A": "battery_current",
    "AChaMax": "battery_charge_current_max", "ADisChaMax": "battery_discharge_current_max",
    "W": "battery_power", "ReqW": "battery_requested_power",
}
_STORAGE_CAPACITY = {"WHRtg": "storage_capacity", "WHAvail": "storage_energy_available", "SoC": "soc",
                     "SoH": "soh", "Sta": "storage_state"}

_METER, _INVERTER, _DER_AC = _meter(), _inverter(), _der_ac()


def curated(model_id: int) -> dict[str, str]:
    if 201 <= model_id <= 204:
        return _METER
    if model_id in (101, 102, 103, 111, 112, 113):
        return _INVERTER
    return {701: _DER_AC, 713: _STORAGE_CAPACITY, 802: _BATTERY}.get(model_id, {})


def snake_case(point_name: str) -> str:
    """``WMaxRtg`` -> ``w_max_rtg``, ``PFOvrExt`` -> ``pf_ovr_ext``, ``VL1L2`` -> ``vl1_l2``."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", point_name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text).lower()
    text = re.sub(r"[^a-z0-9_]", "_", text).strip("_")
    return text if text[:1].isalpha() else f"p_{text}"


def metric_name(model_id: int, point_name: str) -> str:
    return curated(model_id).get(point_name) or snake_case(point_name)


# SunSpec unit -> (our unit, extra power of ten)
_ENERGY = {"Wh": "kWh", "WH": "kWh", "VAh": "kVAh", "varh": "kvarh", "Varh": "kvarh", "VArh": "kvarh"}
_SAME = {"Var": "var", "VAr": "var", "C": "°C", "%WHRtg": "%", "%": "%", "Pct": "%", "Secs": "s"}
ENERGY_UNITS = frozenset(_ENERGY)


def unit_and_exponent(point_name: str, sunspec_units: str | None) -> tuple[str, int]:
    units = sunspec_units or ""
    if units in _ENERGY:
        return _ENERGY[units], -3
    if units == "Pct" and point_name.startswith("PF"):
        return "", -2                   # power factor in percent -> fraction, as for the meters
    return _SAME.get(units, units), 0
