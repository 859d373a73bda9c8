"""SunSpec map of one simulated meter: "SunS", model 1 (Common), model 203, end model.

Model 203 is the wye-connected three-phase meter with int16 values and ``sunssf``
scale factors (sunspec/models ``model_203.json``, L = 105). Like many real meters this
one leaves some points "not implemented": reactive power (int16 0x8000, and its scale
factor), apparent/reactive energies and per-phase real energies (acc32 0). A client has
to filter them. Power factor is in percent, as model 203 defines it (units ``Pct``).
"""

from __future__ import annotations


from simulators.derived import line_to_line
from simulators.load import meter_traits
from simulators.modbus.layout import RegisterTable

SUNS = (0x5375, 0x6E53)            # "SunS"
END_MODEL = (0xFFFF, 0)
SUNSPEC_BASES = (40000, 0, 50000)
NOT_IMPLEMENTED = {"int16": 0x8000, "sunssf": 0x8000, "pad": 0x8000, "uint16": 0xFFFF,
                   "acc32": 0, "bitfield32": 0xFFFFFFFF}

COMMON_POINTS = (("Mn", "string", 16), ("Md", "string", 16), ("Opt", "string", 8), ("Vr", "string", 8),
                 ("SN", "string", 16), ("DA", "uint16", 1), ("Pad", "pad", 1))


def _group(names: tuple[str, ...], sf: str, kind: str = "int16", size: int = 1) -> tuple:
    return tuple((name, kind, size) for name in names) + ((sf, "sunssf", 1),)


_PHASES = ("", "phA", "phB", "phC")
METER_203_POINTS = (
    _group(("A", "AphA", "AphB", "AphC"), "A_SF")
    + _group(("PhV", "PhVphA", "PhVphB", "PhVphC", "PPV", "PhVphAB", "PhVphBC", "PhVphCA"), "V_SF")
    + _group(("Hz",), "Hz_SF")
    + _group(tuple("W" + p for p in _PHASES), "W_SF")
    + _group(tuple("VA" + p for p in _PHASES), "VA_SF")
    + _group(tuple("VAR" + p for p in _PHASES), "VAR_SF")
    + _group(tuple("PF" + p for p in _PHASES), "PF_SF")
    + tuple((f"TotWh{d}{p}", "acc32", 2) for d in ("Exp", "Imp") for p in ("", "PhA", "PhB", "PhC")) + (("TotWh_SF", "sunssf", 1),)
    + tuple((f"TotVAh{d}{p}", "acc32", 2) for d in ("Exp", "Imp") for p in ("", "PhA", "PhB", "PhC")) + (("TotVAh_SF", "sunssf", 1),)
    + tuple((f"TotVArh{q}{p}", "acc32", 2) for q in ("ImpQ1", "ImpQ2", "ExpQ3", "ExpQ4") for p in ("", "PhA", "PhB", "PhC"))
    + (("TotVArh_SF", "sunssf", 1), ("Evt", "bitfield32", 2))
)
COMMON_LENGTH = sum(size for _, _, size in COMMON_POINTS)           # 66
METER_203_LENGTH = sum(size for _, _, size in METER_203_POINTS)     # 105
assert COMMON_LENGTH == 66 and METER_203_LENGTH == 105


def _scale_factor_of_points(points: tuple) -> dict[str, str]:
    """In model 203 every scaled point is followed by its group's sunssf point."""
    owner: dict[str, str] = {}
    pending: list[str] = []
    for name, kind, _size in points:
        if kind == "sunssf":
            owner.update((p, name) for p in pending)
            pending = []
        else:
            pending.append(name)
    return owner


POINT_SCALE_FACTOR = _scale_factor_of_points(METER_203_POINTS)


def _encode_point(kind: str, size: int, value) -> list[int]:
    if value is None:
        value = NOT_IMPLEMENTED[kind]
        return [value] if size == 1 else [value >> 16 & 0xFFFF, value & 0xFFFF]
    if kind == "string":
        data = str(value).encode("ascii")[: 2 * size].ljust(2 * size, b"\x00")
        return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]
    value = int(value)
    if size == 1:
        return [value & 0xFFFF]
    return [value >> 16 & 0xFFFF, value & 0xFFFF]


