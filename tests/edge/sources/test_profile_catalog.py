"""Profile keys for writes and counters (writable, min/max, counter, rollover): what a wrong
one says and which file and key it names; and each source describing its devices' metrics
(units, counters, writable) to the context once."""

from __future__ import annotations

import pytest

from device_profiles.schema import ProfileError, load_profile, load_profile_file
import edge_agent.sources.modbus as modbus
import edge_agent.sources.opcua as opcua
import edge_agent.sources.sunspec as sunspec
import edge_agent.sources.synthetic as synthetic
from hinode.contract import MetricInfo
from simulators.modbus import ModbusSimulator

pytestmark = pytest.mark.timeout(60)

HEADER = "id: {id}\nprotocol: modbus\nvendor: test\nmodel: test\nsource: test\n{defaults}registers:\n"


def profile_error(tmp_path, register: str, defaults: str = "") -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(HEADER.format(id="broken", defaults=defaults) + f"  - {register}\n")
    with pytest.raises(ProfileError) as info:
        load_profile_file(path)
    return str(info.value)


@pytest.mark.parametrize("register, defaults, key, message", [
    ("{metric: v, address: 0, type: uint16, function: input, writable: true}", "", "registers.0.writable",
     "function input is read-only; only holding registers and coils can be writable"),
    ("{metric: door, address: 0, type: bits, writable: true}", "defaults: {function: discrete}\n",
     "registers.0.writable", "function discrete is read-only"),
    ("{metric: p, address: 0, type: uint16, writable: true, min: 10, max: 5}", "", "registers.0.max",
     "min (10) must not be above max (5)"),
    ("{metric: p, address: 0, type: uint16, max: 5}", "", "registers.0.max",
     "'max' limits what a write may set; add 'writable: true' or remove it"),
    ("{metric: e, address: 0, type: uint32, rollover: 1000}", "", "registers.0.rollover",
     "'rollover' is only for a counter: add 'counter: true' or remove it"),
    ("{metric: e, address: 0, type: uint32, counter: true, rollover: 0}", "", "registers.0.rollover",
     "greater than 0"),
    ("{metric: s, address: 0, type: string, length: 2, counter: true}", "", "registers.0.counter",
     "a counter must be a numeric type (type is string)"),
    ("{metric: f, address: 0, type: bits, bit: 3, writable: true}", "", "registers.0.writable",
     "one bit of a holding register cannot be writable"),
])
def test_a_wrong_write_or_counter_key_names_file_and_key(tmp_path, register, defaults, key, message):
    error = profile_error(tmp_path, register, defaults)
    assert error.startswith(f"{tmp_path / 'broken.yaml'}: {key}: "), error
    assert message in error


def test_an_opcua_rollover_without_counter_names_file_and_key(tmp_path):
    path = tmp_path / "ua.yaml"
    path.write_text("id: ua\nprotocol: opcua\nvendor: t\nmodel: t\nsource: t\nnamespace: urn:t\nnodes:\n"
                    "  - {metric: e, node_id: 'ns={ns};s=E', rollover: 100}\n")
    with pytest.raises(ProfileError, match=r"ua\.yaml: nodes\.0\.rollover: .*'rollover' is only for a counter"):
        load_profile_file(path)


