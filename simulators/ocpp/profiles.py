"""Charging profiles as a charger keeps them: a stack per purpose and stack level.

Both versions' profiles are normalised into :class:`Profile` (1.6 ``ChargePointMaxProfile``
and 2.0.1 ``ChargingStationMaxProfile`` are both ``STATION_MAX``). For one connector at one
moment the Tx profile of its running transaction wins over a TxDefault profile for the
connector, which wins over a TxDefault for connector 0; within a purpose the highest stack
level whose schedule covers the moment wins. The station maximum caps the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

STATION_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
PURPOSE_ALIASES = {"ChargingStationMaxProfile": STATION_MAX}


@dataclass(frozen=True)
class Period:
    start_s: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True)
class Constraint:
    """The period of one profile in force: a limit in ``unit`` ("A" or "W")."""

    limit: float
    unit: str
    phases: int | None
    profile_id: int


@dataclass
class Profile:
    id: int
    connector: int
    purpose: str
    stack_level: int
    kind: str                                   # Absolute, Recurring, Relative
    unit: str                                   # "A" or "W"
    periods: list[Period]
    start: datetime | None = None               # startSchedule, simulated time
    duration_s: int | None = None
    recurrency: str | None = None               # Daily, Weekly
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    received_at: datetime | None = None

    def schedule_start(self, at: datetime, tx_start: datetime | None) -> datetime | None:
        if self.kind == "Relative":
            return tx_start or at
        base = self.start or self.received_at
        if base is None:
            return None
        if self.kind == "Recurring":
            step = timedelta(days=7 if self.recurrency == "Weekly" else 1)
            if at >= base:
                base += step * ((at - base) // step)
        return base

    def constraint_at(self, at: datetime, tx_start: datetime | None = None) -> Constraint | None:
        if self.valid_from and at < self.valid_from or self.valid_to and at >= self.valid_to:
            return None
        start = self.schedule_start(at, tx_start)
        if start is None or at < start:
            return None
        elapsed = (at - start).total_seconds()
        if self.duration_s is not None and elapsed >= self.duration_s:
            return None
        current = None
        for period in self.periods:
            if period.start_s <= elapsed:
                current = period
        if current is None:
            return None
        return Constraint(float(current.limit), self.unit, current.phases, self.id)

    def change_times(self, begin: datetime, end: datetime, tx_start: datetime | None) -> list[datetime]:
        """Moments in [begin, end) where this profile's contribution may change."""
        times = [t for t in (self.valid_from, self.valid_to) if t]
        start = self.schedule_start(begin, tx_start)
        while start is not None and start < end:
            times += [start + timedelta(seconds=p.start_s) for p in self.periods]
            if self.duration_s is not None:
                times.append(start + timedelta(seconds=self.duration_s))
            if self.kind != "Recurring":
                break
            start += timedelta(days=7 if self.recurrency == "Weekly" else 1)
        return [t for t in times if begin <= t < end]


@dataclass
class ProfileStore:
    max_stack_level: int = 8
    profiles: list[Profile] = field(default_factory=list)

    def install(self, profile: Profile) -> str:
        """"Accepted" or "Rejected", as SetChargingProfile answers."""
        profile.purpose = PURPOSE_ALIASES.get(profile.purpose, profile.purpose)
        if profile.purpose == STATION_MAX and profile.connector != 0:
            return "Rejected"
        if profile.purpose == TX and profile.connector == 0:
            return "Rejected"
        if not 0 <= profile.stack_level <= self.max_stack_level or not profile.periods:
            return "Rejected"
        self.profiles = [p for p in self.profiles
                         if p.id != profile.id and (p.connector, p.purpose, p.stack_level)
                         != (profile.connector, profile.purpose, profile.stack_level)]
        self.profiles.append(profile)
        return "Accepted"

    def clear(self, profile_id: int | None = None, connector: int | None = None,
              purpose: str | None = None, stack_level: int | None = None) -> int:
        """Removes the matching profiles; how many went."""
        purpose = PURPOSE_ALIASES.get(purpose, purpose) if purpose else None

        def matches(p: Profile) -> bool:
            if profile_id is not None:
                return p.id == profile_id
            return ((connector is None or p.connector == connector)
                    and (purpose is None or p.purpose == purpose)
                    and (stack_level is None or p.stack_level == stack_level))
        before = len(self.profiles)
        self.profiles = [p for p in self.profiles if not matches(p)]
        return before - len(self.profiles)

    def drop_tx_profiles(self, connector: int) -> None:
        """A TxProfile ends with its transaction."""
        self.profiles = [p for p in self.profiles if not (p.purpose == TX and p.connector == connector)]

    def _winner(self, candidates: list[Profile], at: datetime, tx_start: datetime | None) -> Constraint | None:
        for profile in sorted(candidates, key=lambda p: p.stack_level, reverse=True):
            found = profile.constraint_at(at, tx_start)
            if found:
                return found
        return None

    def constraints(self, connector: int, at: datetime, transaction_id: str | None = None,
                    tx_start: datetime | None = None) -> tuple[Constraint | None, Constraint | None]:
        """(station maximum, Tx or TxDefault limit) in force for ``connector`` at ``at``."""
        station = self._winner([p for p in self.profiles if p.purpose == STATION_MAX], at, tx_start)
        tx = None
        if transaction_id is not None or tx_start is not None:
            tx = self._winner([p for p in self.profiles if p.purpose == TX and p.connector == connector
                               and p.transaction_id in (None, transaction_id)], at, tx_start)
        if tx is None:
            for scope in (connector, 0):
                tx = self._winner([p for p in self.profiles
                                   if p.purpose == TX_DEFAULT and p.connector == scope], at, tx_start)
                if tx:
                    break
        return station, tx

    def change_times(self, connector: int, begin: datetime, end: datetime,
                     tx_start: datetime | None = None) -> list[datetime]:
        times = {begin}
        for profile in self.profiles:
            if profile.connector in (0, connector):
                times.update(profile.change_times(begin, end, tx_start))
        return sorted(times)
