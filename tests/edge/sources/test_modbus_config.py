"""A broken modbus/sunspec config section is refused with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from device_profiles.schema import format_validation_error
import edge_agent.sources.modbus as modbus
import edge_agent.sources.sunspec as sunspec

pytestmark = pytest.mark.timeout(10)


def section(**overrides) -> dict:
    base = {"type": "modbus", "name": "hall-a", "host": "127.0.0.1", "port": 5020,
            "devices": [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"},
                        {"id": "m2", "unit": 2, "profile": "eastron-sdm630"}]}
    base.update(overrides)
    return base


def problems(plugin, data: dict, profile_dirs: list[Path] | None = None) -> str:
    """What the agent would print for this section: ``file: key.path: message``."""
    with pytest.raises(ValidationError) as info:
        plugin.Config.model_validate(data, context={"profile_dirs": profile_dirs or []})
    return format_validation_error("site.yaml", info.value, prefix=("sources", 0))


def test_a_valid_section_keeps_defaults_and_loads_profiles():
    config = modbus.Config.model_validate(section(), context={"profile_dirs": []})
    assert (config.timeout_s, config.retries, config.poll_interval_s) == (1.0, 1, 1.0)
    assert (config.backoff.initial_s, config.backoff.max_s) == (1.0, 60.0)
    assert config.devices[1].loaded_profile().id == "eastron-sdm630"
    assert config.read_limit(config.devices[1].loaded_profile()) == 80


def test_unknown_profile_names_the_device_key_and_the_folders_searched(tmp_path):
    data = section(devices=[{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"},
                            {"id": "m2", "unit": 2, "profile": "no-such-meter"}])
    text = problems(modbus, data, [tmp_path])
    assert "site.yaml: sources.0.devices.1.profile: " in text
    assert "'no-such-meter' not found" in text and str(tmp_path) in text


def test_a_profile_from_the_site_folder_is_found_and_an_opcua_profile_is_refused(tmp_path):
    own = tmp_path / "my-meter.yaml"
    own.write_text("id: my-meter\nprotocol: modbus\nvendor: x\nmodel: y\nsource: test\n"
                   "registers:\n  - {metric: power_total, address: 0, type: float32}\n")
    ok = modbus.Config.model_validate(section(devices=[{"id": "m1", "unit": 1, "profile": "my-meter"}]),
                                      context={"profile_dirs": [tmp_path]})
    assert ok.devices[0].loaded_profile().id == "my-meter"
    text = problems(modbus, section(devices=[{"id": "m1", "unit": 1, "profile": "hinode-sim-meter-opcua"}]))
    assert "sources.0.devices.0.profile: " in text and "opcua profile; expected a modbus profile" in text


def test_a_broken_profile_file_reports_the_file_and_its_key(tmp_path):
    (tmp_path / "bad-meter.yaml").write_text("id: bad-meter\nprotocol: modbus\nvendor: x\nmodel: y\nsource: t\n"
                                             "registers:\n  - {metric: p, address: 0, type: float33}\n")
    text = problems(modbus, section(devices=[{"id": "m1", "unit": 1, "profile": "bad-meter"}]), [tmp_path])
    assert "sources.0.devices.0.profile: " in text and "bad-meter.yaml: " in text and "registers.0.type" in text and "float33" in text


def test_duplicate_device_ids_are_named():
    data = section(devices=[{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"},
                            {"id": "m1", "unit": 2, "profile": "hinode-sim-meter"}])
    assert "sources.0.devices: Value error, device id 'm1' appears twice" in problems(modbus, data)


@pytest.mark.parametrize("change, expected", [
    ({"devices": [{"id": "m1", "unit": 248, "profile": "hinode-sim-meter"}]}, "sources.0.devices.0.unit: "),
    ({"timeout_s": 0}, "sources.0.timeout_s: "),
    ({"transport": "udp"}, "sources.0.transport: "),
    ({"max_registers_per_read": 126}, "sources.0.max_registers_per_read: "),
    ({"backoff": {"initial_s": 5, "max_s": 1}}, "sources.0.backoff: Value error, max_s (1.0) must be at least initial_s"),
    ({"pol_interval_s": 1}, "sources.0.pol_interval_s: Extra inputs are not permitted"),
    ({"devices": [{"id": "bad id", "unit": 1, "profile": "hinode-sim-meter"}]}, "sources.0.devices.0.id: "),
])
def test_bad_values_name_their_key(change, expected):
    assert expected in problems(modbus, section(**change))


def test_transport_needs_its_own_keys():
    no_host = section(host=None)
    assert "transport 'tcp' needs 'host' on the section or on every device (missing for m1, m2)" in problems(modbus, no_host)
    rtu = section(transport="rtu", host=None, port=None)
    assert "transport 'rtu' needs 'serial:" in problems(modbus, rtu)
    rtu_with_host = section(transport="rtu", port=None, serial={"port": "/dev/ttyUSB0"})
    assert "remove 'host'/'port'" in problems(modbus, rtu_with_host)
    serial_on_tcp = section(serial={"port": "/dev/ttyUSB0"})
    assert "'serial' applies to transport 'rtu' only" in problems(modbus, serial_on_tcp)
    bad_parity = section(transport="rtu", host=None, port=None, serial={"port": "/dev/ttyUSB0", "parity": "X"})
    assert "sources.0.serial.parity: " in problems(modbus, bad_parity)


def test_a_register_too_long_for_the_read_limit_is_a_config_error(tmp_path):
    (tmp_path / "long-name.yaml").write_text(
        "id: long-name\nprotocol: modbus\nvendor: x\nmodel: y\nsource: t\n"
        "registers:\n  - {metric: label, address: 0, type: string, length: 20}\n")
    data = section(max_registers_per_read=10, devices=[{"id": "m1", "unit": 1, "profile": "long-name"}])
    text = problems(modbus, data, [tmp_path])
    assert "devices[0] (m1), profile 'long-name': register 'label' spans 20 registers" in text


def test_sunspec_section_checks_transport_and_base_address():
    good = {"type": "sunspec", "name": "pv", "host": "127.0.0.1",
            "devices": [{"id": "pv1", "unit": 1}, {"id": "pv2", "unit": 2, "base_address": 50000}]}
    config = sunspec.Config.model_validate(good)
    assert [d.base_address for d in config.devices] == [None, 50000]
    bad = dict(good, devices=[{"id": "pv1", "unit": 1, "base_address": 40001}])
    assert "sources.0.devices.0.base_address: " in problems(sunspec, bad)
    assert "needs 'host'" in problems(sunspec, dict(good, host=None))
    assert "appears twice" in problems(sunspec, dict(good, devices=[{"id": "a", "unit": 1}, {"id": "a", "unit": 2}]))
