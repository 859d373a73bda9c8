"""Waiting for a condition, the one way tests here wait (never a fixed sleep followed by a count).

A predicate that cannot answer yet is "not yet", not a failure: a service still starting
(connection refused, HTTP errors), a just-restarted InfluxDB that answers a count with null
(``int + None`` → TypeError), a device not in a dict yet (KeyError), an empty result
(IndexError), a half-written file (ValueError, sqlite3.Error). At the deadline the error names
what was awaited and the last answer or exception seen.
"""

from __future__ import annotations

import sqlite3
import time

NOT_YET = (OSError, KeyError, IndexError, ValueError, TypeError, AttributeError, sqlite3.Error)


def wait_until(predicate, what: str = "condition", timeout: float = 30.0, interval: float = 0.05,
               context=lambda: ""):
    """The predicate's first truthy value; AssertionError naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except NOT_YET as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){context()}")
        time.sleep(interval)
