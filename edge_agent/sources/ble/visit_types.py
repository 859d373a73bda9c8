"""What the VisitBook hands out: visits, held and confirmed readings, its errors, and the change
feed the nurse's page long-polls (split from ``visits.py``; import them from there)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from edge_agent.sources.base import wait_event
from edge_agent.sources.ble.measurement import Measurement


class VisitError(Exception):
    """A request the book refuses. ``code``: not_found, state, active_visit, pending_readings,
    not_scheduled, bad_pseudonym. ``pending`` lists the readings that block ending a visit."""

    def __init__(self, code: str, message: str, pending: list["HeldReading"] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.pending = pending or []


@dataclass(frozen=True)
class Visit:
    id: str
    pseudonym: str
    display_name: str
    nurse: str
    started_ms: int
    ended_ms: int | None = None
    ended_by: str | None = None
    scheduled_time: str = ""
    unscheduled: bool = False

    @property
    def active(self) -> bool:
        return self.ended_ms is None


@dataclass(frozen=True)
class HeldReading:
    id: str
    device: str
    profile: str
    measurement: Measurement
    ts_ms: int
    time_source: str
    state: str                 # unassigned, pending, confirmed, forwarded, discarded
    visit_id: str | None
    pseudonym: str | None
    received_ms: int


@dataclass(frozen=True)
class ConfirmedReading:
    id: str
    device: str
    profile: str
    measurement: Measurement
    ts_ms: int
    time_source: str
    visit_id: str
    pseudonym: str


class ChangeFeed:
    """A version number bumped on every change; any number of waiters (the page's long polls)."""

    def __init__(self) -> None:
        self.version = 0
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        self.version += 1
        self.wake()

    def wake(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, since: int, timeout: float) -> int:
        """The version once it differs from ``since`` (or after ``timeout`` or a ``wake``)."""
        if self.version == since:
            if self._event is None:
                self._event = asyncio.Event()
            await wait_event(self._event, timeout)
        return self.version
