"""Emission factors: the versioned YAML files in ``factors/`` (validated on load) and the lookups
other domains use (``load_factors``, ``FactorSet.electricity/location/fuel``). See README.md."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FACTORS_DIR = Path(__file__).with_name("factors")
CO2_PER_C = 44 / 12
DEFAULT_RETAILER = "default"
LOCATION = "location"


class FactorFileError(ValueError):
    """A factor file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ElectricityEntry(_Strict):
    results_fy: int = Field(ge=2000, le=2100, description="the fiscal year whose results the values describe")
    basic_kg_per_kwh: float | None = Field(default=None, ge=0, le=2)
    adjusted_kg_per_kwh: float | None = Field(default=None, ge=0, le=2)
    source: str = Field(min_length=1)
    date: str | None = None
    note: str = ""


class RetailerEntry(_Strict):
    name: str
    menus: dict[str, list[ElectricityEntry]]


class LocationEntry(_Strict):
    results_fy: int = Field(ge=2000, le=2100)
    kg_per_kwh: float | None = Field(default=None, ge=0, le=2)
    source: str = Field(min_length=1)
    date: str | None = None
    note: str = ""


class ElectricityFile(_Strict):
    version: str
    published: str | None = None
    retrieved: str
    retailers: dict[str, RetailerEntry]
    location: list[LocationEntry] = []


class FuelEntry(_Strict):
    name: str
    unit: str
    gj_per_unit: float = Field(gt=0)
    tc_per_gj: float = Field(gt=0)
    source: str = Field(min_length=1)
    note: str = ""


class FuelFile(_Strict):
    version: str
    published: str | None = None
    retrieved: str
    fuels: dict[str, FuelEntry]


@dataclass(frozen=True)
class ElectricityFactor:
    retailer: str
    menu: str
    fiscal_year: int            # the fiscal year of the emissions this factor is used for
    basic_kg_per_kwh: float | None
    adjusted_kg_per_kwh: float | None
    source: str
    note: str


@dataclass(frozen=True)
class FuelFactor:
    fuel_id: str
    name: str
    unit: str
    gj_per_unit: float
    tc_per_gj: float
    kg_co2_per_unit: float
    source: str
    note: str = ""


# Units a bill or delivery note may use for a fuel, and their factor to the fuel's unit.
UNIT_ALIASES: dict[str, dict[str, float]] = {
    "千m3": {"千m3": 1.0, "千m³": 1.0, "thousand_m3": 1.0, "m3": 0.001, "m³": 0.001},
    "kL": {"kL": 1.0, "kl": 1.0, "L": 0.001, "l": 0.001, "リットル": 0.001},
    "t": {"t": 1.0, "kg": 0.001},
}


def _load(path: Path, model: type[BaseModel]):
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FactorFileError(f"{path}: cannot read: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']} (got {err.get('input')!r})"
                 for err in exc.errors()]
        raise FactorFileError("\n".join(lines)) from None


