"""One connector's electrics: the car on it, the current offered, ramps, phase switches, energy.

The charger tells the connector what it may offer (``offer``: amps per phase and a phase
count, from its charging profiles); ``advance`` integrates what the car then draws up to a
moment of simulated time. The car draws ``min(offer, what the car accepts at its SoC)``;
below 6 A offered it pauses (SuspendedEVSE). A new offer is reached by a linear ramp over
``ramp_s``. A change of phase count pauses charging for ``switch_delay_s`` first, as the
contactors open, the EV goes through its state machine and closes again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulators.ocpp.ev import MIN_CHARGING_CURRENT, Car, accepted_current, soc_after

RAMP_STEP_S = 1.0       # integration step while the current ramps, simulated seconds
STEADY_STEP_S = 10.0    # otherwise: only the SoC taper changes the current, slowly


@dataclass
class Transaction:
    local_id: int
    id_tag: str
    started: datetime
    meter_start_wh: float
    remote_id: str | None = None        # 1.6: the id the central system gave; 2.0.1: ours
    seq_no: int = 0                     # 2.0.1 TransactionEvent sequence
    charging_state: str = ""            # 2.0.1: the last one reported
    remote_start_id: int | None = None
    next_sample: datetime | None = None


@dataclass
class Connector:
    number: int
    station_phases: int = 3
    max_current_a: float = 32.0
    ramp_s: float = 5.0
    switch_delay_s: float = 120.0
    voltages: tuple[float, ...] = (230.0, 230.0, 230.0)
    energy_wh: float = 0.0
    car: Car | None = None
    soc: float | None = None
    tx: Transaction | None = None
    finished: bool = False              # a transaction ended and the car is still plugged
    unavailable: bool = False           # ChangeAvailability Inoperative
    pending_unavailable: bool = False   # ... asked for during a transaction
    offered_a: float = 0.0              # what the profiles allow now (capped by the hardware)
    wanted_phases: int | None = None    # what the profiles ask for
    phases_in_use: int = 0
    current_a: float = 0.0              # per phase, as drawn now
    switching_until: datetime | None = None
    plugged_by_commute: bool = False
    visit_day: object = None
    last_t: datetime | None = None
    _ramp_from: float = 0.0
    _ramp_to: float = 0.0
    _ramp_start: datetime | None = None
    phase_switches: list[tuple[datetime, int, int]] = field(default_factory=list)

    # --------------------------------------------------------------- state
    @property
    def status(self) -> str:
        """The OCPP 1.6 connector status (2.0.1 maps it to connector status and charging state)."""
        if self.unavailable:
            return "Unavailable"
        if self.car is None:
            return "Available"
        if self.tx is None:
            return "Finishing" if self.finished else "Preparing"
        if self.switching_until is not None or self.offered_a < MIN_CHARGING_CURRENT:
            return "SuspendedEVSE"
        if self.soc is not None and accepted_current(self.car, self.soc) <= 0:
            return "SuspendedEV"
        return "Charging"

    @property
    def power_w(self) -> float:
        return sum(self.voltages[:self.phases_in_use]) * self.current_a

    def phase_currents(self) -> list[float]:
        return [self.current_a if phase < self.phases_in_use else 0.0 for phase in range(self.station_phases)]

    def _target_phases(self) -> int:
        wanted = min(self.wanted_phases or self.station_phases, self.station_phases)
        return min(wanted, self.car.phases) if self.car else wanted

    # --------------------------------------------------------------- changes
    def plug_in(self, now: datetime, car: Car, soc: float) -> None:
        self.advance(now)
        self.car, self.soc, self.finished = car, soc, False
        self.phases_in_use = self._target_phases()
        self.current_a = self._ramp_from = self._ramp_to = 0.0
        self._ramp_start = None

    def unplug(self, now: datetime) -> None:
        self.advance(now)
        self.car = self.soc = None
        self.finished = False
        self.current_a = self._ramp_from = self._ramp_to = 0.0
        self.switching_until = None

    def offer(self, now: datetime, amps: float, phases: int | None) -> None:
        """What the profiles allow from ``now``; takes effect through a ramp or a phase switch."""
        self.advance(now)
        self.offered_a = min(amps, self.max_current_a)
        self.wanted_phases = phases
        target_phases = self._target_phases()
        if self.car is not None and target_phases != self.phases_in_use and self.switching_until is None:
            if self.tx is None:
                self.phases_in_use = target_phases
            else:
                self.switching_until = now + timedelta(seconds=self.switch_delay_s)
                self.phase_switches.append((now, self.phases_in_use, target_phases))
                self._start_ramp(now, 0.0, instant=True)
        self._retarget(now)

    def _drawable(self) -> float:
        """Amps per phase the car would settle at, now."""
        if self.car is None or self.tx is None or self.switching_until is not None:
            return 0.0
        if self.offered_a < MIN_CHARGING_CURRENT:
            return 0.0
        return min(self.offered_a, self.car.max_current_a)

    def _start_ramp(self, now: datetime, target: float, instant: bool = False) -> None:
        self._ramp_from = target if instant else self.current_a
        self.current_a = self._ramp_from
        self._ramp_to = target
        self._ramp_start = now

    def _retarget(self, now: datetime) -> None:
        # The car's own taper above 80 % follows the SoC continuously in _current_at, without a ramp.
        target = self._drawable()
        if self.car is not None and self.tx is not None and abs(target - self._ramp_to) > 1e-9:
            self._start_ramp(now, target)

    def _ramped(self, at: datetime) -> float:
        if self._ramp_start is None or self.ramp_s <= 0:
            return self._ramp_to
        fraction = (at - self._ramp_start).total_seconds() / self.ramp_s
        if fraction >= 1:
            return self._ramp_to
        return self._ramp_from + (self._ramp_to - self._ramp_from) * fraction

    def ramp_end(self) -> datetime | None:
        if self._ramp_start is None or self._ramp_from == self._ramp_to:
            return None
        return self._ramp_start + timedelta(seconds=self.ramp_s)

    def advance(self, now: datetime) -> None:
        """Integrates energy and SoC up to ``now`` and finishes a phase switch that is due."""
        if self.last_t is None or now <= self.last_t:
            self.last_t = now if self.last_t is None else self.last_t
            return
        t = self.last_t
        while t < now:
            if self.switching_until is not None and self.switching_until <= t:
                self.switching_until = None
                self.phases_in_use = self._target_phases()
                self._retarget(t)
            ramp_end = self.ramp_end()
            step = RAMP_STEP_S if ramp_end is not None and ramp_end > t else STEADY_STEP_S
            step_end = min(now, t + timedelta(seconds=step))
            if self.switching_until is not None:
                step_end = min(step_end, max(self.switching_until, t + timedelta(microseconds=1)))
            dt = (step_end - t).total_seconds()
            mid = t + (step_end - t) / 2
            amps = self._current_at(mid) if self.car is not None and self.tx is not None else 0.0
            watts = sum(self.voltages[:self.phases_in_use]) * amps
            self.energy_wh += watts * dt / 3600.0
            if self.car is not None and watts > 0:
                self.soc = soc_after(self.car, self.soc or 0.0, watts * dt / 3600.0)
            t = step_end
        self.last_t = now
        if self.switching_until is not None and self.switching_until <= now:
            self.switching_until = None
            self.phases_in_use = self._target_phases()
            self._retarget(now)
        self.current_a = self._current_at(now) if self.car is not None and self.tx is not None else 0.0

    def _current_at(self, at: datetime) -> float:
        if self.switching_until is not None and at < self.switching_until:
            return 0.0
        return max(0.0, min(self._ramped(at), accepted_current(self.car, self.soc or 0.0)))

    def begin(self, now: datetime, tx: Transaction) -> None:
        self.advance(now)
        self.tx = tx
        self._ramp_to = 0.0
        self._retarget(now)

    def end(self, now: datetime) -> Transaction | None:
        self.advance(now)
        tx, self.tx = self.tx, None
        self.finished = self.car is not None
        self.current_a = self._ramp_from = self._ramp_to = 0.0
        self.switching_until = None
        return tx
