"""Raw SunSpec points of a PV inverter (models 103 / 113, 701) and a battery (802) from physical values.

``values`` are the dicts of :func:`simulators.pv.inverter_values` (plus ``energy_export`` in
kWh) and :func:`battery_values`. Scale factors are fixed per device, sized to its rating so
the largest values fit their registers, as a real device's firmware does.
"""

from __future__ import annotations

from simulators.derived import line_to_line
from simulators.load import TOKYO_UTC_OFFSET
from simulators.modbus.sunspec import enum_values, model_layout, quantize

INVERTER_MODELS = (103, 113)
SUPPORTED_MODELS = (101, 102, 103, 111, 112, 113, 201, 202, 203, 204, 701, 802)


def fitting_sf(largest: float, limit: int = 32767) -> int:
    """The smallest power of ten (>= -2) that keeps ``largest`` within ``limit`` raw steps."""
    sf = -2
    while abs(largest) / 10 ** sf > limit:
        sf += 1
    return sf


def _lines(values: dict) -> list[float]:
    v = [values[f"voltage_l{n}"] for n in (1, 2, 3)]
    return [line_to_line(v[0], v[1]), line_to_line(v[1], v[2]), line_to_line(v[2], v[0])]


class InverterEncoder:
    """Model 103 (int + sunssf, ``float_model=False``) or 113 (float32) of a ``kwp`` PV inverter."""

    def __init__(self, kwp: float, float_model: bool = False, phases: int = 3):
        self.kwp, self.float_model = kwp, float_model
        self.model_id = (110 if float_model else 100) + phases
        rated_w = kwp * 1000
        # Sized for 120 % of the rating; currents as if the phases sagged to 200 V.
        self.sf = {"A_SF": fitting_sf(1.2 * rated_w / 200), "V_SF": -1, "W_SF": fitting_sf(1.2 * rated_w),
                   "Hz_SF": -2, "VA_SF": fitting_sf(1.2 * rated_w), "PF_SF": -1, "WH_SF": 1,
                   "DCA_SF": fitting_sf(1.2 * rated_w / 400), "DCV_SF": -1, "DCW_SF": fitting_sf(1.3 * rated_w),
                   "Tmp_SF": -1}
        self.states = enum_values(self.model_id, "St")

    def raw(self, values: dict) -> dict[str, object]:
        amps = [values[f"current_l{n}"] for n in (1, 2, 3)]
        points: dict[str, float | None] = {
            "A": sum(amps), "AphA": amps[0], "AphB": amps[1], "AphC": amps[2],
            "PhVphA": values["voltage_l1"], "PhVphB": values["voltage_l2"], "PhVphC": values["voltage_l3"],
            "W": values["power_total"], "Hz": values["frequency"], "VA": values["power_total"],
            "PF": values["power_factor"] * 100, "WH": values["energy_export"] * 1000,
            "DCA": values["dc_current"], "DCV": values["dc_voltage"], "DCW": values["dc_power"],
            "TmpCab": values["temperature_cabinet"],
        }
        points["PPVphAB"], points["PPVphBC"], points["PPVphCA"] = _lines(values)
        raw: dict[str, object] = {"St": self.states[values["inverter_state"]], "Evt1": 0, "Evt2": 0}
        if self.float_model:
            raw.update(points)           # VAr, TmpSnk, TmpTrns, TmpOt, EvtVnd*: not implemented (NaN / 0xFFFFFFFF)
            return raw
        raw.update(self.sf)
        point_sf = {name: sf for name, _, _, sf in model_layout(self.model_id) if sf}
        for name, value in points.items():
            raw[name] = quantize(value, self.sf[point_sf[name]])
        raw["WH"] = int(raw["WH"]) & 0xFFFFFFFF
        return raw


