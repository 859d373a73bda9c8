"""OPC UA simulator: the meters as objects under Objects/Meters, built from the node map.

    sim = OpcuaSimulator(meters=8, port=0)
    await sim.start()                      # sim.endpoint == "opc.tcp://127.0.0.1:<port>/hinode/"
    sim.values("Meter01")                  # metric -> value currently served
    sim.freeze(True)                       # values stop changing (no data-change notifications)
    await sim.set_bad_status("Meter02", True)   # its variables report BadSensorFailure
    await sim.stop()

With ``security="Basic256Sha256"`` the server offers only Basic256Sha256 Sign and
SignAndEncrypt endpoints, so a client without a certificate is refused. It creates
its certificate with :func:`hinode.certs.make_self_signed` in ``cert_dir`` (kept
between runs) and trusts client certificates given by ``client_certs``,
:meth:`trust_client_certificate`, or dropped into ``cert_dir/trusted/``. When none is
configured at all, any client certificate is accepted (and a warning says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256

from hinode.certs import make_self_signed
from simulators.load import smooth_noise
from simulators.meters import MeterBank
from simulators.opcua.nodemap import DEFAULT_NODE_MAP, AddressSpace, address_space, device_name

log = logging.getLogger("simulators.opcua")
APPLICATION_URI = "urn:hinode:simulators:opcua"
SECURITY_MODES = {
    "Basic256Sha256": [ua.SecurityPolicyType.Basic256Sha256_Sign, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
}
BAD_STATUS = ua.StatusCodes.BadSensorFailure


class _SecuredChannelsOnly:
    """Session users for a secured server: none on a channel without a client certificate.

    asyncua opens an unsecured channel for GetEndpoints and leaves the endpoint check to
    the client, so a client that skips it could otherwise read over SecurityPolicy None.
    """

    def get_user(self, iserver, username=None, password=None, certificate=None) -> User | None:
        if not certificate:          # asyncua passes b"" for SecurityPolicy None
            log.warning("refused a session on an unsecured channel")
            return None
        return User(role=UserRole.User)


def _cert_sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(SHA256()).hex()


def _file_sha256(path: Path) -> str:
    data = path.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    return _cert_sha256(cert)


class OpcuaSimulator:
    def __init__(self, meters: int = 8, port: int = 0, host: str = "127.0.0.1", interval: float = 1.0,
                 security: str | None = None, cert_dir: Path | str | None = None,
                 client_certs: list[Path | str] | None = None, node_map: str = DEFAULT_NODE_MAP,
                 seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        if security is not None and security not in SECURITY_MODES:
            raise ValueError(f"security must be None or one of {sorted(SECURITY_MODES)}, got {security!r}")
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.meters, self.host, self.interval, self.security, self.seed = meters, host, interval, security, seed
        self.space: AddressSpace = address_space(node_map)
        self.bank = MeterBank(meters, seed, clock)
        self.devices = [device_name(i) for i in self.bank.indexes]
        self._index = {name: i for i, name in zip(self.bank.indexes, self.devices)}
        self._requested_port = port
        self._cert_dir_arg = Path(cert_dir) if cert_dir else None
        self.cert_dir: Path | None = None
        self._own_cert_dir = False
        self._trusted: set[str] = {_file_sha256(Path(p)) for p in client_certs or []}
        self.server_certificate: Path | None = None
        self.server_private_key: Path | None = None
        self.port: int | None = None
        self.endpoint: str | None = None
        self.namespace_index: int | None = None
        self._server: Server | None = None
        self._nodes: dict[str, list[tuple[str, ua.NodeId, float, float]]] = {}
        self._served: dict[str, dict[str, float]] = {}
        self._frozen = False
        self._bad: set[str] = set()
        self._pending: set[asyncio.Task] = set()
        self._refresher: asyncio.Task | None = None
        self.refresh_count = 0

    # --- certificates and trust -------------------------------------------------------
    def _prepare_certificates(self) -> None:
        if self._cert_dir_arg is None:
            self.cert_dir = Path(tempfile.mkdtemp(prefix="hinode-opcua-sim-"))
            self._own_cert_dir = True
        else:
            self.cert_dir = self._cert_dir_arg
            self.cert_dir.mkdir(parents=True, exist_ok=True)
        self.server_certificate = self.cert_dir / "simulator-server-cert.der"
        self.server_private_key = self.cert_dir / "simulator-server-key.pem"
        if not (self.server_certificate.exists() and self.server_private_key.exists()):
            hosts = tuple(dict.fromkeys(("localhost", "127.0.0.1", self.host, socket.gethostname())))
            make_self_signed(self.server_certificate, self.server_private_key, "hinode OPC UA simulator",
                             APPLICATION_URI, hostnames=hosts)
        (self.cert_dir / "trusted").mkdir(exist_ok=True)

    def trust_client_certificate(self, path: Path | str) -> None:
        """Accept clients presenting this certificate (DER or PEM file)."""
        self._trusted.add(_file_sha256(Path(path)))

    def _trusted_now(self) -> set[str]:
        trusted = set(self._trusted)
        folder = self.cert_dir / "trusted" if self.cert_dir else None
        if folder and folder.is_dir():
            for path in folder.iterdir():
                if path.suffix in (".der", ".pem", ".crt"):
                    with contextlib.suppress(ValueError, OSError):
                        trusted.add(_file_sha256(path))
        return trusted

    async def _validate_client(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        trusted = self._trusted_now()
        if not trusted:
            log.warning("no trusted client certificates configured: accepting %s", cert.subject.rfc4514_string())
            return
        if _cert_sha256(cert) not in trusted:
            log.warning("refused untrusted client certificate %s (%s)", cert.subject.rfc4514_string(), app.ApplicationUri)
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    # --- life cycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = Server(user_manager=_SecuredChannelsOnly() if self.security else None)
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self._requested_port}/hinode/")
        server.set_server_name("hinode OPC UA meter simulator")
        await server.set_application_uri(APPLICATION_URI)
        server.set_identity_tokens([ua.AnonymousIdentityToken])     # no user logins: the channel authenticates
        if self.security:
            self._prepare_certificates()
            await server.load_certificate(str(self.server_certificate))
            await server.load_private_key(str(self.server_private_key))
            server.set_security_policy(SECURITY_MODES[self.security])
            server.set_certificate_validator(self._validate_client)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.namespace_index = await server.register_namespace(self.space.namespace)
        await self._build_address_space(server)
        self._server = server
        self.refresh()
        await self._publish()
        try:
            await server.start()
        except Exception:
            self._server = None
            await self.stop()
            raise
        self.port = server.bserver.port
        self.endpoint = f"opc.tcp://{self.host}:{self.port}/hinode/"
        self._refresher = asyncio.create_task(self._refresh_forever(), name="opcua-sim-refresh")
        log.info("%s", self.describe())

    async def _build_address_space(self, server: Server) -> None:
        ns = self.namespace_index
        folder = await server.nodes.objects.add_folder(ua.NodeId(self.space.folder, ns),
                                                       ua.QualifiedName(self.space.folder, ns))
        for name in self.devices:
            device = await folder.add_object(ua.NodeId(name, ns), ua.QualifiedName(name, ns))
            nodes = []
            for spec in self.space.variables:
                node_id = ua.NodeId(f"{name}.{spec.name}", ns)
                var = await device.add_variable(node_id, ua.QualifiedName(spec.name, ns), 0.0, ua.VariantType.Double)
                if spec.unit:
                    await var.write_attribute(ua.AttributeIds.Description,
                                              ua.DataValue(ua.Variant(ua.LocalizedText(f"{spec.metric} [{spec.unit}]"))))
                nodes.append((spec.metric, node_id, spec.scale, spec.offset))
            self._nodes[name] = nodes

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._own_cert_dir and self.cert_dir is not None:
            shutil.rmtree(self.cert_dir, ignore_errors=True)

    async def __aenter__(self) -> "OpcuaSimulator":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def describe(self) -> str:
        sec = f"security {self.security} (Sign, SignAndEncrypt only), server cert {self.server_certificate}" \
            if self.security else "security None"
        return (f"OPC UA simulator: {self.meters} meters ({self.devices[0]}..{self.devices[-1]}) under "
                f"Objects/{self.space.folder} in {self.space.namespace} at {self.endpoint}, {sec}, refresh {self.interval:g}s")

    # --- values -----------------------------------------------------------------------
    def refresh(self, t: float | None = None) -> None:
        """Recompute every meter (values are published by the refresh loop or :meth:`publish`)."""
        if self._frozen and self._served:
            return
        t = self.bank.refresh(t)
        for name in self.devices:
            values = self.bank.values(self._index[name])
            served = {}
            for spec in self.space.variables:
                value = values.get(spec.metric)
                if value is None:
                    channel = zlib.crc32(spec.metric.encode())
                    value = 500 + 500 * smooth_noise(self.seed, self._index[name], channel, t, 10.0)
                served[spec.metric] = float(value)
            self._served[name] = served
        self.refresh_count += 1

    async def publish(self) -> None:
        """Write the current values (and statuses) to the address space now."""
        await self._publish()

    async def _publish(self, only: str | None = None) -> None:
        if self._server is None:
            raise RuntimeError("simulator is not started")
        server = self._server
        now = datetime.now(timezone.utc)
        for name in ([only] if only else self.devices):
            served = self._served[name]
            status = ua.StatusCode(BAD_STATUS if name in self._bad else ua.StatusCodes.Good)
            for metric, node_id, scale, offset in self._nodes[name]:
                raw = (served[metric] - offset) / scale if scale else served[metric]
                value = ua.DataValue(ua.Variant(raw, ua.VariantType.Double), StatusCode=status,
                                     SourceTimestamp=now, ServerTimestamp=now)
                await server.write_attribute_value(node_id, value)

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self._frozen:
                continue
            try:
                self.refresh()
                await self._publish()
            except Exception:  # noqa: BLE001 - a bad value must not stop the simulator
                log.exception("refreshing simulated values failed")
            if loop.time() - next_at > self.interval:
                next_at = loop.time()

    def values(self, device: str) -> dict[str, float]:
        """Metric -> value device ``device`` (e.g. ``"Meter01"``) serves right now."""
        if device not in self._index:
            raise KeyError(f"device {device!r} is not simulated ({self.devices[0]}..{self.devices[-1]})")
        if device not in self._served:
            self.refresh()
        return dict(self._served[device])

    # --- faults -----------------------------------------------------------------------
    def freeze(self, frozen: bool = True) -> None:
        """Stop (True) or resume (False) changing values: no data changes are published while frozen."""
        self._frozen = frozen
        log.info("values %s", "frozen" if frozen else "live again")

    @property
    def frozen(self) -> bool:
        return self._frozen

    def set_bad_status(self, device: str, bad: bool = True) -> asyncio.Task | None:
        """Make every variable of ``device`` report BadSensorFailure (or Good again).

        The new status is published at once by a task, which is returned: ``await`` it to
        be sure a client reading next sees the new status.
        """
        if device not in self._index:
            raise KeyError(f"device {device!r} is not simulated ({self.devices[0]}..{self.devices[-1]})")
        (self._bad.add if bad else self._bad.discard)(device)
        log.info("%s status %s", device, "BadSensorFailure" if bad else "Good")
        if self._server is None:
            return None
        task = asyncio.get_running_loop().create_task(self._publish(only=device))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    def bad_status(self, device: str) -> bool:
        return device in self._bad
