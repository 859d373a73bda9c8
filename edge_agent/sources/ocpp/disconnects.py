"""What both version handlers do with a charger's websocket: a closing seen as a ConnectionError
naming the charger (not the websockets library's exception), and incoming frames routed with one
parse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ocpp.charge_point import MessageType
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, unpack
from websockets.exceptions import ConnectionClosed


@contextmanager
def closed_as_connection_error(charger_id: str) -> Iterator[None]:
    try:
        yield
    except ConnectionClosed as exc:
        raise ConnectionError(f"charger {charger_id} disconnected") from exc


async def route_parsed_once(charge_point, raw_msg: str, unparsable) -> Call | None:
    """The ``ocpp`` library's ``route_message`` with the frame parsed once, not twice: a frame that
    is not OCPP-J goes to ``await unparsable(raw_msg, error)`` (the library would only log it), a
    CALL to the handlers (an OCPPError answered with a CALLERROR), answers to the waiting call.
    Returns the parsed message (None when unparsable)."""
    try:
        msg = unpack(raw_msg)
    except OCPPError as error:
        await unparsable(raw_msg, error)
        return None
    if msg.message_type_id == MessageType.Call:
        try:
            await charge_point._handle_call(msg)
        except OCPPError as error:
            await charge_point._send(msg.create_call_error(error).to_json())
    elif msg.message_type_id in (MessageType.CallResult, MessageType.CallError):
        charge_point._response_queue.put_nowait(msg)
    return msg
