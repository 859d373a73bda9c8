"""OPC UA source security: Basic256Sha256 Sign / SignAndEncrypt against servers offering only that.

The test server trusts client certificates explicitly: it validates with asyncua's
TrustStore (TRUSTED_VALIDATION) over a folder holding the one trusted client
certificate, so an unknown certificate is refused (BadCertificateUntrusted).
"""

from __future__ import annotations

import logging

import pytest

from hinode.certs import make_self_signed

from tests.edge.sources.opcua_peer import MeterPeer, Run, section

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]
CLIENT_URI = "urn:hinode:edge:test-gateway"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    root = tmp_path_factory.mktemp("opcua-certs")
    make_self_signed(root / "server.der", root / "server-key.pem", "hinode test server", "urn:hinode:test:server",
                     client=False)
    # the trusted folder is what the server trusts; the key is PEM in a .key file (content decides, not suffix)
    make_self_signed(root / "trusted" / "edge.der", root / "edge.key", "hinode edge", CLIENT_URI, server=False)
    make_self_signed(root / "stranger.pem", root / "stranger-key.pem", "stranger", "urn:hinode:edge:stranger",
                     server=False)
    return root


def secured(endpoint: str, certs, mode: str = "SignAndEncrypt", certificate: str = "trusted/edge.der",
            private_key: str = "edge.key", **extra) -> dict:
    security = {"policy": "Basic256Sha256", "mode": mode, "certificate": str(certs / certificate),
                "private_key": str(certs / private_key), **extra}
    return section(endpoint, devices=("M1",), security=security)


async def start_secure_peer(certs, mode: str, users: dict | None = None) -> MeterPeer:
    peer = MeterPeer(("M1",), secure=(certs / "server.der", certs / "server-key.pem", certs / "trusted"),
                     secure_mode=mode, users=users)
    await peer.start()
    return peer


async def test_sign_and_encrypt_end_to_end_and_no_security_is_refused_clearly(certs):
    peer = await start_secure_peer(certs, "SignAndEncrypt")
    try:
        async with Run(secured(peer.endpoint, certs)) as run:
            assert run.source.config.security.application_uri == CLIENT_URI     # read from the certificate
            await run.wait_for(lambda: len({r.value for r in run.values("M1", "voltage_l1")}) >= 3, 5,
                               "changing values over SignAndEncrypt")
            assert run.online("M1") and not run.context.errors
        async with Run(section(peer.endpoint, devices=("M1",))) as plain:
            assert not plain.online("M1") and not plain.batches
            assert plain.context.devices["M1"].error == (
                "security: server offers no endpoint with security None/None (it offers "
                "Basic256Sha256/SignAndEncrypt); set security.policy and security.mode to one of those")
            assert plain.errors("_source", "security") >= 1
    finally:
        await peer.stop()


async def test_sign_only_with_a_pinned_server_certificate(certs):
    peer = await start_secure_peer(certs, "Sign")
    try:
        async with Run(secured(peer.endpoint, certs, mode="Sign", server_certificate=str(certs / "server.der"))) as run:
            await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 3, 5, "values over Sign")
        async with Run(secured(peer.endpoint, certs, mode="SignAndEncrypt")) as wrong_mode:
            assert "server offers no endpoint with security Basic256Sha256/SignAndEncrypt (it offers " \
                   "Basic256Sha256/Sign)" in wrong_mode.context.devices["M1"].error
    finally:
        await peer.stop()


async def test_untrusted_client_certificate_is_refused_with_a_hint(certs):
    peer = await start_secure_peer(certs, "SignAndEncrypt")
    try:
        async with Run(secured(peer.endpoint, certs, certificate="stranger.pem", private_key="stranger-key.pem")) as run:
            assert not run.batches and not run.online("M1")
            error = run.context.devices["M1"].error
            assert error.startswith("security: server refused our certificate (BadCertificateUntrusted): trust ")
            assert "stranger.pem" in error and "urn:hinode:edge:stranger" in error
            assert run.errors("_source", "security") >= 1
    finally:
        await peer.stop()


async def test_user_and_password_over_sign_and_encrypt_and_the_password_is_never_logged(certs, caplog):
    caplog.set_level(logging.DEBUG)
    peer = await start_secure_peer(certs, "SignAndEncrypt", users={"operator": "Pw-0f-the-line"})
    try:
        async with Run({**secured(peer.endpoint, certs), "username": "operator", "password": "Pw-0f-the-line"}) as run:
            await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 3, 5, "values as user operator")
        async with Run({**secured(peer.endpoint, certs), "username": "operator", "password": "wrong-secret"}) as denied:
            assert not denied.batches
            assert denied.context.devices["M1"].error.startswith("security: server refused the user 'operator' (Bad")
            assert denied.errors("_source", "security") >= 1
    finally:
        await peer.stop()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Pw-0f-the-line" not in logged and "wrong-secret" not in logged

