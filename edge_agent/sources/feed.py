"""The life cycle of a source whose own task produces batches (a subscription, a poller of a feed).

The agent reads ``readings()``; the source's task pushes batches into a bounded queue (the oldest go
first when the agent falls behind, counted as ``overflow`` for their device). ``connect()`` starts the
task and waits, bounded, for its first attempt to be over, so the devices have a state when it returns.
A task that ends with an exception ends ``readings()`` with it; ``close()`` cancels it.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

from edge_agent.sources.base import DeviceBatch, SourceContext

QUEUE_LIMIT = 10_000          # batches waiting for the agent


class BatchFeed:
    def __init__(self, context: SourceContext, limit: int = QUEUE_LIMIT):
        self.context = context
        self.attempted = asyncio.Event()      # the task sets it once its first attempt is over
        self._out: asyncio.Queue[DeviceBatch | None] = asyncio.Queue(limit)
        self._task: asyncio.Task | None = None

    async def start(self, run: Callable[[], Awaitable[None]], name: str, first_attempt_s: float) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(run(), name=name)
        self._task.add_done_callback(lambda _task: self.push(None))
        attempted = asyncio.ensure_future(self.attempted.wait())
        await asyncio.wait({attempted, self._task}, timeout=first_attempt_s, return_when=asyncio.FIRST_COMPLETED)
        attempted.cancel()

    async def batches(self) -> AsyncIterator[DeviceBatch]:
        while True:
            batch = await self._out.get()
            if batch is None:
                task = self._task
                if task is not None and task.done() and not task.cancelled() and task.exception():
                    raise task.exception()
                return
            yield batch

    def push(self, batch: DeviceBatch | None) -> None:
        """Queue a batch (None ends ``batches()``); a full queue drops its oldest batch, counted."""
        if self._out.full():
            dropped = self._out.get_nowait()
            if dropped is not None:
                self.context.count_error(dropped.device, "overflow")
        self._out.put_nowait(batch)

    async def stop_task(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
