"""Commands from the cloud: executed at most once, answered with results that are not lost.

A command arrives on ``hinode/v1/{site}/{agent}/cmd/{name}`` (QoS 1; the agent's persistent
session keeps it while the agent is offline). The processor:

1. decodes it (a payload that is not a Command is counted; if it names an id, that id is
   answered ``rejected``);
2. looks its id up in the **ledger**, a small SQLite file: an id seen before is not executed
   again, its last result is sent again instead (the broker redelivers a command whose PUBACK
   was lost, and the cloud may retry);
3. answers ``expired`` when it arrives after ``expires_ts``;
4. records ``accepted`` on disk *before* executing, so a crash during execution cannot run
   it twice (after a restart that id is answered ``failed``: "agent restarted while executing");
5. resolves the target (a source name, or a device id of one of the sources) and calls the
   source's optional ``handle_command``; no such target, or a source without it → ``rejected``.

Every status change is a row in the ledger's ``results`` table, sent on the result topic
when an ingest is listening and deleted from the send list on PUBACK; results not yet
acknowledged when the connection drops go out again after the reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hinode import contract
from hinode.contract import Command, CommandResult, CommandStatus, ContractError
from edge_agent.sources.base import CommandOutcome, now_ms

log = logging.getLogger("edge_agent.commands")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY,
    command_id TEXT NOT NULL,
    payload BLOB NOT NULL
);
"""


