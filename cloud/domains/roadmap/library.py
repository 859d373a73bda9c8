"""The measures library (measures.yaml): its pydantic schema, loading, and a measure's parameters
with a request's overrides applied (each override checked against the library's type)."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LIBRARY_FILE = Path(__file__).with_name("measures.yaml")
MEASURE_IDS = ("led", "compressor", "motors", "pv", "renewable_menu", "ev_commuting", "heat_pump")
ParamValue = bool | float | str


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: ParamValue
    unit: str
    source: str = Field(min_length=1, description="the published source, or why this stand-in")
    assumption: bool = Field(description="true: a stand-in to be replaced by the site's own value")


class PricedParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = Field(ge=0)
    source: str = Field(min_length=1)


class Measure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    quantity: str | None = Field(description="the parameter counting the units the investment is per (null: none)")
    params: dict[str, Param]

    @model_validator(mode="after")
    def _investment_params(self) -> Measure:
        for key in ("yen_per_unit", "lifetime_years") + ((self.quantity,) if self.quantity else ()):
            if key not in self.params:
                raise ValueError(f"params.{key} is missing (every measure states yen_per_unit, lifetime_years "
                                 "and its quantity parameter)")
        return self


class Library(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    updated: str
    electricity_price_yen_per_kwh: PricedParam
    measures: dict[str, Measure]

    @model_validator(mode="after")
    def _known_measures(self) -> Library:
        unknown = sorted(set(self.measures) - set(MEASURE_IDS))
        missing = sorted(set(MEASURE_IDS) - set(self.measures))
        if unknown or missing:
            raise ValueError(f"measures must be exactly {', '.join(MEASURE_IDS)} (unknown: {unknown}, "
                             f"missing: {missing}): each id has its computation in service.py")
        return self


class LibraryError(ValueError):
    """The library file is malformed; the message names the file and the key."""


@functools.lru_cache(maxsize=4)
def load_library(path: Path = LIBRARY_FILE) -> Library:
    try:
        return Library.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        lines = [f"{path.name}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise LibraryError("\n".join(lines)) from None


def _coerce(measure_id: str, key: str, default: ParamValue, given: object) -> ParamValue:
    where = f"{measure_id}.params.{key}"
    if isinstance(default, bool):
        if not isinstance(given, bool):
            raise ValueError(f"{where}: expected true or false, got {given!r}")
        return given
    if isinstance(default, str):
        if not isinstance(given, str) or not given:
            raise ValueError(f"{where}: expected a text value like {default!r}, got {given!r}")
        return given
    if isinstance(given, bool) or not isinstance(given, (int, float)):
        raise ValueError(f"{where}: expected a number, got {given!r}")
    if given < 0:
        raise ValueError(f"{where}: expected a number >= 0, got {given!r}")
    return float(given)


def measure_params(library: Library, measure_id: str, overrides: dict[str, object] | None = None) -> dict:
    """The library's values of ``measure_id`` with ``overrides``; ValueError naming an unknown id/key."""
    measure = library.measures.get(measure_id)
    if measure is None:
        raise ValueError(f"unknown measure {measure_id!r} (known: {', '.join(library.measures)})")
    values: dict[str, ParamValue] = {key: p.value for key, p in measure.params.items()}
    for key, given in (overrides or {}).items():
        if key not in values:
            raise ValueError(f"{measure_id}.params.{key}: no such parameter (known: {', '.join(values)})")
        values[key] = _coerce(measure_id, key, values[key], given)
    for key in ("share", "fraction", "ratio", "factor", "efficiency"):
        for name, value in values.items():
            if key in name and isinstance(value, float) and value > 1:
                raise ValueError(f"{measure_id}.params.{name}: expected a fraction between 0 and 1, got {value}")
    return values