def encode_model(model_id: int, points: tuple, raw: dict[str, object]) -> list[int]:
    """``[ID, L, point registers...]`` with missing points set to "not implemented"."""
    words: list[int] = []
    for name, kind, size in points:
        words += _encode_point(kind, size, raw.get(name))
    return [model_id, len(words), *words]


def scale_factors(rated_kw: float) -> dict[str, int]:
    """Static scale factors sized so the meter's largest values fit in int16."""
    w_sf = 0 if rated_kw * 1000 * 1.2 < 32767 else 1
    return {"A_SF": -1, "V_SF": -1, "Hz_SF": -2, "W_SF": w_sf, "VA_SF": w_sf, "PF_SF": -1, "TotWh_SF": 1}


def apply_scale_factor(raw: int, sf: int) -> float:
    """``raw * 10**sf`` without binary noise such as 228.10000000000002."""
    return float(raw * 10 ** sf) if sf >= 0 else raw / 10 ** -sf


class SunSpecMeter:
    """Encodes one unit's SunSpec block and decodes what a client would read back."""

    def __init__(self, unit: int, base: int = 40000, seed: int = 0) -> None:
        if base not in SUNSPEC_BASES:
            raise ValueError(f"sunspec_base must be one of {SUNSPEC_BASES}, got {base}")
        self.unit, self.base = unit, base
        self.sf = scale_factors(meter_traits(unit, seed).rated_kw)
        self.common = encode_model(1, COMMON_POINTS, {
            "Mn": "hinode", "Md": "SIM-METER-3P", "Opt": "sunspec", "Vr": "1.0.0",
            "SN": f"HSM-{unit:05d}", "DA": unit, "Pad": None})

    def _q(self, value: float, sf: str) -> int:
        return round(value / 10 ** self.sf[sf])

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
        raw["VA"] = self._q(v["power_total"] / pf, "VA_SF")
        raw["PF"] = self._q(pf * 100, "PF_SF")
        for i, phase in enumerate(("phA", "phB", "phC")):
            raw["A" + phase] = self._q(amps[i], "A_SF")
            raw["PhV" + phase] = self._q(volts[i], "V_SF")
            raw["W" + phase] = self._q(watts[i], "W_SF")
            raw["VA" + phase] = self._q(volts[i] * amps[i], "VA_SF")
            raw["PF" + phase] = self._q(pf * 100, "PF_SF")
        raw["PhVphAB"], raw["PhVphBC"], raw["PhVphCA"] = (self._q(x, "V_SF") for x in lines)
        raw["TotWhImp"] = self._q(v["energy_import"] * 1000, "TotWh_SF") & 0xFFFFFFFF
        raw["Evt"] = 0
        return raw

    def build(self, v: dict[str, float]) -> tuple[RegisterTable, dict[str, float], dict[str, float | None]]:
        """(holding table from ``base``, hinode metrics as a client decodes them, model 203 points)."""
        raw = self.raw_points(v)
        words = [*SUNS, *self.common, *encode_model(203, METER_203_POINTS, raw), *END_MODEL]
        points = self.decode_points(raw)
        metrics = {
            **{f"voltage_l{n}": points[f"PhVph{p}"] for n, p in zip((1, 2, 3), "ABC")},
            **{f"current_l{n}": points[f"Aph{p}"] for n, p in zip((1, 2, 3), "ABC")},
            **{f"power_l{n}": points[f"Wph{p}"] for n, p in zip((1, 2, 3), "ABC")},
            "power_total": points["W"], "power_factor": points["PF"] / 100,
            "frequency": points["Hz"], "energy_import": points["TotWhImp"] / 1000,
        }
        return RegisterTable(self.base, words), metrics, points

    def decode_points(self, raw: dict[str, object]) -> dict[str, float | None]:
        """Scaled model 203 points; ``None`` where the point is not implemented."""
        out: dict[str, float | None] = {}
        for name, kind, _size in METER_203_POINTS:
            if kind == "sunssf":
                continue
            value = raw.get(name)
            if value is None or (kind == "acc32" and value == 0):
                out[name] = None
                continue
            sf = POINT_SCALE_FACTOR.get(name)
            out[name] = apply_scale_factor(int(value), self.sf[sf]) if sf else float(value)
        return out
