"""One scan for all the kit's devices that are not connected.

The link serializes scans and connects (one radio). Six sessions each scanning for their own
device would queue behind each other: a cuff that advertises for a few seconds after a
measurement could be missed while the gateway looks for a sleeping scale. So the sessions
register what they wait for here, and one loop scans in short windows for any of them; a
match wakes the session that wanted it. Between windows a waiting connect gets the radio
(the link's lock is first come, first served). Nothing outside the allow-list ever matches.

The scanner is also the radio's watchdog: a dead transport (a USB dongle pulled, the HCI
server gone) does not always raise; its HCI commands just go unanswered until the stack's
timeout, so a scan window takes far longer than asked. A window that stalls, or several
failed scans in a row, set ``lost``; the source then closes the link and opens it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from edge_agent.sources.ble.link import Advert, GattLink, LinkError

SCAN_WINDOW_S = 2.0          # a connect waits at most this long for the radio
ADAPTER_RETRY_S = 2.0
STALL_S = 5.0                # a scan window this much longer than asked: the radio stopped answering
ADAPTER_FAILURES_LOST = 3    # this many failed scans in a row: the radio is gone


class Scanner:
    def __init__(self, link: GattLink, log: logging.Logger, on_adapter_error: Callable[[LinkError], None],
                 window_s: float = SCAN_WINDOW_S):
        self.link = link
        self.log = log
        self.window_s = window_s
        self._on_adapter_error = on_adapter_error
        self._wanted: dict[str, tuple[Callable[[Advert], bool], asyncio.Future]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.lost = asyncio.Event()
        self._failures = 0
        self._connects = 0           # connects started so far: a window they overlap may wait for the radio
        self._connecting = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ble-scanner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def find(self, device_id: str, match: Callable[[Advert], bool], timeout_s: float) -> Advert | None:
        """The next advertisement ``match`` accepts, or None after ``timeout_s``."""
        future = asyncio.get_running_loop().create_future()
        self._wanted[device_id] = (match, future)
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            return None
        finally:
            if self._wanted.get(device_id, (None, None))[1] is future:
                del self._wanted[device_id]

    async def connect(self, address: str, timeout_s: float):
        """``link.connect``, known to the watchdog (a scan waiting behind a connect is not a stall)."""
        self._connects += 1
        self._connecting += 1
        try:
            return await self.link.connect(address, timeout_s)
        finally:
            self._connecting -= 1

    def _failed(self, why: str, at_once: bool = False) -> None:
        self._failures += 1
        if at_once or self._failures >= ADAPTER_FAILURES_LOST:
            self.log.warning("BLE radio lost (%s)", why)
            self.lost.set()

    def _matches(self, advert: Advert) -> bool:
        return any(match(advert) for match, future in self._wanted.values() if not future.done())

    async def _run(self) -> None:
        while True:
            if not any(not future.done() for _, future in self._wanted.values()):
                self._wake.clear()
                await self._wake.wait()
                continue
            started, connects = time.monotonic(), self._connects
            try:
                advert = await self.link.scan(self._matches, self.window_s)
            except LinkError as exc:
                self._on_adapter_error(exc)
                self._failed(f"{exc.code}: {exc.message}")
                await asyncio.sleep(ADAPTER_RETRY_S)
                continue
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise
                # not our cancellation: a stack that leaks the cancelled wait of an empty scan window
                advert = None
            except Exception as exc:
                self.log.warning("BLE scan failed; scanning again", exc_info=True)
                self._failed(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(ADAPTER_RETRY_S)
                continue
            stalled = time.monotonic() - started > self.window_s + STALL_S
            if stalled and connects == self._connects and not self._connecting:
                self._on_adapter_error(LinkError("adapter", "the radio stopped answering (a scan window stalled)"))
                self._failed("stalled scan", at_once=True)
                continue
            self._failures = 0
            if advert is None:
                await asyncio.sleep(0)       # let a queued connect take the radio
                continue
            for device_id, (match, future) in list(self._wanted.items()):
                if not future.done() and match(advert):
                    future.set_result(advert)
                    break
