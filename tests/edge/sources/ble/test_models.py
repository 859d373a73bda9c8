"""BLE model overrides are data: the shipped ones load, a site's folder comes first, matching by
advertised name picks the most specific model, and a mistake names the file, the key and what was
expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.sources.ble.models import BLE_PROFILE_DIR, FloatFormat, ModelError, all_models, generic_model, \
    load_model, load_model_file, match_model
from hinode.vitals import Category

SHIPPED = sorted(BLE_PROFILE_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_model_loads_and_names_its_source(path):
    model = load_model_file(path)
    assert model.model == path.stem
    assert len(model.source) > 10 and model.description


@pytest.mark.parametrize("category", list(Category))
def test_a_generic_model_for_every_category_follows_the_standard(category):
    model = generic_model(category)
    assert model.category is category
    assert model.match is None and model.float_format is FloatFormat.IEEE11073
    assert not model.pairing.required and model.clock.set_time


def test_the_quirky_models_are_shipped():
    thermometer = load_model("generic-ieee754-thermometer")
    assert thermometer.float_format is FloatFormat.IEEE754 and "bluez_inc#43" in thermometer.source
    cuff = load_model("passkey-cuff")
    assert cuff.category is Category.BLOOD_PRESSURE and cuff.pairing.required and cuff.pairing.passkey == "000000"


def test_matching_by_advertised_name():
    assert match_model("TEMP-754-01").model == "generic-ieee754-thermometer"
    assert match_model("BP-Pass-07").model == "passkey-cuff"
    assert match_model("BP-Cuff-01") is None
    assert match_model("") is None


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


CUFF = """model: {model}
description: a site's cuff
source: "the vendor's manual, page 12"
category: blood_pressure
{extra}
"""


def test_a_site_folder_comes_before_the_shipped_one(tmp_path):
    _write(tmp_path, "passkey-cuff",
           CUFF.format(model="passkey-cuff", extra="pairing: {required: true, passkey: '123456'}"))
    assert load_model("passkey-cuff", [tmp_path]).pairing.passkey == "123456"
    assert load_model("passkey-cuff").pairing.passkey == "000000"
    models = {m.model: m for m in all_models([tmp_path])}
    assert models["passkey-cuff"].pairing.passkey == "123456"
    assert len([m for m in all_models([tmp_path]) if m.model == "passkey-cuff"]) == 1


def test_a_site_ble_subfolder_is_searched_and_meter_profiles_beside_it_are_not_models(tmp_path):
    _write(tmp_path / "ble", "acme-cuff", CUFF.format(model="acme-cuff", extra="match: {name: 'ACME BP'}"))
    _write(tmp_path, "acme-meter",
           "id: acme-meter\nprotocol: modbus\nvendor: ACME\nmodel: M\nsource: x\nregisters: []\n")
    assert load_model("acme-cuff", [tmp_path]).match.name == "ACME BP"
    assert "acme-meter" not in {m.model for m in all_models([tmp_path])}
    assert match_model("ACME BP", [tmp_path]).model == "acme-cuff"
    assert match_model("ACME BP 2", [tmp_path]) is None          # an exact name is exact


def test_the_most_specific_match_wins(tmp_path):
    _write(tmp_path, "short", CUFF.format(model="short", extra="match: {name_prefix: 'BP-'}"))
    _write(tmp_path, "long", CUFF.format(model="long", extra="match: {name_prefix: 'BP-Cuff'}"))
    _write(tmp_path, "exact", CUFF.format(model="exact", extra="match: {name: 'BP-Cuff-01'}"))
    assert match_model("BP-Cuff-01", [tmp_path]).model == "exact"
    assert match_model("BP-Cuff-02", [tmp_path]).model == "long"
    assert match_model("BP-Other", [tmp_path]).model == "short"


def test_a_model_given_by_path(tmp_path):
    path = _write(tmp_path, "by-path", CUFF.format(model="by-path", extra=""))
    assert load_model(str(path)).model == "by-path"


@pytest.mark.parametrize("extra,key,expected", [
    ("colour: red", "colour", "Extra inputs are not permitted"),
    ("pairing: {required: true, passkey: '12345'}", "pairing.passkey", "should match pattern"),
    ("float_format: ieee754", "(top level)", "only temperature measurements"),
    ("float_format: ieee999", "float_format", "'ieee11073' or 'ieee754'"),
    ("match: {name: a, name_prefix: b}", "match", "exactly one of 'name' or 'name_prefix'"),
    ("clock: {set_time: maybe}", "clock.set_time", "valid boolean"),
    ("bleak: {adapter: hci1}", "bleak.adapter", "Extra inputs are not permitted"),
])
def test_errors_name_the_file_the_key_and_the_expectation(tmp_path, extra, key, expected):
    path = _write(tmp_path, "bad-cuff", CUFF.format(model="bad-cuff", extra=extra))
    with pytest.raises(ModelError) as caught:
        load_model("bad-cuff", [tmp_path])
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: ") and expected in message, message


def test_file_level_errors(tmp_path):
    _write(tmp_path, "renamed", CUFF.format(model="other-name", extra=""))
    with pytest.raises(ModelError, match=r"renamed\.yaml: model: expected the file name"):
        load_model("renamed", [tmp_path])
    _write(tmp_path, "broken", "model: [unclosed\n")
    with pytest.raises(ModelError, match=r"broken\.yaml: not valid YAML"):
        load_model("broken", [tmp_path])
    _write(tmp_path, "listy", "- a\n- b\n")
    with pytest.raises(ModelError, match=r"listy\.yaml: \(top level\): expected a mapping"):
        load_model("listy", [tmp_path])
    _write(tmp_path, "wrong-category", CUFF.format(model="wrong-category", extra="").replace(
        "blood_pressure", "cholesterol"))
    with pytest.raises(ModelError, match=r"wrong-category\.yaml: category: Input should be"):
        load_model("wrong-category", [tmp_path])
    with pytest.raises(ModelError, match=r"'nowhere' not found in .*device_profiles/ble"):
        load_model("nowhere", [tmp_path])
