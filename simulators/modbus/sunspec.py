"""SunSpec maps of simulated devices: "SunS", model 1 (Common), the device's models, the end model.

Point layouts (names, types, sizes, scale factor names) come from the official model
definitions that pysunspec2 ships (``sunspec2/models/json/model_<id>.json``); only the
top-level points are laid out. Values are written as raw points: int16 with ``sunssf``
scale factors for models 103 and 203, float32 for 113, and so on.

Like many real devices these leave some points "not implemented": a point without a
value gets its type's sentinel (int16 / sunssf 0x8000, uint16 0xFFFF, acc32 0, float32
NaN, ...). A client has to filter them. Power factor is in percent where the model's
units say ``Pct`` (models 103, 203).

:class:`SunSpecMeter` serves model 201-204 (203 by default) from a factory meter's values;
``simulators.modbus.sunspec_devices`` has the PV inverter (103/113), the DER measurement (701)
and the battery (802).
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache
from pathlib import Path

import sunspec2
from sunspec2 import mdef

from simulators.derived import line_to_line
from simulators.load import meter_traits
from simulators.modbus.layout import RegisterTable

SUNS = (0x5375, 0x6E53)            # "SunS"
END_MODEL = (0xFFFF, 0)
SUNSPEC_BASES = (40000, 0, 50000)
MODELS_DIR = Path(sunspec2.__file__).parent / "models" / "json"
_FORMATS = {"int16": ">h", "sunssf": ">h", "int32": ">i", "int64": ">q", "float32": ">f", "float64": ">d"}
NOT_IMPLEMENTED = {"int16": 0x8000, "sunssf": 0x8000, "pad": 0x8000, "uint16": 0xFFFF, "count": 0xFFFF,
                   "enum16": 0xFFFF, "bitfield16": 0xFFFF, "acc16": 0, "int32": 0x80000000, "uint32": 0xFFFFFFFF,
                   "enum32": 0xFFFFFFFF, "bitfield32": 0xFFFFFFFF, "acc32": 0, "ipaddr": 0,
                   "int64": 0x8000000000000000, "uint64": 0xFFFFFFFFFFFFFFFF, "acc64": 0, "eui48": 0,
                   "ipv6addr": 0}


@lru_cache(maxsize=None)
def model_layout(model_id: int) -> tuple[tuple[str, str, int, str | None], ...]:
    """Top-level points of a model after ID and L: (name, type, registers, scale factor point or None)."""
    group = mdef.from_json_file(MODELS_DIR / mdef.to_json_filename(model_id))["group"]
    out = []
    for point in group["points"]:
        if point["name"] in ("ID", "L"):
            continue
        size = mdef.point_type_info[point["type"]]["len"] or point["size"]
        sf = point.get("sf") if isinstance(point.get("sf"), str) else None
        out.append((point["name"], point["type"], size, sf))
    return tuple(out)


@lru_cache(maxsize=None)
def enum_values(model_id: int, point_name: str) -> dict[str, int]:
    group = mdef.from_json_file(MODELS_DIR / mdef.to_json_filename(model_id))["group"]
    point = next(p for p in group["points"] if p["name"] == point_name)
    return {s["name"]: int(s["value"]) for s in point.get("symbols", ())}


COMMON_POINTS = tuple((name, kind, size) for name, kind, size, _ in model_layout(1))
METER_203_POINTS = tuple((name, kind, size) for name, kind, size, _ in model_layout(203))
COMMON_LENGTH = sum(size for _, _, size in COMMON_POINTS)           # 66
METER_203_LENGTH = sum(size for _, _, size in METER_203_POINTS)     # 105
assert COMMON_LENGTH == 66 and METER_203_LENGTH == 105


def _words(value: int, size: int) -> list[int]:
    return [(value >> (16 * (size - 1 - i))) & 0xFFFF for i in range(size)]


def _encode_point(kind: str, size: int, value) -> list[int]:
    if kind == "string":
        data = ("" if value is None else str(value)).encode("ascii")[: 2 * size].ljust(2 * size, b"\x00")
        return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]
    if kind.startswith("float"):
        number = math.nan if value is None else float(value)
        return list(struct.unpack(f">{size}H", struct.pack(_FORMATS[kind], number)))
    if value is None:
        return _words(NOT_IMPLEMENTED[kind], size)
    return _words(int(value) & ((1 << (16 * size)) - 1), size)


def encode_model(model_id: int, points: tuple | None, raw: dict[str, object]) -> list[int]:
    """``[ID, L, point registers...]`` with missing points set to "not implemented"."""
    layout = points if points is not None else [(n, k, s) for n, k, s, _ in model_layout(model_id)]
    words: list[int] = []
    for name, kind, size in layout:
        words += _encode_point(kind, size, raw.get(name))
    return [model_id, len(words), *words]


def common_raw(manufacturer: str, model: str, serial: str, unit: int, version: str = "1.0.0") -> dict[str, object]:
    return {"Mn": manufacturer, "Md": model, "Opt": "sunspec", "Vr": version, "SN": serial, "DA": unit, "Pad": None}


def sunspec_map(base: int, common: dict[str, object], models: list[tuple[int, dict[str, object]]]) -> RegisterTable:
    """The whole block from ``base``: marker, model 1, ``models`` as (id, raw points), end model."""
    if base not in SUNSPEC_BASES:
        raise ValueError(f"sunspec_base must be one of {SUNSPEC_BASES}, got {base}")
    words = [*SUNS, *encode_model(1, None, common)]
    for model_id, raw in models:
        words += encode_model(model_id, None, raw)
    return RegisterTable(base, [*words, *END_MODEL])


def apply_scale_factor(raw: int, sf: int) -> float:
    """``raw * 10**sf`` without binary noise such as 228.10000000000002."""
    return float(raw * 10 ** sf) if sf >= 0 else raw / 10 ** -sf


def decode_points(model_id: int, raw: dict[str, object]) -> dict[str, object]:
    """Scaled points of one model as a client decodes them; ``None`` where not implemented."""
    out: dict[str, object] = {}
    for name, kind, _size, sf in model_layout(model_id):
        if kind in ("sunssf", "pad"):
            continue
        value = raw.get(name)
        if value is None or (kind.startswith("acc") and value == 0):
            out[name] = None
        elif kind == "float32":
            out[name] = struct.unpack(">f", struct.pack(">f", float(value)))[0]
        elif kind == "string" or kind.startswith(("enum", "bitfield")):
            out[name] = value
        elif sf:
            out[name] = None if raw.get(sf) is None else apply_scale_factor(int(value), int(raw[sf]))
        else:
            out[name] = float(value)
    return out


def quantize(value: float, sf: int) -> int:
    return round(value / 10 ** sf)


def meter_scale_factors(rated_kw: float) -> dict[str, int]:
    """Static scale factors sized so the meter's largest values fit in int16."""
    w_sf = 0
    while rated_kw * 1000 * 1.2 / 10 ** w_sf >= 32767:
        w_sf += 1
    return {"A_SF": -1, "V_SF": -1, "Hz_SF": -2, "W_SF": w_sf, "VA_SF": w_sf, "PF_SF": -1, "TotWh_SF": 1}


