"""Exponential back-off with jitter: the one helper behind every reconnect and retry loop.

    backoff = Backoff(initial_s=1.0, max_s=60.0)
    while not connect():
        time.sleep(backoff.next())      # 0.5..1, 1..2, 2..4, ... 30..60, 30..60 s
    backoff.reset()                     # after a success: start again from initial_s

The n-th delay (n = 1, 2, ...) is drawn from a ceiling ``min(initial_s * factor**(n-1), max_s)``
with **equal jitter** (``jitter=0.5``, the default): uniformly in ``[ceiling/2, ceiling]``.
In general the delay lies in ``(ceiling * (1 - jitter), ceiling]``: ``jitter=0`` gives the
plain deterministic doubling, ``jitter=1`` "full jitter" (anything in ``(0, ceiling]``).

Why equal jitter and not full jitter: full jitter spreads a crowd best, but a single client
may then retry almost at once many times in a row (a delay near 0 is as likely as any
other), which defeats the back-off against a server that is down; equal jitter keeps at
least half the exponential delay while still spreading a crowd of agents that lost the
same broker over half of each step, so they do not reconnect in lockstep. A delay is
never 0 when ``initial_s > 0`` (the random draw is in ``[0, 1)``, the delay is
``ceiling * (1 - jitter * draw)``) and never above ``max_s``.

Each instance draws from its own ``random.Random`` (seeded from the OS unless one is
passed in), so two processes started at the same moment do not share a sequence, and a
test can pass ``random=random.Random(seed)`` to get reproducible delays.

``delay_for(n)`` is the n-th delay without counting it, for retries whose attempt count is kept
elsewhere (a database row, a queued delivery). ``PahoReconnect`` makes paho's own reconnect loop
(``loop_start`` / ``loop_forever``) wait these delays instead of paho's unjittered doubling.
"""

from __future__ import annotations

import random as _random


class Backoff:
    """Delays for successive retries: exponential from ``initial_s``, capped at ``max_s``, jittered."""

    def __init__(self, initial_s: float, max_s: float, factor: float = 2.0, jitter: float = 0.5,
                 random: _random.Random | None = None):
        if initial_s < 0:
            raise ValueError(f"initial_s must be >= 0, not {initial_s}")
        if max_s < initial_s:
            raise ValueError(f"max_s ({max_s}) must be at least initial_s ({initial_s})")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, not {factor}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {jitter}")
        self.initial_s = float(initial_s)
        self.max_s = float(max_s)
        self.factor = float(factor)
        self.jitter = float(jitter)
        self._random = random if random is not None else _random.Random()
        self._attempts = 0
        self._ceiling = 0.0

    @property
    def attempts(self) -> int:
        """How many delays ``next()`` handed out since the start or the last ``reset()``."""
        return self._attempts

    @property
    def ceiling_s(self) -> float:
        """The un-jittered delay of the last ``next()`` (0 before the first): the most it could have been."""
        return self._ceiling

    def next(self) -> float:
        """The delay to wait now, in seconds; each call counts as one more attempt."""
        self._attempts += 1
        self._ceiling = self.ceiling_for(self._attempts)
        return self._jittered(self._ceiling)

    def reset(self) -> None:
        """After a success: the next delay starts again from ``initial_s``."""
        self._attempts = 0
        self._ceiling = 0.0

    def ceiling_for(self, attempt: int) -> float:
        """The un-jittered delay after the ``attempt``-th failure (1, 2, ...; below 1 counts as 1)."""
        ceiling = self.initial_s
        for _ in range(max(attempt, 1) - 1):
            if ceiling >= self.max_s or ceiling == 0 or self.factor == 1:
                break                      # no overflow, however large ``attempt`` is
            ceiling *= self.factor
        return min(ceiling, self.max_s)

    def delay_for(self, attempt: int) -> float:
        """The jittered delay after the ``attempt``-th failure; unlike ``next()`` it counts nothing."""
        return self._jittered(self.ceiling_for(attempt))

    def _jittered(self, ceiling: float) -> float:
        return ceiling * (1.0 - self.jitter * self._random.random())

    def __repr__(self) -> str:
        return (f"Backoff(initial_s={self.initial_s}, max_s={self.max_s}, factor={self.factor}, "
                f"jitter={self.jitter}, attempts={self._attempts})")


class PahoReconnect:
    """Paho's own reconnect loop waiting :class:`Backoff`'s delays.

    Paho has no hook for a jittered delay, but it reads the delay it was last given right before
    each wait, and ``on_connect_fail`` / ``on_disconnect`` run on its thread just before that wait:
    call ``before_wait(client)`` from both (it sets min = max = the next delay) and ``reset()`` on a
    successful connect. Any object with paho's ``reconnect_delay_set`` will do (paho is not imported).
    """

    def __init__(self, client, initial_s: float, max_s: float, random: _random.Random | None = None):
        self.backoff = Backoff(initial_s, max_s, random=random)
        client.reconnect_delay_set(min_delay=initial_s, max_delay=max_s)

    def before_wait(self, client) -> None:
        delay = self.backoff.next()
        client.reconnect_delay_set(min_delay=delay, max_delay=delay)

    def reset(self) -> None:
        self.backoff.reset()
