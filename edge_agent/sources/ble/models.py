"""BLE device model overrides: a model's quirks as data (``device_profiles/ble/*.yaml``).

A device config may name a model (``model: generic-ieee754-thermometer``); otherwise the session
matches the advertised name against the models' ``match`` rules, and falls back to the generic
model of the device's category. A site's own ``profile_dirs`` are searched before the shipped
folder (a file there with a shipped model's id replaces it), exactly as for meter profiles.
Errors name the file, the key and what was expected, e.g.
``my-cuff.yaml: pairing.passkey: String should match pattern '^[0-9]{6}$' (got '12345')``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device_profiles.schema import PROFILE_DIR, PROFILE_ID, format_validation_error, read_yaml_file
from hinode.vitals import Category

BLE_PROFILE_DIR = PROFILE_DIR / "ble"


class ModelError(ValueError):
    """A model override that failed to load; the message names file, key and expectation."""


class FloatFormat(StrEnum):
    IEEE11073 = "ieee11073"     # the standard: FLOAT = 8-bit exponent, 24-bit mantissa
    IEEE754 = "ieee754"         # FLOAT fields read as little-endian IEEE-754 float32 (vendor deviation)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    name: str | None = Field(default=None, min_length=1, description="the advertised name, exactly")
    name_prefix: str | None = Field(default=None, min_length=1, description="the advertised name starts with it")

    @model_validator(mode="after")
    def _one_rule(self) -> "Match":
        if (self.name is None) == (self.name_prefix is None):
            raise ValueError("give exactly one of 'name' or 'name_prefix'")
        return self

    def score(self, advert_name: str) -> int:
        """0 = no match; an exact name beats any prefix, a longer prefix beats a shorter one."""
        if self.name is not None:
            return 10_000 if advert_name == self.name else 0
        return len(self.name_prefix) if advert_name.startswith(self.name_prefix) else 0


class Pairing(_Strict):
    required: bool = Field(default=False, description="bond before subscribing (the device refuses otherwise)")
    passkey: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = Field(
        default=None, description="six digits the device expects; a device's config may override it")


class Clock(_Strict):
    set_time: bool = Field(default=True, description="write Current Time (0x2A2B) on connect when offered")
    trust_device_time: bool = Field(default=False, description="use the device's time stamps even when the "
                                                               "gateway did not set the clock this connection")


class BleakOptions(_Strict):
    use_start_notify: bool = Field(default=False, description="BlueZ StartNotify instead of AcquireNotify")


class ModelOverride(_Strict):
    model: Annotated[str, Field(pattern=PROFILE_ID)] = Field(description="unique id = the file name without .yaml")
    description: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the quirk is documented (issue, manual, spec)")
    category: Category
    match: Match | None = None
    float_format: FloatFormat = FloatFormat.IEEE11073
    pairing: Pairing = Field(default_factory=Pairing)
    clock: Clock = Field(default_factory=Clock)
    bleak: BleakOptions = Field(default_factory=BleakOptions)

    @model_validator(mode="after")
    def _float_format_where_floats_are(self) -> "ModelOverride":
        if self.float_format is FloatFormat.IEEE754 and self.category is not Category.TEMPERATURE:
            raise ValueError(f"float_format ieee754 only changes FLOAT fields, which only temperature measurements "
                             f"have (category is {self.category.value})")
        return self


def parse_model(data: object, path: Path | str = "<model>") -> ModelOverride:
    if not isinstance(data, dict):
        raise ModelError(f"{path}: (top level): expected a mapping with model, category, ... "
                         f"(got {type(data).__name__})")
    try:
        return ModelOverride.model_validate(data)
    except ValidationError as exc:
        raise ModelError(format_validation_error(path, exc)) from None


_cache: dict[tuple[str, int], ModelOverride] = {}


def load_model_file(path: Path | str) -> ModelOverride:
    path = Path(path)
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None
    if key in _cache:
        return _cache[key]
    model = parse_model(read_yaml_file(path, ModelError), path)
    if model.model != path.stem:
        raise ModelError(f"{path}: model: expected the file name without .yaml ({path.stem!r}) (got {model.model!r})")
    _cache[key] = model
    return model


def _search_dirs(profile_dirs) -> list[Path]:
    """Each site folder and its ``ble/`` subfolder, then the shipped folder."""
    dirs: list[Path] = []
    for directory in profile_dirs or ():
        dirs += [Path(directory) / "ble", Path(directory)]
    return [*dirs, BLE_PROFILE_DIR]


def _model_files(profile_dirs) -> list[Path]:
    return [p for d in _search_dirs(profile_dirs) if d.is_dir() for p in sorted(d.glob("*.yaml"))
            if _looks_like_ble_model(p)]


def _looks_like_ble_model(path: Path) -> bool:
    """Site folders also hold meter profiles: only files with a top-level ``model:`` and ``category:``
    key and no ``protocol:`` are BLE models (checked without validating)."""
    if path.parent.resolve() == BLE_PROFILE_DIR.resolve() or path.parent.name == "ble":
        return True
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "category" in data and "model" in data and "protocol" not in data


def load_model(name: str, profile_dirs=()) -> ModelOverride:
    """A model by id (site folders first, then the shipped ones) or by the path of its YAML file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return load_model_file(candidate)
    for directory in _search_dirs(profile_dirs):
        path = directory / f"{name}.yaml"
        if path.is_file():
            return load_model_file(path)
    raise ModelError(f"BLE model {name!r} not found in {[str(d) for d in _search_dirs(profile_dirs)]}")


def all_models(profile_dirs=()) -> list[ModelOverride]:
    """Every model, a site's version of an id replacing the shipped one. Raises ModelError on a bad file."""
    models: dict[str, ModelOverride] = {}
    for path in _model_files(profile_dirs):
        model = load_model_file(path)
        models.setdefault(model.model, model)
    return list(models.values())


def match_model(advert_name: str, profile_dirs=()) -> ModelOverride | None:
    """The model whose ``match`` fits the advertised name best (exact name, then longest prefix), or None."""
    best, best_score = None, 0
    for model in all_models(profile_dirs):
        if model.match is not None and (score := model.match.score(advert_name)) > best_score:
            best, best_score = model, score
    return best


def generic_model(category: Category | str) -> ModelOverride:
    """The shipped standard-conformant model of a category (``generic-<category with dashes>``)."""
    category = Category(category)
    return load_model(f"generic-{category.value.replace('_', '-')}", ())


def main(argv: list[str] | None = None) -> int:
    """``python -m edge_agent.sources.ble.models [FILE ...]``: validate model files (default: the shipped ones)."""
    import sys

    paths = (argv if argv is not None else sys.argv[1:]) or [str(p) for p in sorted(BLE_PROFILE_DIR.glob("*.yaml"))]
    failed = 0
    for path in paths:
        try:
            model = load_model_file(path)
            print(f"{path}: OK: {model.model} ({model.category.value}, float {model.float_format.value}, "
                  f"pairing {'required' if model.pairing.required else 'not required'})")
        except ModelError as exc:
            print(exc, file=sys.stderr)
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
