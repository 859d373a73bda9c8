"""A real asyncua server exposing simulated meters, for the OPC UA source tests.

Laid out like ``device_profiles/opcua/hinode-sim-meter-opcua.yaml`` expects:
namespace ``urn:hinode:simulators:meters``, ``Objects/Meters/<Device>/<Variable>``
with string NodeIds ``<Device>.<Variable>``. Runs in the test's own event loop on a
free loopback port; the tests drive failures through it (restart, freeze, Bad status).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

NAMESPACE = "urn:hinode:simulators:meters"
VARIABLES = {
    "VoltageL1": 230.0, "VoltageL2": 231.0, "VoltageL3": 229.0,
    "CurrentL1": 10.0, "CurrentL2": 11.0, "CurrentL3": 9.0,
    "PowerL1": 2300.0, "PowerL2": 2541.0, "PowerL3": 2061.0, "PowerTotal": 6902.0,
    "PowerFactor": 0.95, "Frequency": 50.0, "EnergyImport": 1000.0,
}


class _Users:
    """Accepts exactly the given user names and passwords (asyncua UserManager interface)."""

    def __init__(self, users: dict[str, str]):
        self.users = users

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username in self.users and self.users[username] == password:
            return User(role=UserRole.User, name=username)
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MeterPeer:
    """Meters on a real OPC UA server whose values change every ``update_s``.

    ``secure`` = (server_cert, server_key, trusted_client_cert_dir): the server then
    offers only Basic256Sha256 with ``secure_mode`` and accepts only client
    certificates found in that directory (TrustStore + TRUSTED validation).
    ``users`` = {name: password}: only those users may open a session.
    """

    def __init__(self, devices=("M1", "M2"), update_s: float = 0.05, port: int | None = None,
                 secure: tuple[Path, Path, Path] | None = None, secure_mode: str = "SignAndEncrypt",
                 users: dict[str, str] | None = None):
        self.devices = list(devices)
        self.update_s = update_s
        self.port = port or free_port()
        self.secure = secure
        self.secure_mode = secure_mode
        self.users = users
        self.server: Server | None = None
        self.ns = 0
        self.updating = True          # False: values freeze, so the server sends no data changes
        self.bad: dict[str, ua.StatusCode] = {}
        self.steps = 0
        self._task: asyncio.Task | None = None
        self._mute_task: asyncio.Task | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/hinode/"

    async def start(self, shift_namespace: int = 0) -> None:
        """Start serving; ``shift_namespace`` registers dummy namespaces first so ours gets another index."""
        server = Server(user_manager=_Users(self.users) if self.users else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("hinode test meters")
        server.disable_clock()          # its 1 s clock task would make every stop() take a second
        if self.secure:
            cert, key, trusted_dir = self.secure
            policy = getattr(ua.SecurityPolicyType, f"Basic256Sha256_{self.secure_mode}")
            server.set_security_policy([policy])
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            store = TrustStore([Path(trusted_dir)], [])
            await store.load()
            server.set_certificate_validator(CertificateValidator(
                CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        for n in range(shift_namespace):
            await server.register_namespace(f"urn:hinode:test:shift{n}")
        self.ns = await server.register_namespace(NAMESPACE)
        meters = await server.nodes.objects.add_folder(ua.NodeId("Meters", self.ns), ua.QualifiedName("Meters", self.ns))
        for device in self.devices:
            obj = await meters.add_object(ua.NodeId(device, self.ns), ua.QualifiedName(device, self.ns))
            for name, value in VARIABLES.items():
                await obj.add_variable(ua.NodeId(f"{device}.{name}", self.ns), ua.QualifiedName(name, self.ns),
                                       value, varianttype=ua.VariantType.Double)
        await server.start()
        self.server = server
        self._task = asyncio.create_task(self._update_loop())

    async def stop(self) -> None:
        for task in (self._task, self._mute_task):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._mute_task = None
        if self.server:
            await self.server.stop()
            self.server = None

    async def restart(self, down_s: float = 0.5, shift_namespace: int = 0) -> None:
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start(shift_namespace=shift_namespace)

    def value(self, device: str, name: str) -> float:
        """The value a variable has at step ``self.steps``: a small wave around its base, energy rising."""
        base = VARIABLES[name] + self.devices.index(device) * 0.5
        if name == "EnergyImport":
            return base + self.steps * 0.01
        return round(base * (1 + 0.01 * ((self.steps % 10) - 5) / 5), 4)

    async def write(self, device: str, name: str, value: float, status: ua.StatusCode | None = None) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        data = ua.DataValue(ua.Variant(value, ua.VariantType.Double), StatusCode=status or ua.StatusCode(ua.StatusCodes.Good),
                            SourceTimestamp=now, ServerTimestamp=now)
        await self.server.write_attribute_value(ua.NodeId(f"{device}.{name}", self.ns), data)

    async def set_bad(self, device: str, code: int = ua.StatusCodes.BadSensorFailure) -> None:
        """All of a device's variables turn Bad (keeping their last value, as many servers do)."""
        self.bad[device] = ua.StatusCode(code)
        for name in VARIABLES:
            await self.write(device, name, self.value(device, name), self.bad[device])

    def set_good(self, device: str) -> None:
        self.bad.pop(device, None)

    async def drop_subscriptions(self) -> int:
        """Fault injection: the server forgets every subscription without telling the client.

        The client's next publish gets BadNoSubscription and asyncua's publish loop ends
        quietly: the "subscription silently stops" failure (TB GW #2028).
        """
        service = self.server.iserver.subscription_service
        ids = list(service.subscriptions)
        await service.delete_subscriptions(ids)
        return len(ids)

    def mute_publishing(self) -> None:
        """Fault injection: subscriptions (new ones too) send keep-alives but no data until unmuted."""
        if self._mute_task is None:
            self._mute_task = asyncio.create_task(self._mute_loop())

    async def unmute_publishing(self) -> None:
        if self._mute_task is not None:
            self._mute_task.cancel()
            await asyncio.gather(self._mute_task, return_exceptions=True)
            self._mute_task = None
        for sub in list(self.server.iserver.subscription_service.subscriptions.values()):
            await sub.set_publishing_mode(True)

    async def _mute_loop(self) -> None:
        while True:
            for sub in list(self.server.iserver.subscription_service.subscriptions.values()):
                await sub.set_publishing_mode(False)
            await asyncio.sleep(0.01)

    async def _update_loop(self) -> None:
        while True:
            if self.updating:
                self.steps += 1
                for device in self.devices:
                    if device in self.bad:
                        continue
                    for name in VARIABLES:
                        await self.write(device, name, self.value(device, name))
            await asyncio.sleep(self.update_s)


