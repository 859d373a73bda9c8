"""Property tests of the site-config loader and the device-profile schema: whatever a
user writes, the result is a config or ConfigError/ProfileError — and every line of the
error starts with the file path and names the key it is about."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_profiles.schema import ProfileError, parse_profile
from edge_agent.config import ConfigError, load_site_config

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID_SITE = {
    "site": "plant-1", "agent": "edge-01",
    "mqtt": {"host": "127.0.0.1", "port": 1883, "keepalive_s": 30, "max_inflight": 200,
             "tls": None, "reconnect_min_s": 0.5},
    "queue": {"path": "outbox.db", "max_bytes": "64MiB", "commit_interval_ms": 100},
    "metrics": {"listen": "127.0.0.1:9108"},
    "health_interval_s": 10,
    "sources": [
        {"type": "synthetic", "name": "load", "interval_s": 1, "metrics": 3, "devices": [{"id": "s-1"}]},
        {"type": "modbus", "name": "hall-a", "transport": "tcp", "host": "10.0.0.5", "port": 502,
         "poll_interval_s": 1, "devices": [{"id": "m-1", "unit": 1, "profile": "hinode-sim-meter"},
                                           {"id": "m-2", "unit": 2, "profile": "eastron-sdm630"}]},
    ],
}

VALID_PROFILE = {
    "id": "acme-pm1", "protocol": "modbus", "kind": "meter", "vendor": "ACME", "model": "PM1",
    "source": "ACME map rev 1", "defaults": {"function": "input", "word_order": "little"},
    "registers": [{"metric": "voltage", "address": 0, "type": "uint16", "scale": 0.1, "unit": "V"},
                  {"metric": "label", "address": 10, "type": "string", "length": 4},
                  {"metric": "alarm", "address": 20, "type": "bits", "bit": 3}],
}

# YAML-ish values: what a person (or a broken generator) puts where a value belongs
yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                         st.text(max_size=20), st.dates(),
                         st.sampled_from(["", "  ", "tcp", "modbus", "synthetic", "opcua", "512MiB", "1e3",
                                          "-1", "0x10", "yes", "null", "~", "127.0.0.1:99999", "../../etc",
                                          "a\u0000b", "日本語", "hinode-sim-meter"]))
# Keys without line breaks: a key with one is its own (failing) test below.
keys = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
yaml_values = st.recursive(yaml_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(keys, inner, max_size=4), max_leaves=12)


def paths_in(data, prefix=()):
    if prefix:
        yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_in(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths_in(value, (*prefix, index))


def mutated(data, draw_choice, n_mutations: int):
    """``data`` with n random values replaced, keys deleted or keys added (drawn by hypothesis)."""
    data = copy.deepcopy(data)
    for _ in range(n_mutations):
        paths = list(paths_in(data))
        if not paths:
            return data
        path = draw_choice(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw_choice(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw_choice(yaml_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw_choice(keys.filter(bool))] = draw_choice(yaml_values)
        else:
            parent.append(draw_choice(yaml_values))
    return data


def assert_error_lines_name_file_and_key(message: str, path: str) -> None:
    line_re = re.compile(re.escape(path) + r": (?P<key>.+?): \S")
    lines = message.splitlines()
    assert lines, "an empty error message"
    for line in lines:
        match = line_re.match(line)
        assert match, f"error line does not start with '{path}: <key>: ': {line!r}\nwhole message:\n{message}"


@SETTINGS
@given(st.data(), st.integers(1, 3))
def test_mutated_site_configs_load_or_fail_naming_file_and_key(tmp_path, data, n_mutations):
    path = tmp_path / "site.yaml"
    config = mutated(VALID_SITE, data.draw, n_mutations)
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    try:
        loaded = load_site_config(path)
    except ConfigError as exc:
        assert_error_lines_name_file_and_key(str(exc), str(path))
    else:
        assert loaded.site and loaded.source_configs and len(loaded.source_configs) == len(loaded.sources)


@SETTINGS
@given(yaml_values)
def test_any_yaml_document_is_a_config_or_a_config_error_naming_the_file(tmp_path, document):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    with pytest.raises(ConfigError) as caught:
        load_site_config(path)
    assert_error_lines_name_file_and_key(str(caught.value), str(path))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_arbitrary_text_is_a_config_error_starting_with_the_file(tmp_path, text):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_site_config(path)
    # a YAML syntax error has no key; its first line still names the file
    assert str(caught.value).startswith(f"{path}: ")


def test_the_unmutated_configs_are_valid(tmp_path):
    """The fuzzers start from valid documents, so their mutations probe real edges."""
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(VALID_SITE))
    assert [c.type for c in load_site_config(path).source_configs] == ["synthetic", "modbus"]
    assert parse_profile(VALID_PROFILE, "acme-pm1.yaml").id == "acme-pm1"


@SETTINGS
@given(st.data(), st.integers(1, 3))
def test_mutated_profiles_parse_or_fail_naming_file_and_key(data, n_mutations):
    profile = mutated(VALID_PROFILE, data.draw, n_mutations)
    try:
        parse_profile(profile, "profiles/acme-pm1.yaml")
    except ProfileError as exc:
        assert_error_lines_name_file_and_key(str(exc), "profiles/acme-pm1.yaml")


@SETTINGS
@given(yaml_values)
def test_any_structure_is_a_profile_error_naming_the_file(document):
    try:
        parse_profile(document, "p.yaml")
    except ProfileError as exc:
        assert_error_lines_name_file_and_key(str(exc), "p.yaml")
    else:
        pytest.fail(f"{document!r} parsed as a profile")


# Found by the fuzzers above (before their keys were restricted): a key with a line break
# is pasted raw into the error, so the problem's line is split and its second half names
# neither the file nor a key. Both loaders share the flaw.

def test_an_unknown_key_with_a_line_break_still_gives_one_error_line_per_problem(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**VALID_SITE, "mqtt": {**VALID_SITE["mqtt"], "port\nx": 1}}))
    with pytest.raises(ConfigError) as caught:
        load_site_config(path)
    assert_error_lines_name_file_and_key(str(caught.value), str(path))


def test_an_unknown_profile_key_with_a_line_break_still_gives_one_error_line_per_problem():
    with pytest.raises(ProfileError) as caught:
        parse_profile({**VALID_PROFILE, "vendor\r": "x"}, "p.yaml")
    assert_error_lines_name_file_and_key(str(caught.value), "p.yaml")
