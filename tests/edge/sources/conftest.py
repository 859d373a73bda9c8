"""Real Modbus peers for the edge source tests, and a small asyncio test runner.

``async def`` tests run in a fresh event loop (the ``aio_loop`` fixture when the test
asks for it, so fixtures and the test share one loop). Servers are real pymodbus
servers on free loopback ports (or on linked pseudo-terminals for RTU), started by
the ``modbus_server`` fixture and stopped after the test whatever its outcome.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import time
import tty
from collections import Counter
from dataclasses import dataclass, field

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.sources.base import SourceContext
from tests.support.waiting import wait_until_async

FC_READ = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


# ------------------------------------------------------------------ asyncio tests

@pytest.fixture
def aio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if not inspect.iscoroutinefunction(pyfuncitem.obj) or pyfuncitem.get_closest_marker("anyio"):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    loop = pyfuncitem.funcargs.get("aio_loop")
    if loop is None:
        asyncio.run(pyfuncitem.obj(**kwargs))
    else:
        loop.run_until_complete(pyfuncitem.obj(**kwargs))
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ Modbus peer

@dataclass
class UnitMemory:
    """What one unit serves. Registers are 16-bit words by 0-based protocol address."""

    holding: dict[int, int] = field(default_factory=dict)
    input: dict[int, int] = field(default_factory=dict)
    coil: dict[int, bool] = field(default_factory=dict)
    discrete: dict[int, bool] = field(default_factory=dict)

    def put(self, function: str, address: int, words: list[int]) -> None:
        table = getattr(self, function)
        for i, word in enumerate(words):
            table[address + i] = word


def _dense(table: dict[int, int]) -> list[int]:
    size = max(table, default=0) + 1
    return [table.get(i, 0) for i in range(size)]


def _dense_bits(table: dict[int, bool]) -> list[bool]:
    size = max(table, default=0) + 1
    size += -size % 16
    return [bool(table.get(i, False)) for i in range(size)]


class ModbusPeer:
    """A real pymodbus server for several units, with request counting and fault knobs.

    ``memory[unit]`` may be changed while serving: every read copies the current
    words of the requested range into the server's registers (pymodbus ``action``).
    Units in ``silent`` get no answer (their responses are dropped on the wire).
    ``requests`` counts read requests per (unit, function code) as the server saw them.
    An address outside what a unit serves answers exception 2 (illegal data address).
    """

    def __init__(self, memory: dict[int, UnitMemory], *, framer: FramerType = FramerType.SOCKET,
                 serial_port: str | None = None, port: int | None = None):
        self.memory = memory
        self.framer = framer
        self.serial_port = serial_port
        self.port = port or (0 if serial_port else free_port())
        self.silent: set[int] = set()
        self.requests: Counter = Counter()
        self.request_log: list[tuple[float, int, int, int, int]] = []   # (monotonic, unit, fc, address, count)
        self.server = None

    def _device(self, unit: int, mem: UnitMemory) -> SimDevice:
        async def refresh(function_code, start_address, address, count, registers, set_values):
            table = mem.holding if function_code == 3 else mem.input if function_code == 4 else None
            if table is not None:
                for i in range(count):
                    registers[address - start_address + i] = table.get(address + i, 0)
            return None

        blocks = (
            [SimData(0, values=_dense_bits(mem.coil), datatype=DataType.BITS)],
            [SimData(0, values=_dense_bits(mem.discrete), datatype=DataType.BITS)],
            [SimData(0, values=_dense(mem.holding), datatype=DataType.REGISTERS)],
            [SimData(0, values=_dense(mem.input), datatype=DataType.REGISTERS)],
        )
        return SimDevice(id=unit, simdata=blocks, action=refresh)

    def _trace_pdu(self, sending: bool, pdu):
        if not sending:
            self.requests[(pdu.dev_id, pdu.function_code)] += 1
            self.request_log.append((time.monotonic(), pdu.dev_id, pdu.function_code,
                                     getattr(pdu, "address", -1), getattr(pdu, "count", -1)))
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending and data:
            unit = data[0] if self.framer is FramerType.RTU else data[6]
            if unit in self.silent:
                return b""
        return data

    def count(self, unit: int, function: str) -> int:
        return self.requests[(unit, FC_READ[function])]

    async def start(self) -> "ModbusPeer":
        devices = [self._device(unit, mem) for unit, mem in self.memory.items()]
        trace = dict(trace_pdu=self._trace_pdu, trace_packet=self._trace_packet)
        if self.serial_port:
            self.server = ModbusSerialServer(devices, framer=self.framer, port=self.serial_port,
                                             baudrate=19200, **trace)
        else:
            self.server = ModbusTcpServer(devices, framer=self.framer, address=("127.0.0.1", self.port), **trace)
        await self.server.serve_forever(background=True)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None
            await asyncio.sleep(0.05)       # let the closed sockets settle before a restart


@pytest.fixture
def modbus_server(aio_loop):
    """Factory: ``peer = await modbus_server({unit: UnitMemory(...)}, framer=..., serial_port=...)``."""
    peers: list[ModbusPeer] = []

    async def start(memory: dict[int, UnitMemory], **kwargs) -> ModbusPeer:
        peer = ModbusPeer(memory, **kwargs)
        peers.append(peer)
        return await peer.start()

    start.UnitMemory = UnitMemory
    yield start
    for peer in peers:
        aio_loop.run_until_complete(peer.stop())


# ------------------------------------------------------------------ serial line

class LinkedPtys:
    """Two pseudo-terminals wired back to back, like a null-modem RS-485 adapter pair.

    Bytes written to ``a_path`` come out of ``b_path`` and vice versa; a relay in the
    event loop copies between the two master sides.
    """

    def __init__(self):
        self._a_master, self._a_slave = os.openpty()
        self._b_master, self._b_slave = os.openpty()
        for fd in (self._a_slave, self._b_slave):
            tty.setraw(fd)
        self.a_path = os.ttyname(self._a_slave)
        self.b_path = os.ttyname(self._b_slave)
        self.relayed = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> "LinkedPtys":
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._a_master, self._copy, self._a_master, self._b_master)
        self._loop.add_reader(self._b_master, self._copy, self._b_master, self._a_master)
        return self

    def _copy(self, source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except OSError:
            return
        self.relayed += len(data)
        os.write(target, data)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._a_master)
            self._loop.remove_reader(self._b_master)
        for fd in (self._a_master, self._b_master, self._a_slave, self._b_slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def linked_ptys(aio_loop):
    pair = LinkedPtys()
    yield pair
    pair.close()


# ------------------------------------------------------------------ running a source

def make_context(name: str = "test", profile_dirs=()) -> SourceContext:
    context = SourceContext(source_name=name, log=logging.getLogger(f"test.source.{name}"),
                            profile_dirs=list(profile_dirs))
    context.transitions = []
    context.on_state_change = lambda device, health: context.transitions.append((device, health.online, health.error))
    return context


class SourceRun:
    """A started source whose batches are collected in the background."""

    def __init__(self, source):
        self.source = source
        self.batches = []
        self.arrivals: list[float] = []     # monotonic arrival time of each batch
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "SourceRun":
        await self.source.connect()
        self._task = asyncio.create_task(self._consume())
        return self

    async def _consume(self) -> None:
        async for batch in self.source.readings():
            self.arrivals.append(time.monotonic())
            self.batches.append(batch)

    def of(self, device: str) -> list:
        return [b for b in self.batches if b.device == device]

    async def wait_for(self, predicate, timeout: float, what: str) -> None:
        await wait_until_async(predicate, what, timeout=timeout, interval=0.01)

    async def __aexit__(self, *exc) -> None:
        await self.source.close()
        await asyncio.wait_for(self._task, 5)


@pytest.fixture
def source_tools():
    """``make_context`` and ``SourceRun`` for tests that drive a source."""
    class Tools:
        context = staticmethod(make_context)
        run = SourceRun
    return Tools


# ---------------------------------------------------------------- OPC UA tests (anyio-marked)

@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def peer():
    """Two OPC UA meters M1 and M2 on a real asyncua server, values changing every 50 ms."""
    from tests.edge.sources.opcua_peer import MeterPeer

    meters = MeterPeer(("M1", "M2"), update_s=0.05)
    await meters.start()
    yield meters
    await meters.stop()