class FactorSet:
    """The electricity and fuel factors of one directory of factor files."""

    def __init__(self, electricity: ElectricityFile, fuels: FuelFile, directory: Path):
        self.directory = directory
        self.electricity_file = electricity
        self.fuel_file = fuels
        if DEFAULT_RETAILER not in electricity.retailers:
            raise FactorFileError(f"{directory / 'electricity.yaml'}: retailers.{DEFAULT_RETAILER}: missing "
                                  "(the national substitute value is the fallback for unknown retailers)")

    @property
    def retailers(self) -> dict[str, RetailerEntry]:
        return self.electricity_file.retailers

    def electricity(self, retailer: str, menu: str, fiscal_year: int) -> ElectricityFactor:
        """The factor for emissions of ``fiscal_year`` (results of the year before); unknown retailer or
        menu -> the national default; a year not published yet -> the latest earlier one (said in note)."""
        notes = []
        entry = self.retailers.get(retailer)
        if entry is None:
            notes.append(f"retailer {retailer!r} is not in the factor file; national default used")
            retailer, entry = DEFAULT_RETAILER, self.retailers[DEFAULT_RETAILER]
        rows = entry.menus.get(menu)
        if rows is None:
            fallback = "standard" if "standard" in entry.menus else next(iter(entry.menus), "")
            notes.append(f"menu {menu!r} of {retailer!r} is not in the factor file; menu {fallback!r} used")
            menu, rows = fallback, entry.menus.get(fallback, [])
        chosen = _for_year(rows, fiscal_year)
        if chosen is None:
            notes.append(f"no factor of {retailer!r} published for FY{fiscal_year} or earlier")
            return ElectricityFactor(retailer, menu, fiscal_year, None, None, "", "; ".join(notes))
        if chosen.results_fy != fiscal_year - 1:
            notes.append(f"FY{fiscal_year - 1} results not published in our file; FY{chosen.results_fy} results used")
        if chosen.note:
            notes.append(chosen.note)
        return ElectricityFactor(retailer, menu, fiscal_year, chosen.basic_kg_per_kwh, chosen.adjusted_kg_per_kwh,
                                 chosen.source, "; ".join(notes))

    def location(self, fiscal_year: int) -> ElectricityFactor:
        """National average for location-based Scope 2 (values None when not shipped)."""
        chosen = _for_year(self.electricity_file.location, fiscal_year)
        if chosen is None:
            return ElectricityFactor(LOCATION, "national_average", fiscal_year, None, None, "",
                                     f"no national average shipped for FY{fiscal_year}")
        notes = [] if chosen.results_fy == fiscal_year - 1 else [f"FY{chosen.results_fy} results used"]
        if chosen.note:
            notes.append(chosen.note)
        return ElectricityFactor(LOCATION, "national_average", fiscal_year, chosen.kg_per_kwh, chosen.kg_per_kwh,
                                 chosen.source, "; ".join(notes))

    def fuel(self, fuel_id: str) -> FuelFactor:
        """KeyError naming the known fuels when ``fuel_id`` is not one."""
        entry = self.fuel_file.fuels.get(fuel_id)
        if entry is None:
            raise KeyError(f"unknown fuel {fuel_id!r} (known: {', '.join(sorted(self.fuel_file.fuels))})")
        return FuelFactor(fuel_id, entry.name, entry.unit, entry.gj_per_unit, entry.tc_per_gj,
                          entry.gj_per_unit * entry.tc_per_gj * CO2_PER_C * 1000, entry.source, entry.note)

    def fuel_ids(self) -> list[str]:
        return sorted(self.fuel_file.fuels)


def _for_year(rows, fiscal_year: int):
    """The entry with results of ``fiscal_year - 1``, else the latest earlier one, else None."""
    earlier = [row for row in rows if row.results_fy <= fiscal_year - 1]
    return max(earlier, key=lambda row: row.results_fy) if earlier else None


def to_fuel_unit(factor: FuelFactor, amount: float, unit: str) -> float:
    """``amount`` in ``unit`` converted to the fuel's unit; ValueError naming the accepted units."""
    scales = UNIT_ALIASES.get(factor.unit, {factor.unit: 1.0})
    scale = scales.get(unit.strip())
    if scale is None:
        raise ValueError(f"unit {unit!r} does not fit fuel {factor.fuel_id!r} (expected one of {', '.join(scales)})")
    return amount * scale


@functools.lru_cache(maxsize=8)
def _cached(directory: Path) -> FactorSet:
    return FactorSet(_load(directory / "electricity.yaml", ElectricityFile), _load(directory / "fuels.yaml", FuelFile),
                     directory)


def load_factors(directory: Path | None = None) -> FactorSet:
    """The factor set of ``directory`` (default: the shipped files), cached; FactorFileError naming file and key."""
    return _cached(Path(directory or FACTORS_DIR).resolve())