# ------------------------------------------------------------------ driving the source

PROFILE = "hinode-sim-meter-opcua"
METRICS = {"voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3", "power_l1",
           "power_l2", "power_l3", "power_total", "power_factor", "frequency", "energy_import"}


def section(endpoint: str, devices=("M1", "M2"), **overrides) -> dict:
    """A source config section with test-sized intervals (100 ms publishing, 1 s watchdog)."""
    data = {"type": "opcua", "name": "opcua-test", "endpoint": endpoint,
            "publishing_interval_ms": 100, "sampling_interval_ms": 50, "poll_interval_s": 0.2,
            "timeout_s": 2, "watchdog_s": 1.0, "reconnect": {"initial_s": 0.2, "max_s": 1.0},
            "devices": [{"id": d, "profile": PROFILE} if isinstance(d, str) else d for d in devices]}
    data.update(overrides)
    return data


class Run:
    """An OPC UA source started from a config section, its batches collected as they come."""

    def __init__(self, data: dict):
        from edge_agent.sources.base import SourceContext
        from edge_agent.sources.opcua import Config, Source
        self.context = SourceContext(source_name=data["name"], log=logging.getLogger(f"test.{data['name']}"))
        self.transitions: list[tuple[str, bool, str]] = []
        self.context.on_state_change = lambda device, health: self.transitions.append((device, health.online, health.error))
        self.source = Source(Config.model_validate(data), self.context)
        self.batches = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Run":
        await self.source.connect()
        self._task = asyncio.create_task(self._consume())
        return self

    async def _consume(self) -> None:
        async for batch in self.source.readings():
            self.batches.append(batch)

    async def __aexit__(self, *exc) -> None:
        await self.source.close()
        await asyncio.wait_for(self._task, 5)

    def of(self, device: str) -> list:
        return [b for b in self.batches if b.device == device]

    def values(self, device: str, metric: str) -> list:
        return [r for b in self.of(device) for r in b.readings if r.metric == metric]

    def errors(self, device: str, code: str) -> int:
        return self.context.errors[(device, code)]

    def online(self, device: str) -> bool:
        return self.context.devices[device].online

    async def wait_for(self, predicate, timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds; a predicate over data not there yet (an empty
        list indexed, a device not seen yet) counts as "not yet", not as a failure."""
        def holds() -> bool:
            try:
                return bool(predicate())
            except (IndexError, KeyError):
                return False

        deadline = time.monotonic() + timeout
        while not holds():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"errors={dict(self.context.errors)} devices={self.context.devices}")
            await asyncio.sleep(0.02)