class CommandLedger:
    """Which command ids this agent has seen (kept ``keep_days``), and results not yet delivered.

    SQLite with ``synchronous=FULL``: a command is rare, and "at most once across restarts"
    needs its id on disk before anything is done. Calls are short and run in a worker thread.
    """

    def __init__(self, path: Path, keep_days: int):
        self.path = Path(path)
        self.keep_ms = keep_days * 86_400_000
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> list[str]:
        """Open the file; ids that were accepted but never finished (the agent died) are returned."""
        return await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> list[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        db.execute("DELETE FROM commands WHERE received_ms < ?", (now_ms() - self.keep_ms,))
        self._db = db
        return [row[0] for row in db.execute("SELECT id FROM commands WHERE status = 'accepted'")]

    async def close(self) -> None:
        if self._db is not None:
            await asyncio.to_thread(self._db.close)
            self._db = None

    async def _run(self, fn, *args):
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    async def seen(self, command_id: str) -> str | None:
        """The recorded status of an id, or None if it is new."""
        return await self._run(self._seen_sync, command_id)

    def _seen_sync(self, command_id: str) -> str | None:
        row = self._db.execute("SELECT status FROM commands WHERE id = ?", (command_id,)).fetchone()
        return row[0] if row else None

    async def record(self, command: Command | None, command_id: str, status: CommandStatus,
                     result: CommandResult) -> int:
        """Store the id's status and queue its result for sending, in one transaction."""
        return await self._run(self._record_sync, command, command_id, status, result)

    def _record_sync(self, command, command_id, status, result) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO commands (id, name, target, received_ms, status) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT(id) DO UPDATE SET status = excluded.status",
                       (command_id, command.name if command else "", command.target if command else "",
                        now_ms(), str(status)))
            cursor = db.execute("INSERT INTO results (command_id, payload) VALUES (?, ?)",
                                (command_id, contract.encode(result)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return cursor.lastrowid

    async def pending_results(self, limit: int = 100) -> list[tuple[int, bytes]]:
        return await self._run(lambda: self._db.execute(
            "SELECT seq, payload FROM results ORDER BY seq LIMIT ?", (limit,)).fetchall())

    async def delivered(self, seq: int) -> None:
        await self._run(lambda: self._db.execute("DELETE FROM results WHERE seq = ?", (seq,)))

    async def result_queued(self, command_id: str) -> bool:
        """A result of this id is still waiting to be delivered."""
        row = await self._run(lambda: self._db.execute(
            "SELECT 1 FROM results WHERE command_id = ? LIMIT 1", (command_id,)).fetchone())
        return row is not None


@dataclass
class Target:
    """What a command's target resolved to: the live source object and, for a device, its id."""

    source: object
    source_name: str
    device: str | None


def _duplicate_message(previous: str) -> str:
    """What a repeated id is answered: an operator reads it next to the command's outcome."""
    if previous == CommandStatus.DONE:
        return "duplicate id: executed once already, not repeated"
    if previous == CommandStatus.ACCEPTED:
        return "duplicate id: being executed, not started again"
    return f"duplicate id: already answered {previous}, not repeated"


class CommandProcessor:
    def __init__(self, site: str, agent: str, ledger: CommandLedger, resolve: Callable[[str], Target | None],
                 timeout_s: float):
        self.site, self.agent = site, agent
        self.ledger = ledger
        self.resolve = resolve
        self.timeout_s = timeout_s
        self.counts: Counter[str] = Counter()      # by outcome: done, failed, rejected, expired, duplicate, invalid
        self.results_wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        for command_id in await self.ledger.open():
            log.warning("command %s was being executed when the agent stopped; answering failed", command_id)
            await self._finish(None, command_id, CommandOutcome.failed(
                "agent restarted while executing; the command was not repeated"))

    def submit(self, topic: str, payload: bytes) -> None:
        """Called from the MQTT callback for every message on our command topics."""
        task = asyncio.get_running_loop().create_task(self.handle(topic, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ledger.close()

    async def handle(self, topic: str, payload: bytes) -> None:
        try:
            command = contract.decode_command(payload, topic)
        except ContractError as exc:
            await self._refuse_undecodable(payload, exc)
            return
        previous = await self.ledger.seen(command.id)
        if previous is not None:
            self.counts["duplicate"] += 1
            log.info("command %s (%s) seen before (%s): not executed again", command.id, command.name, previous)
            if not await self.ledger.result_queued(command.id):   # delivered: say it once more
                await self._queue(command, command.id, CommandStatus(previous), _duplicate_message(previous))
            return
        if now_ms() > command.expires_ts:
            late_s = (now_ms() - command.expires_ts) / 1000
            await self._finish(command, command.id,
                               CommandOutcome(CommandStatus.EXPIRED, f"arrived {late_s:.1f} s after it expired"))
            return
        target = self.resolve(command.target)
        if target is None:
            await self._finish(command, command.id, CommandOutcome.rejected(
                f"unknown target {command.target!r}: not a source name or device id of agent {self.agent}"))
            return
        handler = getattr(target.source, "handle_command", None)
        if handler is None:
            await self._finish(command, command.id, CommandOutcome.rejected(
                f"source {target.source_name!r} does not handle commands"))
            return
        await self._queue(command, command.id, CommandStatus.ACCEPTED, "")
        log.info("command %s: %s on %s by %s", command.id, command.name, command.target, command.issued_by or "?")
        try:
            outcome = await asyncio.wait_for(handler(command, target.device), self.timeout_s)
            if not isinstance(outcome, CommandOutcome) or not outcome.status.final:
                outcome = CommandOutcome.failed(f"source returned {outcome!r}, not a final CommandOutcome")
        except asyncio.TimeoutError:
            outcome = CommandOutcome.failed(f"no outcome within {self.timeout_s:.0f} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a plugin bug must answer, not vanish
            log.exception("command %s: source %s raised", command.id, target.source_name)
            outcome = CommandOutcome.failed(f"source error: {type(exc).__name__}: {exc}"[:512])
        await self._finish(command, command.id, outcome)

    async def _refuse_undecodable(self, payload: bytes, exc: ContractError) -> None:
        self.counts["invalid"] += 1
        command_id = None
        try:
            raw = json.loads(payload)
            candidate = raw.get("id") if isinstance(raw, dict) else None
            if contract.is_id(candidate):
                command_id = candidate
        except (ValueError, RecursionError):
            pass
        log.warning("invalid command (%s): %s", exc.code, exc)
        if command_id is not None and await self.ledger.seen(command_id) is None:
            await self._finish(None, command_id, CommandOutcome.rejected(f"invalid command: {exc}"[:512]))

    async def _finish(self, command: Command | None, command_id: str, outcome: CommandOutcome) -> None:
        self.counts[str(outcome.status)] += 1
        data = {k: v for k, v in outcome.data.items() if isinstance(v, (int, float, bool, str)) or v is None}
        await self._queue(command, command_id, outcome.status, outcome.message, data)
        log.info("command %s: %s %s", command_id, outcome.status, outcome.message)

    async def _queue(self, command: Command | None, command_id: str, status: CommandStatus, message: str,
                     data: dict | None = None) -> None:
        result = CommandResult(id=command_id, site=self.site, agent=self.agent, status=status,
                               message=message[:512], ts=now_ms(), data=data or {})
        await self.ledger.record(command, command_id, status, result)
        self.results_wake.set()


class ResultSender:
    """Sends queued results while an ingest listens; forgets each on its PUBACK."""

    def __init__(self, ledger: CommandLedger, topic: str, wake: asyncio.Event):
        self.ledger = ledger
        self.topic = topic
        self.wake = wake
        self.inflight: dict[int, int] = {}          # mid -> ledger seq
        self.sent_total = 0

    def on_puback(self, mid: int, ok: bool) -> bool:
        """True when the mid was a result of ours."""
        seq = self.inflight.pop(mid, None)
        if seq is None:
            return False
        if not ok:
            log.error("broker refused command result %d (not authorised?); dropped", seq)
        self.sent_total += ok
        asyncio.get_running_loop().create_task(self.ledger.delivered(seq))
        return True

    def on_disconnected(self) -> None:
        self.inflight.clear()
        self.wake.set()

    async def run(self, link) -> None:
        while True:
            self.wake.clear()
            if link.connected.is_set() and (not link.config.mqtt.wait_for_ingest or link.ingest_alive()):
                busy = set(self.inflight.values())
                for seq, payload in await self.ledger.pending_results():
                    if seq not in busy:
                        self.inflight[link.publish(self.topic, payload, qos=1)] = seq
                timeout = 1.0
            else:
                timeout = 0.5
            try:
                async with asyncio.timeout(timeout):
                    await self.wake.wait()
            except TimeoutError:
                pass


def ledger_path(config) -> Path:
    return config.commands.ledger or config.queue.path.with_name(config.queue.path.stem + "-commands.db")


def result_topic(config) -> str:
    return contract.result_topic(config.site, config.agent)


def command_prefix(config) -> str:
    return contract.command_filter(config.site, config.agent).removesuffix("#")

