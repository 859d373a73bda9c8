"""Basic256Sha256 mode: only signed endpoints, plain clients refused, trusted client certificates accepted."""

from __future__ import annotations

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from hinode.certs import make_self_signed
from simulators.opcua import OpcuaSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
BASIC256 = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"


def client_cert(directory, name: str):
    cert, key = directory / f"{name}.der", directory / f"{name}.pem"
    make_self_signed(cert, key, name, f"urn:hinode:test:{name}", server=False)
    return cert, key


async def secure_client(sim: OpcuaSimulator, cert, key, name: str, mode=ua.MessageSecurityMode.SignAndEncrypt) -> Client:
    client = Client(sim.endpoint, timeout=5)
    client.application_uri = f"urn:hinode:test:{name}"
    await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key),
                              server_certificate=str(sim.server_certificate), mode=mode)
    return client


async def test_secured_server_refuses_plain_and_untrusted_clients(tmp_path, monkeypatch):
    edge_cert, edge_key = client_cert(tmp_path, "edge")
    stranger_cert, stranger_key = client_cert(tmp_path, "stranger")
    async with OpcuaSimulator(meters=2, port=0, security="Basic256Sha256", cert_dir=tmp_path / "server") as sim:
        sim.trust_client_certificate(edge_cert)
        assert sim.server_certificate.exists()

        probe = Client(sim.endpoint, timeout=5)
        endpoints = await probe.connect_and_get_server_endpoints()
        assert {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints} == {
            (BASIC256, ua.MessageSecurityMode.Sign), (BASIC256, ua.MessageSecurityMode.SignAndEncrypt)}

        with pytest.raises(Exception):
            async with Client(sim.endpoint, timeout=5):
                pass

        # A client that ignores the endpoint list and asks for a session on the
        # unsecured channel anyway is refused by the server itself.
        monkeypatch.setattr(Client, "find_endpoint", staticmethod(lambda endpoints, mode, uri: endpoints[0]))
        with pytest.raises(ua.UaStatusCodeError) as refused:
            async with Client(sim.endpoint, timeout=5):
                pass
        assert refused.value.code == ua.StatusCodes.BadUserAccessDenied
        monkeypatch.undo()

        with pytest.raises(ua.UaStatusCodeError) as untrusted:
            async with await secure_client(sim, stranger_cert, stranger_key, "stranger"):
                pass
        assert untrusted.value.code == ua.StatusCodes.BadCertificateUntrusted

        for mode in (ua.MessageSecurityMode.SignAndEncrypt, ua.MessageSecurityMode.Sign):
            async with await secure_client(sim, edge_cert, edge_key, "edge", mode) as client:
                ns = await client.get_namespace_index("urn:hinode:simulators:meters")
                value = await client.get_node(f"ns={ns};s=Meter02.Frequency").read_value()
            assert value == sim.values("Meter02")["frequency"]


async def test_trust_by_folder_or_constructor_and_the_server_cert_is_kept(tmp_path):
    edge_cert, edge_key = client_cert(tmp_path, "edge")
    cert_dir = tmp_path / "server"
    async with OpcuaSimulator(meters=1, port=0, security="Basic256Sha256", cert_dir=cert_dir) as sim:
        first_cert = sim.server_certificate.read_bytes()
        (cert_dir / "trusted" / "edge.der").write_bytes(edge_cert.read_bytes())
        async with await secure_client(sim, edge_cert, edge_key, "edge") as client:
            ns = await client.get_namespace_index("urn:hinode:simulators:meters")
            assert await client.get_node(f"ns={ns};s=Meter01.VoltageL1").read_value() > 200
    (cert_dir / "trusted" / "edge.der").unlink()
    async with OpcuaSimulator(meters=1, port=0, security="Basic256Sha256", cert_dir=cert_dir,
                              client_certs=[edge_cert]) as again:
        assert again.server_certificate.read_bytes() == first_cert       # clients keep trusting the server
        async with await secure_client(again, edge_cert, edge_key, "edge") as client:
            ns = await client.get_namespace_index("urn:hinode:simulators:meters")
            assert await client.get_node(f"ns={ns};s=Meter01.PowerFactor").read_value() >= 0.85
