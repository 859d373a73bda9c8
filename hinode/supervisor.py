"""Keeps the child processes of ``hinode up`` running.

A child that exits while ``hinode up`` is not stopping is started again, with the same
command line, ports and data directory (Mosquitto's persistence file and InfluxDB's data
survive; the agent's outbox buffers meanwhile), after a back-off from ``hinode.backoff``:
0.5..1 s, then doubling up to 15..30 s, reset once the service has run for a minute.
A restart that exits at once, does not become ready in time, or finds its port taken by
another program counts as one more failure. After ``GIVE_UP_FAILURES`` failures of one
service within ``GIVE_UP_WINDOW_S`` it is given up: :class:`ServiceGaveUp` names it, and
``hinode up`` stops everything and exits non-zero.

The supervisor never blocks: ``tick()`` is called from the status loop (every 0.1 s) and
moves each service one step (running -> waiting -> starting -> running), so Ctrl-C is
honoured at once even while a service is down.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from hinode.backoff import Backoff
from hinode.services import ManagedProcess, ServiceError, port_open

RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0
GIVE_UP_FAILURES = 5
GIVE_UP_WINDOW_S = 60.0
STABLE_S = 60.0                  # running this long after a restart resets the back-off
RESTART_READY_TIMEOUT_S = 60.0

RUNNING, WAITING, STARTING = "running", "waiting", "starting"


class ServiceGaveUp(ServiceError):
    """A service failed too often within the window: it cannot be brought back."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.service = name


@dataclass
class SupervisedService:
    proc: ManagedProcess
    backoff: Backoff
    state: str = RUNNING
    due: float = 0.0                 # WAITING: when to start again; STARTING: when to give up waiting
    up_since: float = 0.0
    restarts: int = 0
    failures: deque = field(default_factory=deque)     # monotonic times of failures within the window
    last_failure: str = ""

    @property
    def name(self) -> str:
        return self.proc.name


class Supervisor:
    """Restarts the watched processes; ``say`` reports each event (one line, no newline)."""

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 backoff: Callable[[], Backoff] = lambda: Backoff(RESTART_INITIAL_S, RESTART_MAX_S),
                 give_up_failures: int = GIVE_UP_FAILURES, give_up_window_s: float = GIVE_UP_WINDOW_S,
                 ready_timeout_s: float = RESTART_READY_TIMEOUT_S):
        self._say = say
        self._clock = clock
        self._new_backoff = backoff
        self.give_up_failures = give_up_failures
        self.give_up_window_s = give_up_window_s
        self.ready_timeout_s = ready_timeout_s
        self.services: list[SupervisedService] = []

    def watch(self, proc: ManagedProcess) -> None:
        """Supervise a process that is running now."""
        self.services.append(SupervisedService(proc, self._new_backoff(), up_since=self._clock()))

    def restarts(self) -> dict[str, int]:
        """Restarts so far, per service name (every watched service, 0 included)."""
        return {s.name: s.restarts for s in self.services}

    def summary(self) -> str:
        """For the status line: "restarts: mosquitto 1, influxdb 2", or "" while nothing was restarted."""
        restarted = [f"{s.name} {s.restarts}" for s in self.services if s.restarts]
        return "restarts: " + ", ".join(restarted) if restarted else ""

    def tick(self) -> None:
        """Check every service once and move it on; raises ServiceGaveUp."""
        for service in self.services:
            step = {RUNNING: self._check_running, WAITING: self._start_when_due, STARTING: self._check_starting}
            step[service.state](service)

    # ------------------------------------------------------------ one step per state

    def _check_running(self, service: SupervisedService) -> None:
        now = self._clock()
        if service.proc.running:
            if service.backoff.attempts and now - service.up_since >= STABLE_S:
                service.backoff.reset()
            return
        self._failed(service, service.proc.exit_reason())

    def _start_when_due(self, service: SupervisedService) -> None:
        if self._clock() < service.due:
            return
        proc = service.proc
        if port_open(proc.host, proc.port):
            self._failed(service, f"cannot restart: port {proc.port} is taken by another program")
            return
        try:
            proc.spawn()
        except OSError as exc:
            self._failed(service, f"cannot restart: {exc}")
            return
        service.restarts += 1
        service.state, service.due = STARTING, self._clock() + self.ready_timeout_s

    def _check_starting(self, service: SupervisedService) -> None:
        proc = service.proc
        if not proc.running:
            self._failed(service, f"{proc.exit_reason()} while restarting")
        elif proc.ready():
            service.state, service.up_since = RUNNING, self._clock()
            self._say(f"{service.name} is running again (restart {service.restarts})")
        elif self._clock() >= service.due:
            proc.kill()
            self._failed(service, f"not ready within {self.ready_timeout_s:.0f} s of its restart")

    def _failed(self, service: SupervisedService, why: str) -> None:
        now = self._clock()
        service.last_failure = why
        service.failures.append(now)
        while service.failures and service.failures[0] <= now - self.give_up_window_s:
            service.failures.popleft()
        if len(service.failures) >= self.give_up_failures:
            raise ServiceGaveUp(service.name, (
                f"{service.name} failed {len(service.failures)} times within {self.give_up_window_s:.0f} s "
                f"(last: {why}); giving up on it. Log: {service.proc.log_path}"))
        delay = service.backoff.next()
        service.state, service.due = WAITING, now + delay
        self._say(f"{service.name} {why}; restarting it in {delay:.1f} s (failure {len(service.failures)}, "
                  f"giving up at {self.give_up_failures} within {self.give_up_window_s:.0f} s; "
                  f"log: {service.proc.log_path})")
