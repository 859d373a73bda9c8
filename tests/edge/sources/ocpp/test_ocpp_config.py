"""The config section: defaults, and errors that name the key and what was expected."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_agent.config import source_plugin
from edge_agent.sources.ocpp import Config


def validate(tmp_path, **section):
    base = {"type": "ocpp", "name": "chargers", "chargers": [{"id": "CP1", "password": "x"}]}
    base.update(section)
    return Config.model_validate(base, context={"config_dir": tmp_path})


def error_text(tmp_path, **section) -> str:
    with pytest.raises(ValidationError) as caught:
        validate(tmp_path, **section)
    return str(caught.value)


def test_the_agent_finds_the_plugin_and_defaults(tmp_path):
    assert source_plugin("ocpp").Config is Config
    config = validate(tmp_path)
    charger = config.chargers[0]
    assert (config.port, config.security_profile, config.unknown_chargers) == (9000, 1, "pending")
    assert (charger.mode, charger.min_current_a, charger.max_current_a, charger.phases) == ("pv", 6.0, 16.0, 3)
    assert charger.phase_switching == "auto" and config.authorize_unknown_tags is False
    assert config.default_sessions_db() == tmp_path / "chargers-ocpp.db"
    assert config.default_sessions_db(tmp_path / "data") == tmp_path / "data" / "chargers-ocpp.db"


def test_passwords_from_a_secrets_file(tmp_path):
    (tmp_path / "secrets.yaml").write_text("CP2: s3cret\n")
    config = validate(tmp_path, secrets_file="secrets.yaml",
                      chargers=[{"id": "CP1", "password": "inline"}, {"id": "CP2"}])
    assert config.password_of("CP1") == "inline" and config.password_of("CP2") == "s3cret"


def test_profile_0_needs_no_passwords(tmp_path):
    config = validate(tmp_path, security_profile=0, chargers=[{"id": "CP1"}])
    assert config.password_of("CP1") is None


@pytest.mark.parametrize("section, expected", [
    ({"chargers": [{"id": "CP1"}]}, "chargers[0].password: expected a password for charger 'CP1'"),
    ({"chargers": [{"id": "CP1", "password": "x", "circuit": "hall"}]},
     "chargers[0].circuit: expected one of controller.circuits (none defined) (got 'hall')"),
    ({"chargers": [{"id": "CP1", "password": "x", "circuit": "hall"}],
      "controller": {"circuits": [{"name": "garage", "limit_a": 32}]}}, "expected one of controller.circuits (garage)"),
    ({"security_profile": 2}, "tls: expected cert and key files"),
    ({"security_profile": 4}, "security_profile"),
    ({"unknown_chargers": "maybe"}, "'pending', 'rejected' or 'accept'"),
    ({"chargers": [{"id": "CP1", "password": "x"}, {"id": "CP1", "password": "y"}]}, "'CP1' appears twice"),
    ({"chargers": [{"id": "bad id", "password": "x"}]}, "chargers.0.id"),
    ({"chargers": [{"id": "CP1", "password": "x", "min_current_a": 20}]}, "min_current_a (20.0) must not exceed"),
    ({"chargers": [{"id": "CP1", "password": "x", "mode": "fast"}]}, "chargers.0.mode"),
    ({"tls": {"cert": "missing.pem", "key": "missing.key"}}, "expected a readable file"),
    ({"secrets_file": "nope.yaml", "chargers": [{"id": "CP1"}]}, "secrets_file: expected a readable YAML file"),
    ({"colour": "blue"}, "colour"),
])
def test_errors_name_the_key(tmp_path, section, expected):
    assert expected in error_text(tmp_path, **section)


def test_profile_3_needs_a_ca(tmp_path, self_signed_tls):
    cert, key = self_signed_tls
    text = error_text(tmp_path, security_profile=3, tls={"cert": str(cert), "key": str(key)})
    assert "tls.ca: expected the CA file" in text
