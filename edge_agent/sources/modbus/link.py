"""One connection to one Modbus endpoint, used by one request at a time.

An endpoint is a TCP server (host:port), an RTU-over-TCP gateway (host:port) or a
serial port. Every device behind it shares this link. Whoever talks on it holds
``lock`` for the whole exchange (the endpoint runner for one device's poll, a write
command for its write and read-back), so requests never interleave on a bus or gateway.
Errors are classified into the codes the source counts. Plain Modbus TCP goes through
the small client in ``tcp.py`` (the hot path; writes are encoded with pymodbus's PDU
classes and sent through it); RTU and RTU-over-TCP through pymodbus.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import WriteSingleCoilRequest, WriteSingleCoilResponse
from pymodbus.pdu.register_message import (WriteMultipleRegistersRequest, WriteMultipleRegistersResponse,
                                           WriteSingleRegisterRequest, WriteSingleRegisterResponse)

from device_profiles.schema import RegisterFunction
from edge_agent.sources.modbus import tcp
from edge_agent.sources.modbus.config import DEFAULT_TCP_PORT, DeviceBase, SerialSettings, TransportConfig

FUNCTION_CODES = {RegisterFunction.COIL: 1, RegisterFunction.DISCRETE: 2, RegisterFunction.HOLDING: 3,
                  RegisterFunction.INPUT: 4}

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure",
    5: "acknowledge", 6: "device busy", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class DeviceError(Exception):
    """A failed request for one device; the link itself is still usable."""

    code = "device_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class DeviceTimeout(DeviceError):
    code = "timeout"


class DeviceException(DeviceError):
    """The device answered with a Modbus exception response."""

    def __init__(self, exception_code: int, function: RegisterFunction, address: int, count: int,
                 action: str = "reading"):
        name = EXCEPTION_NAMES.get(exception_code, "unknown")
        super().__init__(f"exception {exception_code} ({name}) {action} {function} {address}+{count}",
                         code=f"exception_{exception_code}")
        self.exception_code = exception_code


class LinkDown(Exception):
    """The connection is gone (refused, closed by the peer, serial port missing)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    transport: str
    host: str = ""
    port: int = 0
    serial: SerialSettings | None = None

    @property
    def key(self) -> tuple:
        return (self.transport, self.serial.port if self.serial else self.host, self.port)

    def __str__(self) -> str:
        if self.serial:
            return f"{self.serial.port} (rtu {self.serial.baudrate} {self.serial.bytesize}{self.serial.parity}{self.serial.stopbits})"
        return f"{self.host}:{self.port} ({self.transport})"


_RESPONSES = {5: WriteSingleCoilResponse, 6: WriteSingleRegisterResponse, 16: WriteMultipleRegistersResponse}


def write_request(function: RegisterFunction, address: int, values: list, unit: int) -> ModbusPDU:
    """The pymodbus request PDU of a write: FC5 for a coil, FC6 for one register, FC16 for more."""
    if function is RegisterFunction.COIL and len(values) == 1:
        return WriteSingleCoilRequest(address=address, bits=[bool(values[0])], dev_id=unit)
    if function is RegisterFunction.HOLDING and len(values) == 1:
        return WriteSingleRegisterRequest(address=address, registers=list(values), dev_id=unit)
    if function is RegisterFunction.HOLDING and 1 < len(values) <= 123:
        return WriteMultipleRegistersRequest(address=address, registers=list(values), dev_id=unit)
    raise ValueError(f"cannot write {len(values)} value(s) to {function}")


def _echoes(request: ModbusPDU, response: ModbusPDU) -> bool:
    """A write response repeats the address and the value (FC5/6) or the count (FC16)."""
    if response.function_code != request.function_code or response.address != request.address:
        return False
    if request.function_code == 5:
        return bool(response.bits) and bool(response.bits[0]) == bool(request.bits[0])
    if request.function_code == 6:
        return list(response.registers) == list(request.registers)
    return response.count == request.count


def endpoint_of(config: TransportConfig, device: DeviceBase) -> Endpoint:
    if config.transport == "rtu":
        return Endpoint("rtu", serial=config.serial)
    return Endpoint(config.transport, host=device.host or config.host or "",
                    port=device.port or config.port or DEFAULT_TCP_PORT)


