"""Faults through the whole pipeline as real processes, each judged by sequence accounting:
for every device the agent committed (its outbox's ``device_seq``), the seqs stored in
InfluxDB plus the envelopes the agent counted as dropped equal what it produced — and
nothing is dropped unless the outbox's size bound was hit."""

from __future__ import annotations

import time

import pytest

from tests.faults.helpers import FaultRig, stop_and_account, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def rig(tmp_path):
    rig = FaultRig(tmp_path).start()
    yield rig
    rig.close()


def wait_stream_grows(rig: FaultRig, by: int, what: str, timeout: float = 30.0) -> int:
    start = rig.stored_total()
    return wait_until(lambda: (n := rig.stored_total()) >= start + by and n, what, timeout)


def test_broker_restarted_four_times_during_a_stream_loses_nothing(rig):
    agent = rig.agent(devices=3, interval_s=0.05)
    wait_stream_grows(rig, 30, "the stream flowing")
    for restart in range(4):
        rig.broker.stop()
        # the agent keeps committing while the broker is away
        wait_until(lambda: agent.metrics()["hinode_agent_queue_envelopes"] > 5, "a backlog while the broker is away")
        rig.broker.start()
        wait_stream_grows(rig, 40, f"the stream resuming after broker restart {restart + 1}")
    acc = stop_and_account(rig, agent)
    assert acc["produced"] > 250 and acc["devices"] == 4   # 3 meters + the agent's own health


def test_influxdb_restarted_during_a_stream_loses_nothing(rig):
    agent = rig.agent(devices=3, interval_s=0.05)
    wait_stream_grows(rig, 30, "the stream flowing")
    for restart in range(2):
        before = rig.stored_total()
        rig.influx.stop()
        time.sleep(2.0)                            # an outage kept open on purpose: the stream piles up
        rig.influx.start()
        wait_until(lambda: rig.stored_total() > before + 100, f"the backlog stored after InfluxDB restart {restart + 1}")
    assert "holding the batch" in rig.ingest.log_since_start()   # the ingest did see the outage
    acc = stop_and_account(rig, agent)
    assert acc["produced"] > 250


def test_ingest_sigkilled_between_receiving_and_writing_loses_nothing(rig):
    agent = rig.agent(devices=3, interval_s=0.05)
    wait_stream_grows(rig, 30, "the stream flowing")
    stored_before = rig.stored_total()
    rig.influx.stop()
    rig.ingest.wait_log("holding the batch", 15)   # received, not written, not acknowledged
    time.sleep(1.0)                                # more of the stream received and held
    rig.ingest.kill()
    held_log = rig.ingest.log_since_start()
    assert "ingest stopped" not in held_log        # it died without a clean stop
    rig.influx.start()
    rig.ingest = rig.new_ingest()
    rig.ingest.wait_log("session present: True", 15)
    wait_until(lambda: rig.stored_total() > stored_before + 150, "the held messages and the stream stored")
    acc = stop_and_account(rig, agent)
    assert acc["produced"] > stored_before + 150


def test_agent_sigkilled_while_replaying_a_backlog_loses_nothing(rig):
    # A narrow in-flight window makes the replay last long enough to be interrupted.
    agent = rig.agent(devices=8, interval_s=0.05, metrics=20, mqtt={"max_inflight": 2})
    wait_stream_grows(rig, 40, "the stream flowing")
    rig.broker.stop()
    # Envelopes waiting to be sent (the agent keeps delivered ones on disk a few seconds more
    # in case the broker drops them, so the outbox file alone would not show the replay).
    def pending() -> int:
        return int(agent.metrics()["hinode_agent_queue_envelopes"])

    peak = wait_until(lambda: (n := pending()) > 300 and n, "a backlog of 300 envelopes while the broker is down")
    rig.broker.start()

    def replay_half_done():
        depth = pending()
        return depth < peak * 0.7 and depth

    depth_at_kill = wait_until(replay_half_done, "the replay under way", 30, interval=0.01)
    agent.kill()
    assert depth_at_kill > peak * 0.1, f"replay nearly done ({depth_at_kill} of {peak}) before the kill"
    left = agent.outbox_depth()
    assert left > 0, "the kill came after the replay finished"
    restarted = rig.restart_agent(agent)
    wait_until(lambda: restarted.metrics()["hinode_agent_queue_envelopes"] < 20, "the restarted agent finishing the replay")
    acc = stop_and_account(rig, restarted)
    assert acc["produced"] > peak


def test_outbox_at_its_size_bound_counts_every_dropped_envelope(rig):
    agent = rig.agent(devices=4, interval_s=0.05, metrics=20, queue={"max_bytes": "64KiB"})
    wait_stream_grows(rig, 30, "the stream flowing")
    rig.broker.stop()
    wait_until(lambda: agent.dropped()[0] > 50, "the outbox dropping its oldest envelopes", 20)
    assert agent.metrics()["hinode_agent_dropped_readings_total"] > 0   # visible to the operator
    rig.broker.start()
    wait_stream_grows(rig, 40, "the stream resuming")
    acc = stop_and_account(rig, agent, may_drop=True)
    assert acc["dropped"] > 50 and acc["received"] >= 70
    # the outbox never held more than its bound, so the drops are real: what is left is a fraction
    assert acc["dropped"] < acc["produced"]


def test_broker_restarted_while_it_holds_messages_for_the_ingest_loses_nothing(rig):
    """The broker PUBACKs the agent (which deletes the envelope) before the ingest has it: with
    InfluxDB down the ingest holds its in-flight window unacknowledged and the broker queues the
    rest of the stream in the ingest's persistent session. Those must survive a broker restart."""
    agent = rig.agent(devices=3, interval_s=0.05)
    wait_stream_grows(rig, 30, "the stream flowing")
    rig.influx.stop()
    rig.ingest.wait_log("holding the batch", 15)
    time.sleep(2.0)                                   # the agent keeps publishing; the broker queues
    rig.broker.stop()
    rig.broker.start()
    rig.influx.start()
    wait_stream_grows(rig, 100, "the stream resuming after the restart")
    acc = stop_and_account(rig, agent)
    assert acc["produced"] > 150
