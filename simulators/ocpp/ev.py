"""Cars and commuters behind the simulated workplace chargers: pure functions, no I/O.

Every parking slot (charger connector) belongs to one employee whose car is fixed by
``(slot, seed)``: battery 40–80 kWh, the current it accepts per phase and whether it
charges on 1 or 3 phases. On weekdays the car arrives between 08:00 and 09:00 local time
(Asia/Tokyo) with 20–60 % state of charge and leaves between 17:00 and 18:30; each day's
numbers are drawn from ``(slot, seed, date)``. Nobody comes on Saturdays and Sundays
(public holidays are not modelled).

Charging slows down above 80 % state of charge, as on real batteries: the car accepts its
full current up to 80 %, then linearly less, down to 10 % of it just below 100 %, where it
stops. Metered energy goes into the battery without losses, so a 50 kWh battery gains
2 % per kWh.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

LOCAL_TZ = timezone(timedelta(hours=9), "JST")      # Asia/Tokyo, no daylight saving time
NOMINAL_VOLTAGE = 230.0
MIN_CHARGING_CURRENT = 6.0      # IEC 61851: below this an EVSE must not offer charging
TAPER_START_SOC = 80.0
TAPER_FLOOR = 0.1               # fraction of the car's current still accepted just below 100 %
FULL_SOC = 100.0

ARRIVAL_WINDOW = (time(8, 0), time(9, 0))
DEPARTURE_WINDOW = (time(17, 0), time(18, 30))


@dataclass(frozen=True)
class Car:
    id_tag: str                 # the employee's RFID tag, EMP0001 style
    battery_kwh: float
    max_current_a: float        # per phase
    phases: int                 # 1 or 3


@dataclass(frozen=True)
class Visit:
    car: Car
    soc_arrival: float          # percent
    arrival: datetime           # aware, local time
    departure: datetime


def id_tag(slot: int) -> str:
    return f"EMP{slot:04d}"


def car_for(slot: int, seed: int = 0) -> Car:
    """The car of the employee who parks at ``slot`` (1-based across the fleet)."""
    rng = random.Random(f"car:{seed}:{slot}")
    battery = float(rng.randint(40, 80))
    phases = rng.choice((1, 3, 3))
    max_current = float(rng.choice((16, 32)))
    return Car(id_tag=id_tag(slot), battery_kwh=battery, max_current_a=max_current, phases=phases)


def _in_window(rng: random.Random, day: date, window: tuple[time, time]) -> datetime:
    start = datetime.combine(day, window[0], LOCAL_TZ)
    span = (datetime.combine(day, window[1], LOCAL_TZ) - start).total_seconds()
    return start + timedelta(seconds=round(rng.uniform(0, span)))


def visit_on(day: date, slot: int, seed: int = 0) -> Visit | None:
    """When the car of ``slot`` comes and goes on ``day`` (local date); None on weekends."""
    if day.weekday() >= 5:
        return None
    rng = random.Random(f"day:{seed}:{slot}:{day.isoformat()}")
    arrival = _in_window(rng, day, ARRIVAL_WINDOW)
    departure = _in_window(rng, day, DEPARTURE_WINDOW)
    soc = round(rng.uniform(20.0, 60.0), 1)
    return Visit(car=car_for(slot, seed), soc_arrival=soc, arrival=arrival, departure=departure)


def acceptance(soc: float) -> float:
    """Fraction of its maximum current the car accepts at ``soc`` percent."""
    if soc >= FULL_SOC:
        return 0.0
    if soc <= TAPER_START_SOC:
        return 1.0
    return 1.0 - (1.0 - TAPER_FLOOR) * (soc - TAPER_START_SOC) / (FULL_SOC - TAPER_START_SOC)


def accepted_current(car: Car, soc: float) -> float:
    """Amps per phase the car draws at ``soc`` when the charger offers more."""
    return car.max_current_a * acceptance(soc)


def soc_after(car: Car, soc: float, energy_wh: float) -> float:
    """State of charge after ``energy_wh`` went into the battery, at most 100 %."""
    return min(FULL_SOC, soc + energy_wh / (car.battery_kwh * 10.0))


def amps_from_watts(watts: float, phases: int) -> float:
    return watts / (NOMINAL_VOLTAGE * phases)
