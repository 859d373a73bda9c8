"""A charger's websocket closing, as the rest of the source expects to see it whichever version
the charger speaks: a ConnectionError naming the charger, not the websockets library's exception."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from websockets.exceptions import ConnectionClosed


@contextmanager
def closed_as_connection_error(charger_id: str) -> Iterator[None]:
    try:
        yield
    except ConnectionClosed as exc:
        raise ConnectionError(f"charger {charger_id} disconnected") from exc