def group_by_endpoint(config: TransportConfig, devices: list) -> dict[Endpoint, list]:
    """Devices grouped by the connection they share, in config order."""
    groups: dict[tuple, tuple[Endpoint, list]] = {}
    for device in devices:
        endpoint = endpoint_of(config, device)
        groups.setdefault(endpoint.key, (endpoint, []))[1].append(device)
    return {endpoint: members for endpoint, members in groups.values()}


class ModbusLink:
    def __init__(self, endpoint: Endpoint, timeout_s: float, retries: int, pause_s: float,
                 log: logging.Logger):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.retries = retries
        self.pause_s = pause_s
        self.log = log
        self.requests = 0
        self._client: tcp.ModbusTcpClient | AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._last_request_end = 0.0
        self.lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _new_client(self):
        if self.endpoint.transport == "tcp":
            return tcp.ModbusTcpClient(self.endpoint.host, self.endpoint.port, self.timeout_s, self.retries)
        common = dict(timeout=self.timeout_s, retries=self.retries, reconnect_delay=0, name=str(self.endpoint))
        if self.endpoint.transport == "rtu":
            serial = self.endpoint.serial
            return AsyncModbusSerialClient(serial.port, framer=FramerType.RTU, baudrate=serial.baudrate,
                                           parity=serial.parity, stopbits=serial.stopbits,
                                           bytesize=serial.bytesize, **common)
        framer = FramerType.RTU if self.endpoint.transport == "rtu_over_tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(self.endpoint.host, port=self.endpoint.port, framer=framer, **common)

    async def connect(self) -> bool:
        """Open a fresh connection; False (never an exception) when that fails."""
        self.close()
        client = self._new_client()
        if isinstance(client, tcp.ModbusTcpClient):
            if not await client.connect():
                self.log.debug("connect %s failed", self.endpoint)
                return False
            self._client = client
            self._set_nodelay()
            return True
        # Devices behind a gateway may time out for good while their neighbours answer;
        # the runner decides when a link is dead, not pymodbus's no-response counter.
        client.set_max_no_responses(1_000_000)
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:      # e.g. a serial port that does not exist
            self.log.debug("connect %s failed: %s", self.endpoint, exc)
            ok = False
        if not ok:
            client.close()
            return False
        self._client = client
        self._set_nodelay()
        return True

    def _socket(self) -> socket.socket | None:
        if self._client is None:
            return None
        if isinstance(self._client, tcp.ModbusTcpClient):
            return self._client.socket
        transport = getattr(self._client.ctx, "transport", None)
        return transport.get_extra_info("socket") if transport else None

    def _set_nodelay(self) -> None:
        sock = self._socket()
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def nodelay(self) -> bool | None:
        """TCP_NODELAY of the live socket (None for serial links)."""
        sock = self._socket()
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def _turn(self):
        """The live client, once the quiet time after the previous request has passed."""
        client = self._client
        if client is None or not client.connected:
            raise LinkDown(f"not connected to {self.endpoint}")
        if self.pause_s:
            wait = self._last_request_end + self.pause_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self.requests += 1
        return client

    async def read(self, function: RegisterFunction, address: int, count: int, unit: int) -> list:
        """Values of one block: ints for registers, bools for coils/discrete inputs."""
        client = await self._turn()
        what = f"reading {function} {address}+{count}"
        if isinstance(client, tcp.ModbusTcpClient):
            return await self._read_tcp(client, function, address, count, unit, what)
        if function is RegisterFunction.HOLDING:
            call = lambda: client.read_holding_registers(address, count=count, device_id=unit)  # noqa: E731
        elif function is RegisterFunction.INPUT:
            call = lambda: client.read_input_registers(address, count=count, device_id=unit)  # noqa: E731
        elif function is RegisterFunction.COIL:
            call = lambda: client.read_coils(address, count=count, device_id=unit)  # noqa: E731
        else:
            call = lambda: client.read_discrete_inputs(address, count=count, device_id=unit)  # noqa: E731
        response = await self._via_pymodbus(client, call, unit, what)
        if response.isError():
            raise DeviceException(response.exception_code, function, address, count)
        values = response.bits[:count] if function.is_bit else response.registers
        if len(values) != count:
            raise DeviceError(f"unit {unit} returned {len(values)} values for {function} {address}+{count}",
                              code="bad_response")
        return values

    async def write(self, function: RegisterFunction, address: int, values: list, unit: int) -> None:
        """Write one coil (FC5), one holding register (FC6) or several (FC16); raises like ``read``.

        The caller holds ``lock`` (and usually reads the register back under it).
        """
        request = write_request(function, address, values, unit)
        what = f"writing {function} {address}+{len(values)} (FC{request.function_code})"
        client = await self._turn()
        if isinstance(client, tcp.ModbusTcpClient):
            response = await self._request_tcp(client, request, unit, what)
        else:
            response = await self._via_pymodbus(client, lambda: client.execute(False, request), unit, what)
        if response.isError():
            raise DeviceException(response.exception_code, function, address, len(values), action="writing")
        if not _echoes(request, response):
            raise DeviceError(f"unit {unit} answered {what} with {response}", code="bad_response")

    async def _via_pymodbus(self, client, call: Callable[[], Awaitable[ModbusPDU]], unit: int,
                            what: str) -> ModbusPDU:
        try:
            return await call()
        except ConnectionException as exc:
            raise LinkDown(f"{self.endpoint}: {exc}") from None
        except ModbusIOException as exc:
            if not client.connected:
                raise LinkDown(f"{self.endpoint}: connection lost") from None
            if "No response" in str(exc):
                raise DeviceTimeout(f"no response from unit {unit} within {self.timeout_s}s "
                                    f"({self.retries} retries) {what}") from None
            raise DeviceError(f"bad response from unit {unit}: {exc}", code="bad_response") from None
        except ModbusException as exc:
            raise DeviceError(f"bad response from unit {unit}: {exc}", code="bad_response") from None
        finally:
            self._last_request_end = time.monotonic()

    async def _read_tcp(self, client: tcp.ModbusTcpClient, function: RegisterFunction, address: int, count: int,
                        unit: int, what: str) -> list:
        try:
            values = await client.read(FUNCTION_CODES[function], address, count, unit)
        except ConnectionError as exc:
            raise LinkDown(f"{self.endpoint}: {exc}") from None
        except tcp.NoResponse:
            raise DeviceTimeout(f"no response from unit {unit} within {self.timeout_s}s "
                                f"({self.retries} retries) {what}") from None
        except tcp.ExceptionResponse as exc:
            raise DeviceException(exc.code, function, address, count) from None
        except tcp.BadResponse as exc:
            raise DeviceError(f"bad response from unit {unit}: {exc}", code="bad_response") from None
        finally:
            self._last_request_end = time.monotonic()
        if function.is_bit:
            values = values[:count]
        if len(values) != count:
            raise DeviceError(f"unit {unit} returned {len(values)} values for {function} {address}+{count}",
                              code="bad_response")
        return values

    async def _request_tcp(self, client: tcp.ModbusTcpClient, request: ModbusPDU, unit: int,
                           what: str) -> ModbusPDU:
        """``request`` encoded by pymodbus, sent through our client; the response decoded by pymodbus."""
        code = request.function_code
        try:
            pdu = await client.request(unit, bytes([code]) + request.encode())
        except ConnectionError as exc:
            raise LinkDown(f"{self.endpoint}: {exc}") from None
        except tcp.NoResponse:
            raise DeviceTimeout(f"no response from unit {unit} within {self.timeout_s}s "
                                f"({self.retries} retries) {what}") from None
        finally:
            self._last_request_end = time.monotonic()
        if len(pdu) >= 2 and pdu[0] == code | 0x80:
            return ExceptionResponse(code, pdu[1])
        response = _RESPONSES[code]()
        try:
            if pdu[0] != code:
                raise ValueError(f"function {pdu[0]}")
            response.decode(pdu[1:])
        except (ValueError, struct.error) as exc:
            raise DeviceError(f"bad response from unit {unit} {what}: {exc}", code="bad_response") from None
        return response

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