class DerMeasurementEncoder:
    """Model 701 (DER AC measurement) of the same inverter: totals, per phase, energy injected."""

    model_id = 701

    def __init__(self, kwp: float):
        rated_w = kwp * 1000
        self.sf = {"W_SF": fitting_sf(1.2 * rated_w), "VA_SF": fitting_sf(1.2 * rated_w), "A_SF": -1, "V_SF": -1,
                   "Hz_SF": -3, "PF_SF": -3, "TotWh_SF": 0, "Tmp_SF": -1}
        self.ac_type = enum_values(701, "ACType")["THREE_PHASE"]
        self.on, self.connected = enum_values(701, "St")["ON"], enum_values(701, "ConnSt")["CONNECTED"]
        self.running, self.sleeping = enum_values(701, "InvSt")["RUNNING"], enum_values(701, "InvSt")["SLEEPING"]

    def raw(self, values: dict) -> dict[str, object]:
        q = quantize
        producing = values["power_total"] > 0
        raw: dict[str, object] = dict(self.sf)
        raw.update({"ACType": self.ac_type, "St": self.on, "ConnSt": self.connected,
                    "InvSt": self.running if producing else self.sleeping, "Alrm": 0,
                    "W": q(values["power_total"], self.sf["W_SF"]), "VA": q(values["power_total"], self.sf["VA_SF"]),
                    "PF": q(values["power_factor"], self.sf["PF_SF"]),
                    "A": q(sum(values[f"current_l{n}"] for n in (1, 2, 3)), -1),
                    "LNV": q(sum(values[f"voltage_l{n}"] for n in (1, 2, 3)) / 3, -1),
                    "LLV": q(sum(_lines(values)) / 3, -1), "Hz": q(values["frequency"], -3),
                    "TotWhInj": round(values["energy_export"] * 1000), "TmpCab": q(values["temperature_cabinet"], -1)})
        for n in (1, 2, 3):
            raw[f"WL{n}"] = q(values["power_total"] / 3, self.sf["W_SF"])
            raw[f"AL{n}"] = q(values[f"current_l{n}"], -1)
            raw[f"VL{n}"] = q(values[f"voltage_l{n}"], -1)
        return raw


def battery_values(t: float, capacity_kwh: float) -> dict[str, object]:
    """A daily cycle in Tokyo time: 20 % at 10:00, charged to 90 % by 15:00, back to 20 % by 22:00.

    ``power`` is positive while discharging (generation, as model 701 counts it) and negative while charging.
    """
    hour = ((t + TOKYO_UTC_OFFSET) % 86400) / 3600
    if 10 <= hour < 15:
        soc, power = 20 + 70 * (hour - 10) / 5, -0.70 * capacity_kwh / 5 * 1000
    elif 15 <= hour < 17:
        soc, power = 90.0, 0.0
    elif 17 <= hour < 22:
        soc, power = 90 - 70 * (hour - 17) / 5, 0.70 * capacity_kwh / 5 * 1000
    else:
        soc, power = 20.0, 0.0
    state = "CHARGING" if power < 0 else "DISCHARGING" if power > 0 else "HOLDING"
    volts = 700.0 + 100.0 * soc / 100
    return {"soc": soc, "battery_power": power, "battery_voltage": volts, "battery_current": power / volts,
            "battery_charge_state": state, "capacity_kwh": capacity_kwh}


class BatteryEncoder:
    """Model 802 (battery base model): ratings, SoC, charge state, voltage, current and power."""

    model_id = 802

    def __init__(self, capacity_kwh: float):
        self.capacity_kwh = capacity_kwh
        max_w = capacity_kwh * 1000 / 2                  # 0.5 C
        self.sf = {"AHRtg_SF": 0, "WHRtg_SF": fitting_sf(capacity_kwh * 1000, 65535), "WChaDisChaMax_SF":
                   fitting_sf(max_w, 65535), "SoC_SF": -1, "SoH_SF": 0, "V_SF": -1, "CellV_SF": -3, "A_SF": -1,
                   "AMax_SF": 0, "W_SF": fitting_sf(max_w)}
        self.labels = {name: enum_values(802, name) for name in ("ChaSt", "LocRemCtl", "Typ", "State", "SetOp",
                                                                  "SetInvState")}

    def raw(self, values: dict) -> dict[str, object]:
        q, sf = quantize, self.sf
        return {**sf, "AHRtg": round(self.capacity_kwh * 1000 / 750), "WHRtg": q(self.capacity_kwh * 1000, sf["WHRtg_SF"]),
                "WChaRteMax": q(self.capacity_kwh * 500, sf["WChaDisChaMax_SF"]),
                "WDisChaRteMax": q(self.capacity_kwh * 500, sf["WChaDisChaMax_SF"]),
                "SoC": q(values["soc"], -1), "SoH": 98, "ChaSt": self.labels["ChaSt"][values["battery_charge_state"]],
                "LocRemCtl": self.labels["LocRemCtl"]["REMOTE"], "AlmRst": 0,
                "Typ": self.labels["Typ"]["LITHIUM_ION"], "State": self.labels["State"]["CONNECTED"],
                "Evt1": 0, "Evt2": 0, "EvtVnd1": 0, "EvtVnd2": 0,
                "V": q(values["battery_voltage"], -1), "CellV_SF": -3,
                "A": q(values["battery_current"], -1), "W": q(values["battery_power"], sf["W_SF"]),
                "SetOp": self.labels["SetOp"]["CONNECT"], "SetInvState": self.labels["SetInvState"]["INVERTER_STARTED"]}
