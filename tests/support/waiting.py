"""Waiting for a condition, the one way tests here wait (never a fixed sleep followed by a count).

A predicate that cannot answer yet is "not yet", not a failure: a service still starting
(connection refused, HTTP errors), a just-restarted InfluxDB that answers a count with null
(``int + None`` → TypeError), a device not in a dict yet (KeyError), an empty result
(IndexError), a half-written file (ValueError, sqlite3.Error). At the deadline the error names
what was awaited and the last answer or exception seen.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

NOT_YET = (OSError, KeyError, IndexError, ValueError, TypeError, AttributeError, sqlite3.Error)


def wait_until(predicate, what: str = "condition", timeout: float = 30.0, interval: float = 0.05,
               context=lambda: ""):
    """The predicate's first truthy value; AssertionError naming ``what`` and the last value seen."""
    for answer in _answers(predicate, what, timeout, context):
        if answer:
            return answer
        time.sleep(interval)


async def wait_until_async(predicate, what: str = "condition", timeout: float = 30.0, interval: float = 0.05,
                           context=lambda: ""):
    """``wait_until`` for a test on the event loop: it sleeps with asyncio, so the loop keeps running."""
    for answer in _answers(predicate, what, timeout, context):
        if answer:
            return answer
        await asyncio.sleep(interval)


def _answers(predicate, what: str, timeout: float, context):
    """The predicate's answer at each try (None where it raised one of NOT_YET), until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last = answer = predicate()
        except NOT_YET as exc:
            last, answer = exc, None
        if not answer and time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){context()}")
        yield answer
