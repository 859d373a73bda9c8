"""hinode.supervisor: restarts with back-off, counts restarts, gives up on a service that keeps failing.

Fake processes and a fake clock: the real thing runs in tests/e2e/test_hinode_up_supervisor.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from hinode.backoff import Backoff
from hinode.services import free_port
from hinode.supervisor import STABLE_S, ServiceGaveUp, Supervisor


class FakeProcess:
    """Duck-types ManagedProcess: ``outcomes`` says what each spawn does ("ok", "dies", "hangs")."""

    def __init__(self, name: str, outcomes=()):
        self.name, self.host, self.port = name, "127.0.0.1", free_port()
        self.log_path = Path(f"/tmp/{name}.log")
        self.outcomes = list(outcomes)
        self.running, self.is_ready, self.spawns, self.kills = True, True, 0, 0
        self.code = None

    def crash(self, code: int = -9) -> None:
        self.running, self.code = False, code

    def exit_reason(self) -> str:
        return "was killed by SIGKILL" if self.code == -9 else f"exited with code {self.code}"

    def spawn(self) -> None:
        self.spawns += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        self.running, self.is_ready, self.code = outcome != "dies", outcome == "ok", (1 if outcome == "dies" else None)

    def ready(self) -> bool:
        return self.is_ready

    def kill(self) -> None:
        self.kills += 1
        self.crash()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervisor(clock, events, **kw) -> Supervisor:
    return Supervisor(say=events.append, clock=clock, backoff=lambda: Backoff(1.0, 30.0, jitter=0.0), **kw)


def run_for(sup: Supervisor, clock: Clock, seconds: float, step: float = 0.1) -> None:
    end = clock.now + seconds
    while clock.now < end:
        sup.tick()
        clock.now += step


def test_a_dead_process_is_restarted_after_its_back_off_and_counted():
    clock, events = Clock(), []
    sup = supervisor(clock, events)
    broker, influx = FakeProcess("mosquitto"), FakeProcess("influxdb")
    sup.watch(broker)
    sup.watch(influx)
    sup.tick()
    assert sup.summary() == "" and sup.restarts() == {"mosquitto": 0, "influxdb": 0}

    broker.crash()
    sup.tick()
    assert broker.spawns == 0 and "mosquitto was killed by SIGKILL; restarting it in 1.0 s" in events[-1]
    run_for(sup, clock, 0.9)
    assert broker.spawns == 0, "not before the back-off"
    run_for(sup, clock, 0.3)
    assert broker.spawns == 1 and broker.running
    assert events[-1] == "mosquitto is running again (restart 1)"
    assert sup.summary() == "restarts: mosquitto 1"

    influx.crash(code=1)
    run_for(sup, clock, 1.5)
    assert "influxdb exited with code 1" in events[-2]
    assert sup.summary() == "restarts: mosquitto 1, influxdb 1"


def test_restarts_that_fail_back_off_exponentially_then_give_up_naming_the_service():
    clock, events = Clock(), []
    sup = supervisor(clock, events)
    broker = FakeProcess("mosquitto", outcomes=["dies"] * 10)
    sup.watch(broker)
    broker.crash()
    started = clock.now
    with pytest.raises(ServiceGaveUp) as caught:
        run_for(sup, clock, 60)
    assert caught.value.service == "mosquitto"
    assert "mosquitto failed 5 times within 60 s" in str(caught.value)
    assert "exited with code 1 while restarting" in str(caught.value)
    # failures at 0, then after 1, 2, 4 and 8 s of back-off
    assert broker.spawns == 4
    assert 15.0 <= clock.now - started <= 15.5


def test_failures_spread_over_more_than_the_window_do_not_give_up():
    clock, events = Clock(), []
    sup = supervisor(clock, events)
    cloud = FakeProcess("cloud")
    sup.watch(cloud)
    for _ in range(8):                      # a crash 20 s after each restart: at most 3 within any minute
        cloud.crash()
        while not cloud.running:
            run_for(sup, clock, 0.1)
        run_for(sup, clock, 20)
    assert cloud.spawns == 8 and cloud.running
    assert sup.restarts() == {"cloud": 8}
    assert "restarting it in 30.0 s" in events[-2], "the back-off grew to its cap meanwhile"


def test_a_restart_that_never_becomes_ready_is_killed_and_counts_as_a_failure():
    clock, events = Clock(), []
    sup = supervisor(clock, events, ready_timeout_s=5)
    influx = FakeProcess("influxdb", outcomes=["hangs"])
    sup.watch(influx)
    influx.crash()
    run_for(sup, clock, 7)
    assert influx.kills == 1
    assert any("not ready within 5 s of its restart" in e for e in events)
    run_for(sup, clock, 3)
    assert influx.running and influx.spawns == 2 and events[-1] == "influxdb is running again (restart 2)"


def test_the_back_off_starts_again_after_a_service_ran_stably():
    clock, events = Clock(), []
    sup = supervisor(clock, events)
    agent = FakeProcess("edge-agent", outcomes=["dies", "dies", "ok", "ok"])
    sup.watch(agent)
    agent.crash()
    run_for(sup, clock, 10)                  # 1 + 2 + 4 s of back-off, then up
    assert agent.running and agent.spawns == 3
    run_for(sup, clock, STABLE_S + 1)
    agent.crash()
    sup.tick()
    assert "restarting it in 1.0 s" in events[-1]


def test_a_port_taken_by_another_program_is_a_failure_with_that_reason():
    import socket
    clock, events = Clock(), []
    sup = supervisor(clock, events)
    broker = FakeProcess("mosquitto")
    sup.watch(broker)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", broker.port))
    squatter.listen()
    try:
        broker.crash()
        run_for(sup, clock, 1.5)
    finally:
        squatter.close()
    assert broker.spawns == 0
    assert f"mosquitto cannot restart: port {broker.port} is taken by another program" in events[-1]
