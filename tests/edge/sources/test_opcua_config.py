"""OPC UA source config: what a broken section says, and which key it names."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from edge_agent.sources.opcua import Config
from hinode.certs import make_self_signed

pytestmark = pytest.mark.timeout(30)
PROFILE = "hinode-sim-meter-opcua"


def base(**overrides) -> dict:
    data = {"type": "opcua", "name": "line-1", "endpoint": "opc.tcp://plc.local:4840/ua",
            "devices": [{"id": "M1", "profile": PROFILE}]}
    data.update(overrides)
    return data


def problem(data: dict, context: dict | None = None) -> tuple[str, str]:
    """(key path, message) of the single problem a section has."""
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data, context=context)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return ".".join(str(p) for p in errors[0]["loc"]), errors[0]["msg"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    root = tmp_path_factory.mktemp("certs")
    make_self_signed(root / "edge.der", root / "edge-key.pem", "edge", "urn:hinode:edge:line-1")
    make_self_signed(root / "other.der", root / "other-key.pem", "other", "urn:hinode:edge:other")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no-uri")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (root / "no-uri.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return root


def test_defaults_of_a_minimal_section():
    config = Config.model_validate(base())
    assert (config.mode, config.publishing_interval_ms, config.sampling_interval_ms) == ("subscribe", 1000, 500)
    assert config.effective_watchdog_s == 10.0
    assert Config.model_validate(base(publishing_interval_ms=100)).effective_watchdog_s == 5.0   # at least 5 s
    assert config.security.policy == "None" and config.deadband.type == "none"
    assert config.devices[0].name_on_server == "M1"
    assert config.devices[0].loaded_profile().namespace == "urn:hinode:simulators:meters"


def test_profiles_must_exist_and_be_opcua_node_maps(tmp_path):
    key, message = problem(base(devices=[{"id": "M1", "profile": "no-such-meter"}]))
    assert key == "devices.0.profile" and "profile 'no-such-meter' not found" in message
    key, message = problem(base(devices=[{"id": "M1", "profile": "hinode-sim-meter"}]))
    assert key == "devices.0.profile"
    assert "is a modbus profile; expected an opcua node map" in message
    # user profile folders come from the validation context and are searched first
    (tmp_path / "site-meter.yaml").write_text(
        "id: site-meter\nprotocol: opcua\nvendor: v\nmodel: m\nsource: s\nnamespace: urn:x\n"
        "nodes:\n  - {metric: voltage_l1, node_id: 'ns={ns};s={device}.V'}\n")
    config = Config.model_validate(base(devices=[{"id": "M1", "profile": "site-meter"}]),
                                   context={"profile_dirs": [tmp_path]})
    assert config.devices[0].loaded_profile().namespace == "urn:x"


def test_device_ids_are_unique_and_valid():
    key, message = problem(base(devices=[{"id": "M1", "profile": PROFILE}, {"id": "M1", "profile": PROFILE}]))
    assert key == "devices" and "device id 'M1' appears twice" in message
    key, _ = problem(base(devices=[{"id": "M 1", "profile": PROFILE}]))
    assert key == "devices.0.id"
    key, _ = problem(base(devices=[]))
    assert key == "devices"


@pytest.mark.parametrize("endpoint, expected", [
    ("http://plc:4840", "expected opc.tcp://host:port/..."),
    ("opc.tcp://user:secret@plc:4840", "put credentials in 'username'/'password'"),
    ("opc.tcp://plc:port/", "port is not a number"),
])
def test_endpoint_must_be_opc_tcp(endpoint, expected):
    key, message = problem(base(endpoint=endpoint))
    assert key == "endpoint" and expected in message


def test_unknown_keys_and_bad_values_name_the_key():
    assert problem(base(publish_ms=100))[0] == "publish_ms"
    assert problem(base(mode="stream"))[0] == "mode"
    assert problem(base(deadband={"type": "percent", "value": 150}))[0] == "deadband"
    assert problem(base(deadband={"type": "absolute", "value": -1}))[0] == "deadband.value"
    assert problem(base(reconnect={"initial_s": 10, "max_s": 1}))[0] == "reconnect"
    key, message = problem(base(watchdog_s=1.5))          # two publishing intervals are 2 s
    assert "watchdog_s (1.5) must cover at least two publishing intervals" in message
    key, message = problem(base(username="operator"))
    assert "give both 'username' and 'password'" in message


def test_password_is_never_shown():
    config = Config.model_validate(base(username="operator", password="s3cret-pw"))
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config.model_dump())
    assert config.password.get_secret_value() == "s3cret-pw"


def test_security_files_are_checked_at_config_time(certs):
    good = {"policy": "Basic256Sha256", "certificate": str(certs / "edge.der"),
            "private_key": str(certs / "edge-key.pem")}
    config = Config.model_validate(base(security=good))
    assert config.security.application_uri == "urn:hinode:edge:line-1" and config.security.mode == "SignAndEncrypt"

    key, message = problem(base(security={**good, "certificate": str(certs / "missing.der")}))
    assert key == "security.certificate" and message.endswith(f"no readable file at {str(certs / 'missing.der')!r}")
    key, message = problem(base(security={**good, "server_certificate": str(certs / "nope.der")}))
    assert key == "security.server_certificate"
    key, message = problem(base(security={"policy": "Basic256Sha256"}))
    assert key == "security" and "needs 'certificate' and 'private_key'" in message
    key, message = problem(base(security={**good, "private_key": str(certs / "other-key.pem")}))
    assert "private_key:" in message and "does not belong to certificate" in message
    key, message = problem(base(security={**good, "certificate": str(certs / "no-uri.pem")}))
    assert "has no URI in its SubjectAltName" in message
    key, message = problem(base(security={**good, "application_uri": "urn:somebody:else"}))
    assert "application_uri: 'urn:somebody:else' is not in the certificate's SubjectAltName" in message
    key, message = problem(base(security={**good, "policy": "Basic128Rsa15"}))
    assert key == "security.policy"
    key, message = problem(base(security={**good, "mode": "Encrypt"}))
    assert key == "security.mode"


def test_relative_certificate_paths_resolve_against_the_config_folder(certs):
    security = {"policy": "Basic256Sha256", "certificate": "edge.der", "private_key": "edge-key.pem"}
    config = Config.model_validate(base(security=security), context={"config_dir": certs})
    assert config.security.certificate == certs / "edge.der"
