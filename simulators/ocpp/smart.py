"""Smart charging shared by both versions: reading a profile, the limit in force, the composite schedule."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable

from simulators.ocpp.ev import NOMINAL_VOLTAGE, amps_from_watts
from simulators.ocpp.profiles import Period, Profile

if TYPE_CHECKING:
    from simulators.ocpp.connector import Connector
    from simulators.ocpp.station import SimCharger


def parse_profile(raw: dict, connector: int, to_sim: Callable[[str | None], datetime | None],
                  now: datetime) -> Profile:
    """A profile as received (snake_case keys; 1.6 csChargingProfiles or a 2.0.1 chargingProfile)."""
    schedule = raw["charging_schedule"]
    if isinstance(schedule, list):          # 2.0.1: a list of schedules; the first one is used
        schedule = schedule[0]
    periods = [Period(int(p["start_period"]), float(p["limit"]),
                      int(p["number_phases"]) if p.get("number_phases") is not None else None)
               for p in schedule["charging_schedule_period"]]
    tx = raw.get("transaction_id")
    return Profile(
        id=int(raw.get("charging_profile_id", raw.get("id", 0))),
        connector=connector,
        purpose=raw["charging_profile_purpose"],
        stack_level=int(raw["stack_level"]),
        kind=raw["charging_profile_kind"],
        unit=schedule["charging_rate_unit"],
        periods=sorted(periods, key=lambda p: p.start_s),
        start=to_sim(schedule.get("start_schedule")),
        duration_s=int(schedule["duration"]) if schedule.get("duration") is not None else None,
        recurrency=raw.get("recurrency_kind"),
        valid_from=to_sim(raw.get("valid_from")),
        valid_to=to_sim(raw.get("valid_to")),
        transaction_id=str(tx) if tx is not None else None,
        received_at=now)


def limit_at(charger: SimCharger, conn: Connector, at: datetime,
             relative_start: datetime | None = None) -> tuple[float, int | None, int]:
    """(amps per phase allowed, phases the profiles ask for or None, phases the car would use).

    Relative profiles count from the transaction's start, else from ``relative_start``."""
    opts = charger.options
    tx = conn.tx
    station, limit = charger.profiles.constraints(conn.number, at, tx.remote_id if tx else None,
                                                  tx.started if tx else relative_start)
    wanted = None
    if opts.phase_switching:
        wanted = (limit.phases if limit and limit.phases else None) or (station.phases if station else None)
    phases = min(wanted or opts.phases, opts.phases)
    if conn.car is not None:
        phases = min(phases, conn.car.phases)
    amps = opts.max_current_a
    for constraint in (station, limit):
        if constraint is not None:
            amps = min(amps, constraint.limit if constraint.unit == "A" else amps_from_watts(constraint.limit, phases))
    return amps, wanted, phases


def composite_schedule(charger: SimCharger, connector: int, duration_s: int, unit: str | None) -> dict:
    """The limits in force from now for ``duration_s``: {start, unit, periods[{start_period, limit, number_phases}]}."""
    unit = unit or "A"
    now = charger.clock.now()
    conn = charger.connector(max(connector, 1))
    tx_start = conn.tx.started if conn.tx else now      # without a transaction: as if one started now
    end = now + timedelta(seconds=duration_s)
    periods: list[dict] = []
    for moment in charger.profiles.change_times(conn.number, now, end, tx_start):
        amps, _, phases = limit_at(charger, conn, moment, tx_start)
        value = amps if unit == "A" else amps * NOMINAL_VOLTAGE * phases
        period = {"start_period": int((moment - now).total_seconds()), "limit": round(value, 1),
                  "number_phases": phases}
        if not periods or (periods[-1]["limit"], periods[-1]["number_phases"]) != (period["limit"], phases):
            periods.append(period)
    return {"start": now, "unit": unit, "periods": periods}
