"""``python -m edge_agent check-config``: a broken site config is refused with the file,
the key path and what was expected."""

import subprocess
import sys

import pytest

GOOD = """
site: factory-a
agent: edge-01
sources:
  - type: modbus
    name: hall-a
    host: 127.0.0.1
    port: 5020
    devices:
      - {id: m1, unit: 1, profile: hinode-sim-meter}
      - {id: m2, unit: 2, profile: eastron-sdm630}
"""


def check(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_a_good_config_is_accepted(tmp_path):
    result = check(tmp_path, GOOD)
    assert result.returncode == 0, result.stderr
    assert "OK: site factory-a, agent edge-01, 1 sources, 2 devices" in result.stdout


@pytest.mark.parametrize("broken, message", [
    (GOOD.replace("unit: 2", "unit: 300"),
     "sources[0].devices[1].unit: Input should be less than or equal to 247 (got 300)"),
    (GOOD.replace("type: modbus", "type: modbsu"),
     "sources[0].type: expected one of ['ble', 'gbfs', 'modbus', 'ocpp', 'opcua', 'sunspec', 'synthetic'] (got 'modbsu')"),
    (GOOD.replace("profile: eastron-sdm630", "profile: eastron-sdm63O"),
     "sources[0].devices[1].profile: profile 'eastron-sdm63O' not found"),
    (GOOD.replace("site: factory-a", "site: 'factory a'"),
     "site: String should match pattern"),
    (GOOD.replace("id: m2", "id: m1"),
     "sources[0].devices: device id 'm1' appears twice; ids must be unique"),
    (GOOD + "queue: {max_bytes: lots}\n",
     "queue.max_bytes: expected a size like 512MiB, 2GB or a number of bytes (got 'lots')"),
    (GOOD + "mqtt: {port: 70000}\n",
     "mqtt.port: Input should be less than or equal to 65535 (got 70000)"),
    (GOOD + "mqtt: {reconnect_min_s: 5, reconnect_max_s: 2}\n",
     "mqtt.reconnect_max_s: expected at least reconnect_min_s (5.0) (got 2)"),
    (GOOD + "mqtt: {tls: {ca: /nonexistent/ca.pem}}\n",
     "mqtt.tls.ca: expected a readable file (got '/nonexistent/ca.pem')"),
    (GOOD + "sorces: []\n",
     "sorces: Extra inputs are not permitted"),
    ("site: [unclosed\n", "not valid YAML"),
])
def test_a_broken_config_names_file_key_and_expectation(tmp_path, broken, message):
    result = check(tmp_path, broken)
    assert result.returncode == 2
    assert f"{tmp_path / 'site.yaml'}: " in result.stderr
    assert message in result.stderr, result.stderr


def test_duplicate_device_ids_across_sources_are_refused(tmp_path):
    text = GOOD + """  - type: synthetic
    name: synth
    devices: [{id: m2}]
"""
    result = check(tmp_path, text)
    assert result.returncode == 2
    assert "sources[1].devices[0].id: expected an id unique in the site" in result.stderr


def test_a_wrongly_typed_password_is_not_repeated_in_the_error(tmp_path):
    result = check(tmp_path, GOOD + "mqtt: {password: 987654321123}\n")
    assert result.returncode == 2
    assert "mqtt.password:" in result.stderr
    assert "987654321123" not in result.stderr + result.stdout
