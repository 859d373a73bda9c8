"""PIN sign-in for the nurse's page: attempt limits (lock-out) and server-side sessions.

The limiter follows the cloud's (``cloud/api/login_limits.py``, which the edge cannot import): a
sliding window of failures per nurse id and per client address; once a key has
``max_failures_*`` failures in ``window_s``, every attempt for it is refused (right PIN or not,
so the answer leaks nothing) until the oldest failure leaves the window. A successful sign-in
clears the nurse's failures, not the address's. Sessions are random tokens kept in memory only
(a gateway restart signs everyone out).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from edge_agent.sources.ble.page_config import LoginLimits

MAX_KEYS = 1000          # nurse ids and addresses tracked at most (a spray of made-up ids cannot grow memory)
MAX_SESSIONS = 200


class PinLimiter:
    def __init__(self, limits: LoginLimits, clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _limit(self, kind: str) -> int:
        return self.limits.max_failures_per_nurse if kind == "nurse" else self.limits.max_failures_per_address

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.limits.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    @staticmethod
    def _keys(nurse: str, address: str) -> list[tuple[str, str]]:
        return [key for key in (("nurse", nurse), ("address", address)) if key[1]]

    def retry_after(self, nurse: str, address: str) -> float | None:
        """Seconds until this nurse id and address may try again; None when they may now."""
        now = self.clock()
        waits = []
        for key in self._keys(nurse, address):
            times = self._recent(key, now)
            limit = self._limit(key[0])
            if times is not None and len(times) >= limit:
                waits.append(self.limits.window_s - (now - times[-limit]))
        return max(waits) if waits else None

    def failed(self, nurse: str, address: str) -> None:
        now = self.clock()
        for key in self._keys(nurse, address):
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=max(self.limits.max_failures_per_nurse,
                                                               self.limits.max_failures_per_address))
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, nurse: str) -> None:
        self._failures.pop(("nurse", nurse), None)


@dataclass
class Session:
    nurse: str
    expires: float


class Sessions:
    def __init__(self, ttl_s: float, clock=time.monotonic):
        self.ttl_s = ttl_s
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, nurse: str) -> str:
        token = secrets.token_urlsafe(32)
        self._sessions[token] = Session(nurse, self.clock() + self.ttl_s)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return token

    def nurse_of(self, token: str | None) -> str | None:
        session = self._sessions.get(token) if token else None
        if session is None:
            return None
        if session.expires <= self.clock():
            del self._sessions[token]
            return None
        return session.nurse

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
