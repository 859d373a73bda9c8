"""The ``ble`` source's config section: a mistake is a config error naming the file, the key and
what was expected, found before any radio is touched (``python -m edge_agent check-config``)."""

import subprocess
import sys

import pytest
import yaml

from edge_agent.config import ConfigError, load_site_config
from hinode.security.api_secrets import hash_password

PIN_HASH = hash_password("1234")


def site(tmp_path, **overrides) -> dict:
    source = {"type": "ble", "name": "visit-kit", "kit": "kit-01", "stack": "bumble",
              "hci": "tcp-client:127.0.0.1:1", "timezone": "Asia/Tokyo",
              "devices": [{"id": "bp-cuff-1", "category": "blood_pressure", "address": "f0:00:00:00:00:01"},
                          {"id": "thermo-1", "category": "temperature", "name": "TEMP-1"}],
              "page": {"listen": "127.0.0.1:0", "nurses": [{"id": "n-01", "name": "Sato", "pin_hash": PIN_HASH}]}}
    source.update(overrides)
    return {"site": "visiting-nurses", "agent": "kit-01-gw", "sources": [source]}


def load(tmp_path, data: dict):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return load_site_config(path)


def error_of(tmp_path, data: dict) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, data)
    return str(raised.value)


def test_a_good_section_loads_with_normalized_addresses_and_defaults(tmp_path):
    config = load(tmp_path, site(tmp_path)).source_configs[0]
    assert config.devices[0].address == "F0:00:00:00:00:01"
    assert config.devices[1].name == "TEMP-1" and config.devices[1].address is None
    assert config.zone.key == "Asia/Tokyo"
    assert config.devices[0].matches("f0:00:00:00:00:01", "anything")
    assert not config.devices[0].matches("F0:00:00:00:00:02", "BP-Cuff")
    assert config.devices[1].matches("AA:AA:AA:AA:AA:AA", "TEMP-1")
    assert not config.devices[1].matches("AA:AA:AA:AA:AA:AA", "TEMP-10")


def device(**fields) -> dict:
    return {"id": "dev-1", "category": "blood_pressure", **fields}


@pytest.mark.parametrize("overrides, expected", [
    ({"devices": [device()]},
     "sources[0].devices[0]: give 'address' or 'name' (or both): only listed devices are ever connected"),
    ({"devices": [device(category="blood_sugar", name="X")]},
     "sources[0].devices[0].category: Input should be 'blood_pressure', 'spo2', 'temperature', 'weight', "
     "'glucose' or 'heart_rate'"),
    ({"devices": [device(address="F0:00:00:00:01")]},
     "sources[0].devices[0].address: expected a Bluetooth address of six hex pairs"),
    ({"devices": [device(name="X", passkey="12345")]},
     "sources[0].devices[0].passkey: expected six digits"),
    ({"devices": [device(name="X", passkey_file="missing.txt")]},
     "sources[0].devices[0].passkey_file: expected a readable file holding the six-digit passkey"),
    ({"devices": [device(name="X"), device(id="dev-2", name="X")]},
     "devices 'dev-1' and 'dev-2' both match 'name X'"),
    ({"timezone": "Asia/Tokio"}, "sources[0].timezone: expected an IANA time zone"),
    ({"hci": None}, "stack 'bumble' needs 'hci'"),
    ({"stack": "bleak"}, "'hci' is a bumble transport"),
    ({"stack": "bluez"}, "sources[0].stack: Input should be 'bumble' or 'bleak'"),
    ({"scan_interval": 3}, "sources[0].scan_interval: Extra inputs are not permitted"),
    ({"page": {"listen": "8088"}}, "sources[0].page.listen"),
])
def test_a_mistake_names_the_file_the_key_and_what_was_expected(tmp_path, overrides, expected):
    message = error_of(tmp_path, site(tmp_path, **overrides))
    assert str(tmp_path / "site.yaml") in message
    assert expected in message


def test_a_passkey_is_never_repeated_in_an_error(tmp_path):
    message = error_of(tmp_path, site(tmp_path, devices=[device(name="X", passkey="98765")]))
    assert "98765" not in message


def test_an_unknown_model_names_where_it_was_looked_for(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    data = site(tmp_path, devices=[device(name="X", model="omron-hem-9999")])
    data["profile_dirs"] = [str(profiles)]
    message = error_of(tmp_path, data)
    assert "sources[0].devices[0]: BLE model 'omron-hem-9999' not found in" in message
    assert str(profiles) in message and "device_profiles/ble" in message


def test_a_model_of_another_category_is_refused(tmp_path):
    from edge_agent.sources.ble.models import generic_model

    thermometer = generic_model("temperature").model
    message = error_of(tmp_path, site(tmp_path, devices=[device(name="X", model=thermometer)]))
    assert f"model {thermometer!r} is a temperature model; this device's category is blood_pressure" in message


def test_a_passkey_file_relative_to_the_config_is_read(tmp_path):
    (tmp_path / "cuff.passkey").write_text("123456\n")
    config = load(tmp_path, site(tmp_path, devices=[device(name="X", passkey_file="cuff.passkey")]))
    assert config.source_configs[0].devices[0].configured_passkey() == "123456"


def test_check_config_reports_ble_errors_and_accepts_a_good_kit(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site(tmp_path)))
    good = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert "1 sources, 2 devices" in good.stdout
    path.write_text(yaml.safe_dump(site(tmp_path, devices=[device()])))
    bad = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert f"{path}: sources[0].devices[0]: give 'address' or 'name'" in bad.stderr


def test_a_broken_schedule_file_is_a_config_error_naming_its_key(tmp_path):
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("visits:\n  - {date: 2026-11-29, time: '25:00', pseudonym: p-7f3a9c, display_name: Secret Name}\n")
    data = site(tmp_path)
    data["sources"][0]["page"]["schedule_file"] = "schedule.yaml"
    message = error_of(tmp_path, data)
    assert f"sources[0]: page.schedule_file: {schedule}: visits[0].time" in message
    assert "Secret Name" not in message