class SunSpecMeter:
    """Encodes one unit's SunSpec block (model 1 + a meter model) and decodes what a client would read back."""

    def __init__(self, unit: int, base: int = 40000, seed: int = 0, model_id: int = 203,
                 rated_kw: float | None = None, model_name: str = "SIM-METER-3P") -> None:
        if base not in SUNSPEC_BASES:
            raise ValueError(f"sunspec_base must be one of {SUNSPEC_BASES}, got {base}")
        if model_id not in (201, 202, 203, 204):
            raise ValueError(f"a meter serves model 201, 202, 203 or 204, not {model_id}")
        self.unit, self.base, self.model_id = unit, base, model_id
        self.models = (model_id,)
        self.sf = meter_scale_factors(meter_traits(unit, seed).rated_kw if rated_kw is None else rated_kw)
        self.common_raw = common_raw("hinode", model_name, f"HSM-{unit:05d}", unit)
        self.common = encode_model(1, COMMON_POINTS, self.common_raw)

    def _q(self, value: float, sf: str) -> int:
        return quantize(value, self.sf[sf])

    def raw_points(self, v: dict[str, float]) -> dict[str, object]:
        volts = [v[f"voltage_l{n}"] for n in (1, 2, 3)]
        amps = [v[f"current_l{n}"] for n in (1, 2, 3)]
        watts = [v[f"power_l{n}"] for n in (1, 2, 3)]
        pf = v["power_factor"]
        raw: dict[str, object] = dict(self.sf)
        raw["A"] = self._q(sum(amps), "A_SF")
        raw["PhV"] = self._q(sum(volts) / 3, "V_SF")
        lines = [line_to_line(volts[0], volts[1]), line_to_line(volts[1], volts[2]), line_to_line(volts[2], volts[0])]
        raw["PPV"] = self._q(sum(lines) / 3, "V_SF")
        raw["Hz"] = self._q(v["frequency"], "Hz_SF")
        raw["W"] = self._q(v["power_total"], "W_SF")
        raw["VA"] = self._q(abs(v["power_total"]) / pf, "VA_SF")
        raw["PF"] = self._q(pf * 100, "PF_SF")
        for i, phase in enumerate(("phA", "phB", "phC")):
            raw["A" + phase] = self._q(amps[i], "A_SF")
            raw["PhV" + phase] = self._q(volts[i], "V_SF")
            raw["W" + phase] = self._q(watts[i], "W_SF")
            raw["VA" + phase] = self._q(volts[i] * amps[i], "VA_SF")
            raw["PF" + phase] = self._q(pf * 100, "PF_SF")
        raw["PhVphAB"], raw["PhVphBC"], raw["PhVphCA"] = (self._q(x, "V_SF") for x in lines)
        raw["TotWhImp"] = self._q(v["energy_import"] * 1000, "TotWh_SF") & 0xFFFFFFFF
        if v.get("energy_export"):
            raw["TotWhExp"] = self._q(v["energy_export"] * 1000, "TotWh_SF") & 0xFFFFFFFF
        raw["Evt"] = 0
        return raw

    def build(self, v: dict[str, float]) -> tuple[RegisterTable, dict[str, float], dict[str, float | None]]:
        """(holding table from ``base``, hinode metrics as a client decodes them, meter model points)."""
        raw = self.raw_points(v)
        table = RegisterTable(self.base, [*SUNS, *self.common, *encode_model(self.model_id, METER_203_POINTS, raw),
                                          *END_MODEL])
        points = self.decode_points(raw)
        metrics = {
            **{f"voltage_l{n}": points[f"PhVph{p}"] for n, p in zip((1, 2, 3), "ABC")},
            **{f"current_l{n}": points[f"Aph{p}"] for n, p in zip((1, 2, 3), "ABC")},
            **{f"power_l{n}": points[f"Wph{p}"] for n, p in zip((1, 2, 3), "ABC")},
            "power_total": points["W"], "power_factor": points["PF"] / 100,
            "frequency": points["Hz"], "energy_import": points["TotWhImp"] / 1000,
        }
        if points["TotWhExp"] is not None:
            metrics["energy_export"] = points["TotWhExp"] / 1000
        return table, metrics, points

    def decode_points(self, raw: dict[str, object]) -> dict[str, float | None]:
        """Scaled meter model points; ``None`` where the point is not implemented."""
        return decode_points(self.model_id, raw)