def test_writable_holding_and_coils_load_and_unsigned_counters_get_their_rollover(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(HEADER.format(id="ok", defaults="defaults: {function: input}\n") + "\n".join([
        "  - {metric: limit, address: 0, type: int16, function: holding, writable: true, min: -5, max: 5}",
        "  - {metric: relay, address: 0, type: bits, function: coil, writable: true}",
        "  - {metric: e16, address: 1, type: uint16, counter: true, scale: 0.1, offset: 7}",
        "  - {metric: e64, address: 2, type: uint64, counter: true}",
        "  - {metric: e_signed, address: 6, type: int32, counter: true}",
        "  - {metric: e_float, address: 8, type: float32, counter: true}",
        "  - {metric: e_given, address: 10, type: uint32, counter: true, rollover: 99999.99}",
        "  - {metric: gauge, address: 12, type: uint32}"]) + "\n")
    profile = load_profile_file(path)
    rollover = {r.metric: r.effective_rollover for r in profile.registers}
    assert rollover == {"limit": None, "relay": None, "e16": 6553.6, "e64": 2.0 ** 64, "e_signed": None,
                        "e_float": None, "e_given": 99999.99, "gauge": None}
    assert [r.metric for r in profile.registers if r.writable] == ["limit", "relay"]


def test_the_shipped_profiles_mark_energy_counters_and_the_sim_setpoint():
    def infos(profile_id):
        return {m.metric: m for m in load_profile(profile_id).metric_infos()}

    sim = infos("hinode-sim-meter")
    assert sim["energy_import"] == MetricInfo(metric="energy_import", unit="kWh", counter=True,
                                              rollover=2 ** 32 * 0.01)
    assert sim["power_limit"] == MetricInfo(metric="power_limit", unit="kW", writable=True)
    for vendor in ("eastron-sdm630", "carlo-gavazzi-em24"):
        counters = {m for m, info in infos(vendor).items() if info.counter}
        assert counters == {"energy_import", "energy_export", "reactive_energy_import", "reactive_energy_export"}
        assert not any(info.writable for info in infos(vendor).values())
    assert {m for m, i in infos("hinode-sim-meter-opcua").items() if i.counter} == {"energy_import"}


def counting(context):
    context.catalog_changes = 0

    def changed():
        context.catalog_changes += 1
    context.on_catalog_change = changed
    return context


def test_the_modbus_source_describes_each_device_from_its_profile(source_tools):
    config = modbus.Config.model_validate({
        "type": "modbus", "name": "hall", "host": "127.0.0.1", "port": 1502,
        "devices": [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"},
                    {"id": "m2", "unit": 2, "profile": "eastron-sdm630"}]})
    context = counting(source_tools.context())
    modbus.Source(config, context)
    assert context.catalog_changes == 2
    profile, metrics = context.catalog["m1"]
    by_name = {m.metric: m for m in metrics}
    assert profile == "hinode-sim-meter" and len(metrics) == 14
    assert by_name["voltage_l1"] == MetricInfo(metric="voltage_l1", unit="V")
    assert by_name["energy_import"].counter and by_name["energy_import"].rollover == pytest.approx(42949672.96)
    assert by_name["power_limit"].writable and by_name["power_limit"].unit == "kW"
    profile, metrics = context.catalog["m2"]
    assert profile == "eastron-sdm630"
    assert {m.metric: (m.unit, m.counter, m.rollover) for m in metrics}["energy_export"] == ("kWh", True, None)


def test_the_opcua_and_synthetic_sources_describe_their_devices(source_tools):
    ua_config = opcua.Config.model_validate({"type": "opcua", "name": "line-1", "endpoint": "opc.tcp://plc:4840/ua",
                                             "devices": [{"id": "M1", "profile": "hinode-sim-meter-opcua"}]})
    context = counting(source_tools.context())
    opcua.Source(ua_config, context)
    profile, metrics = context.catalog["M1"]
    assert profile == "hinode-sim-meter-opcua" and context.catalog_changes == 1
    assert {m.metric: (m.unit, m.counter) for m in metrics}["energy_import"] == ("kWh", True)
    assert not any(m.writable for m in metrics)

    synth_config = synthetic.Config.model_validate({"type": "synthetic", "name": "load", "metrics": 3,
                                                    "devices": [{"id": "s1"}, {"id": "s2"}]})
    context = counting(source_tools.context())
    synthetic.Source(synth_config, context)
    assert context.catalog_changes == 2
    assert context.catalog["s2"] == ("synthetic", [MetricInfo(metric="counter", counter=True),
                                                   MetricInfo(metric="value_1"), MetricInfo(metric="value_2")])


async def test_the_sunspec_source_describes_what_a_device_reports_after_discovery(source_tools):
    async with ModbusSimulator(meters=1, port=0, interval=60, sunspec=True) as sim:
        config = sunspec.Config.model_validate({
            "type": "sunspec", "name": "pv", "host": "127.0.0.1", "port": sim.port, "poll_interval_s": 0.1,
            "timeout_s": 0.3, "retries": 0, "devices": [{"id": "pv1", "unit": 1}]})
        context = counting(source_tools.context())
        async with source_tools.run(sunspec.Source(config, context)) as run:
            await run.wait_for(lambda: len(run.of("pv1")) >= 3, 5, "three polls")
        reported = {r.metric for batch in run.of("pv1") for r in batch.readings}
    assert context.catalog_changes == 1                 # once, not once per poll
    profile, metrics = context.catalog["pv1"]
    by_name = {m.metric: m for m in metrics}
    assert profile == "sunspec-203" and set(by_name) == reported
    assert by_name["power_total"] == MetricInfo(metric="power_total", unit="W")
    energy = by_name["energy_import"]
    assert energy.counter and energy.unit == "kWh"
    # acc32 in Wh x 10^TotWh_SF (the simulator uses 1), reported in kWh: wraps after 2**32 raw steps
    assert energy.rollover == pytest.approx(2 ** 32 * 10.0 ** (1 - 3))
    assert not by_name["manufacturer"].counter and not any(m.writable for m in metrics)


def test_a_default_function_that_is_not_a_name_is_an_error_naming_the_key_not_a_crash():
    """Found by the profile fuzz test: `defaults: {function: []}` raised TypeError (unhashable list)."""
    from device_profiles.schema import parse_profile
    data = {"id": "acme-pm1", "protocol": "modbus", "vendor": "Acme", "model": "PM1", "source": "manual",
            "defaults": {"function": []}, "registers": [{"metric": "power", "address": 0, "type": "float32"}]}
    with pytest.raises(ProfileError, match=r"profiles/acme-pm1.yaml: defaults.function"):
        parse_profile(data, "profiles/acme-pm1.yaml")
