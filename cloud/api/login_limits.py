"""Failed sign-ins limited per user name and per client address (``/token`` and ``/login``).

A sliding window per key: once ``max_failures_per_user`` failures for one user name, or
``max_failures_per_address`` from one address, fall within ``window_s``, further attempts
for that key are answered 429 with ``Retry-After`` until the oldest failure leaves the
window, whether the password is right or not (checking it would leak that it is). A
successful sign-in clears its user's failures, not the address's. Keys are bounded: the
oldest tracked key is forgotten beyond ``max_keys``, so a spray of made-up user names
cannot grow memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from cloud.config import LoginLimitConfig


class LoginLimiter:
    def __init__(self, config: LoginLimitConfig, clock=time.monotonic):
        self.config = config
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _limit(self, kind: str) -> int:
        return self.config.max_failures_per_user if kind == "user" else self.config.max_failures_per_address

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.config.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _keys(self, username: str, address: str) -> list[tuple[str, str]]:
        return [key for key in (("user", username), ("address", address)) if key[1]]

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds until this user name and address may try again; None when they may now."""
        now = self.clock()
        waits = []
        with self._lock:
            for key in self._keys(username, address):
                times = self._recent(key, now)
                if times is not None and len(times) >= self._limit(key[0]):
                    waits.append(self.config.window_s - (now - times[-self._limit(key[0])]))
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(username, address):
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = deque(maxlen=max(self.config.max_failures_per_user,
                                                                   self.config.max_failures_per_address))
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.config.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username), None)
