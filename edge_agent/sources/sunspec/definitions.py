"""Point tables from the official SunSpec model definitions that pysunspec2 ships (model_<id>.json).

Only a model's top-level points are tabled: they sit at fixed offsets. Repeating groups
(curves of models 705-712, ports of 714, ...) follow them and are skipped; a model's
length field still covers them, so they are read with the model but not decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sunspec2
from sunspec2 import mdef

from edge_agent.sources.sunspec.names import ENERGY_UNITS, IDENTITY, metric_name, unit_and_exponent

MODELS_DIR = Path(sunspec2.__file__).parent / "models" / "json"

COMMON = 1
METERS = frozenset({201, 202, 203, 204})
INVERTERS = frozenset({101, 102, 103, 111, 112, 113})
# Read when a device's map has them; the other 7xx (ratings, settings, curves) only when listed in ``models:``.
DEFAULT_MODELS = METERS | INVERTERS | frozenset({701, 713, 802})
DER_MODELS = frozenset(range(701, 800))


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    offset: int            # registers after the model's [ID][L] header
    type: str
    size: int
    sf: str | int | None = None     # name of the sunssf point, or a fixed exponent
    exp: int = 0                    # extra power of ten from SunSpec units to ours (Wh -> kWh: -3)
    metric: str | None = None
    unit: str = ""
    symbols: tuple[tuple[int, str], ...] = ()
    counter: bool = False

    @property
    def labels(self) -> dict[int, str]:
        return dict(self.symbols)


@dataclass(frozen=True, slots=True)
class ModelTable:
    id: int
    name: str
    label: str
    length: int            # registers of the top-level points (the model's L may be larger)
    points: tuple[Point, ...]
    scale_factors: tuple[Point, ...]
    reported: tuple[Point, ...]


def available_models() -> frozenset[int]:
    return frozenset(mdef.model_filename_to_id(p.name) for p in MODELS_DIR.glob("model_*.json"))


def supported_models() -> frozenset[int]:
    """Model ids a device config may list under ``models:``."""
    return (DEFAULT_MODELS | DER_MODELS) & available_models()


def _size(point: dict) -> int:
    size = mdef.point_type_info[point["type"]]["len"]
    return int(point.get("size") or 0) if size is None else size


def _labels(point: dict) -> tuple[tuple[int, str], ...]:
    """An enumeration's value -> name (bitfields' symbols name bits, not values: not used)."""
    if not point["type"].startswith("enum"):
        return ()
    return tuple((int(s["value"]), s["name"]) for s in point.get("symbols", ()))


def _is_counter(point: dict) -> bool:
    if point["type"].startswith("acc") or point["name"] == "WH":     # WH: an inverter's lifetime energy
        return True
    return point["name"].startswith("Tot") and point.get("units") in ENERGY_UNITS


@lru_cache(maxsize=None)
def model_table(model_id: int) -> ModelTable:
    """The table of one model, from ``model_<id>.json``; KeyError if pysunspec2 has no such model."""
    path = MODELS_DIR / mdef.to_json_filename(model_id)
    if not path.exists():
        raise KeyError(f"SunSpec model {model_id} is not among pysunspec2's definitions")
    group = mdef.from_json_file(path)["group"]
    points, offset = [], 0
    for row in group["points"]:
        size = _size(row)
        if row["name"] in ("ID", "L"):
            continue
        if row["type"] == "sunssf" or row["type"] == "pad":
            metric = None
        elif model_id == COMMON:
            metric = IDENTITY.get(row["name"])
        else:
            metric = metric_name(model_id, row["name"])
        unit, exp = unit_and_exponent(row["name"], row.get("units"))
        points.append(Point(
            name=row["name"], offset=offset, type=row["type"], size=size, sf=row.get("sf"), exp=exp, metric=metric,
            unit=unit, symbols=_labels(row),
            counter=_is_counter(row)))
        offset += size
    names = {p.name for p in points}
    for p in points:
        if isinstance(p.sf, str) and p.sf not in names:
            raise ValueError(f"{path}: point {p.name}: scale factor {p.sf!r} is not a top-level point")
    return ModelTable(id=model_id, name=group["name"], label=group.get("label", group["name"]), length=offset,
                      points=tuple(points), scale_factors=tuple(p for p in points if p.type == "sunssf"),
                      reported=tuple(p for p in points if p.metric))
