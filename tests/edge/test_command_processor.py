"""CommandProcessor and its SQLite ledger, without a broker: a source that cannot act answers
``rejected`` with the reason, and an agent killed while executing a command answers ``failed``
after its restart instead of running the command again."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from edge_agent.commands import CommandLedger, CommandProcessor, Target
from edge_agent.sources.base import CommandOutcome, now_ms
from hinode import contract
from hinode.contract import CommandStatus
from tests.support.waiting import wait_until

SITE, AGENT, DEVICE = "plant-1", "edge-01", "meter-1"
ROOT = Path(__file__).resolve().parents[2]


def command(command_id: str) -> tuple[str, bytes]:
    cmd = contract.Command(id=command_id, site=SITE, agent=AGENT, target=DEVICE, name="write",
                           params={"metric": "power_limit", "value": 42}, issued_ts=now_ms(),
                           expires_ts=now_ms() + 300_000, issued_by="ops")
    return contract.command_topic(SITE, AGENT, cmd.name), contract.encode(cmd)


class Acting:
    """A source that can act: counts what it was asked to do."""

    def __init__(self):
        self.calls: list[tuple[str, str | None]] = []

    async def handle_command(self, cmd, device):
        self.calls.append((cmd.id, device))
        return CommandOutcome.done("written", value=42)


class Passive:
    """A source without handle_command (most sources only read)."""


def processor(ledger_file: Path, source) -> CommandProcessor:
    return CommandProcessor(SITE, AGENT, CommandLedger(ledger_file, keep_days=90),
                            lambda target: Target(source, "sim", target) if target == DEVICE else None, timeout_s=5)


async def results(proc: CommandProcessor) -> list[contract.CommandResult]:
    return [contract.decode_command_result(payload) for _, payload in await proc.ledger.pending_results()]


def ledger_status(ledger_file: Path, command_id: str) -> str:
    with sqlite3.connect(ledger_file) as db:
        return db.execute("SELECT status FROM commands WHERE id = ?", (command_id,)).fetchone()[0]


def test_a_source_without_a_command_handler_answers_rejected_with_the_reason(tmp_path):
    async def scenario():
        proc = processor(tmp_path / "commands.db", Passive())
        await proc.start()
        try:
            await proc.handle(*command("c-passive-1"))
            return await results(proc), dict(proc.counts)
        finally:
            await proc.stop()

    answered, counts = asyncio.run(scenario())
    assert [(r.id, r.status, r.message) for r in answered] == \
        [("c-passive-1", CommandStatus.REJECTED, "source 'sim' does not handle commands")]
    assert counts == {"rejected": 1}
    assert ledger_status(tmp_path / "commands.db", "c-passive-1") == "rejected"


# Runs in a child process that the test kills (SIGKILL) while the source is executing the command.
CHILD = """
import asyncio, sys
from pathlib import Path
from tests.edge.test_command_processor import processor

class Stuck:
    async def handle_command(self, cmd, device):
        Path(sys.argv[2]).write_text(cmd.id)
        await asyncio.Event().wait()

async def main():
    proc = processor(Path(sys.argv[1]), Stuck())
    await proc.start()
    await proc.handle(sys.argv[3], sys.argv[4].encode())

asyncio.run(main())
"""


def test_an_agent_killed_while_executing_answers_failed_on_restart_and_never_runs_it_again(tmp_path):
    ledger_file, executing = tmp_path / "commands.db", tmp_path / "executing"
    topic, payload = command("c-crash-1")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ledger_file), str(executing), topic, payload.decode()],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_until(lambda: executing.read_text() == "c-crash-1" or child.poll() is not None, "the child executing")
        assert child.poll() is None, "the child exited before it was killed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert ledger_status(ledger_file, "c-crash-1") == "accepted"

    source = Acting()

    async def restart():
        proc = processor(ledger_file, source)
        await proc.start()
        try:
            after_start = await results(proc)
            # The broker redelivers the command (its session kept it): not executed again, answered failed.
            for seq, _ in await proc.ledger.pending_results():
                await proc.ledger.delivered(seq)
            await proc.handle(topic, payload)
            return after_start, await results(proc), dict(proc.counts)
        finally:
            await proc.stop()

    after_start, after_redelivery, counts = asyncio.run(restart())
    assert [(r.status, r.message) for r in after_start] == [
        (CommandStatus.ACCEPTED, ""),    # queued before the kill, never delivered
        (CommandStatus.FAILED, "agent restarted while executing; the command was not repeated")]
    assert [(r.id, r.status) for r in after_redelivery] == [("c-crash-1", CommandStatus.FAILED)]
    assert after_redelivery[0].message == "duplicate id: already answered failed, not repeated"
    assert source.calls == []
    assert counts == {"failed": 1, "duplicate": 1}
    assert ledger_status(ledger_file, "c-crash-1") == "failed"


def test_a_command_runs_once_and_its_redelivery_repeats_the_result(tmp_path):
    """The control for the two above: the same processor and ledger do execute a source that can act."""
    source = Acting()

    async def scenario():
        proc = processor(tmp_path / "commands.db", source)
        await proc.start()
        try:
            topic, payload = command("c-ok-1")
            await proc.handle(topic, payload)
            await proc.handle(topic, payload)
            return await results(proc)
        finally:
            await proc.stop()

    answered = asyncio.run(scenario())
    assert source.calls == [("c-ok-1", DEVICE)]
    assert [(r.status, r.data) for r in answered] == [(CommandStatus.ACCEPTED, {}), (CommandStatus.DONE, {"value": 42})]
