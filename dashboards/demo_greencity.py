"""Demo data for the CO2 and interchange boards, in the names the co2 and interchange domains write
(design of issue 10): ``co2_slot`` and ``co2_input`` for the demo city's sites since the start of the
fiscal year, and ``interchange_slot`` / ``interchange_flow`` of the community ``omika-pv`` (pro rata)
over the last ``INTERCHANGE_DAYS`` days. Deterministic (seeded), about 60k points in late November.

    lines = greencity_lines(datetime.now(timezone.utc))

The kg-CO2 use round placeholder factors (``DEMO_KG_PER_KWH``), not published values: the real ones
are the co2 domain's factor files. What the job would write for a slot without meter data is
imitated too: ``meters_measured`` 0 and no kWh or kg (``sme-plating`` loses every ``GAP_EVERY``-th slot).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")
SLOT = timedelta(minutes=30)
COMMUNITY = "omika-pv"
PRODUCER = "hitachi-omika"
CONSUMERS = ("sme-press", "sme-plating", "sme-food", "city-hall-annex")
METERED_SITES = (PRODUCER, *CONSUMERS)
BILLED_SITE = "sme-machining"              # no meter: monthly bills and fuel deliveries only
GAPPY_SITE, GAP_EVERY = "sme-plating", 40
PROVISIONAL_SLOTS = 4                      # the newest settled slots are provisional
INTERCHANGE_DAYS = 35
PV_KWP = 400.0
# Placeholders for the picture, NOT published factors (kg-CO2/kWh): location, market (adjusted), basic.
DEMO_KG_PER_KWH = {"kg_location": 0.43, "kg_market": 0.45, "kg_basic": 0.44}


class Slot:
    """A slot's start and what the load shapes need of it, in JST (computed once per slot)."""

    def __init__(self, start: datetime):
        local = start.astimezone(JST)
        middle = local + SLOT / 2
        self.start, self.date = start, local.date()
        self.hour = middle.hour + middle.minute / 60
        self.weekday, self.day_of_year = local.weekday(), local.timetuple().tm_yday


def _ramp(h: float, start: float, end: float) -> float:
    """1 between start and end (JST hours), with half-hour shoulders."""
    return max(0.0, min(1.0, (h - start + 0.5) / 0.5, (end - h + 0.5) / 0.5))


def load_kw(site: str, slot: Slot) -> float:
    """Mean kW of a site over the slot."""
    h, weekday = slot.hour, slot.weekday
    workday, saturday = weekday < 5, weekday == 5
    if site == PRODUCER:
        return 110.0 + (40.0 if workday else 0.0) * _ramp(h, 8, 18)
    if site == "sme-press":
        return 4.0 + (38.0 if workday else 0.0) * _ramp(h, 8, 17)
    if site == "sme-plating":
        return 25.0 + (20.0 if workday else 6.0) * _ramp(h, 7, 20)
    if site == "sme-food":
        return 8.0 + (30.0 if workday or saturday else 0.0) * _ramp(h, 5, 14)
    return 6.0 + (22.0 if workday else 0.0) * _ramp(h, 8.5, 17.5)     # city-hall-annex


def pv_kw(slot: Slot, clouds: float) -> float:
    h, day_of_year = slot.hour, slot.day_of_year
    season = 0.8 + 0.2 * math.cos((day_of_year - 172) / 365 * 2 * math.pi)
    length = 12 * season + 1                                    # shorter days in winter
    if abs(h - 12) >= length / 2:
        return 0.0
    return PV_KWP * 0.85 * season * math.cos((h - 12) / length * math.pi) ** 1.3 * clouds


def _line(measurement: str, tags: dict[str, str], fields: dict[str, object], t: datetime) -> str:
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return f"{v}i"
        return f'"{v}"' if isinstance(v, str) else repr(round(float(v), 6))
    tag_text = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    field_text = ",".join(f"{k}={value(v)}" for k, v in fields.items())
    return f"{measurement},{tag_text} {field_text} {int(t.timestamp() * 1000)}"


def fiscal_year_start(now: datetime) -> datetime:
    local = now.astimezone(JST)
    start = local.replace(month=4, day=1, hour=0, minute=0, second=0, microsecond=0)
    return start if start <= local else start.replace(year=start.year - 1)


def _slots(start: datetime, now: datetime):
    t = start
    while t + SLOT <= now:                   # finished slots only
        yield Slot(t)
        t += SLOT


def _clouds(rng: random.Random, day: datetime, cache: dict) -> float:
    if day not in cache:
        cache[day] = rng.choice([1.0, 0.95, 0.9, 0.8])      # even a dull day leaves a midday surplus
    return cache[day]


def co2_slot_lines(now: datetime) -> list[str]:
    rng, cache = random.Random(5), {}
    lines = []
    for index, slot in enumerate(_slots(fiscal_year_start(now), now)):
        t, clouds = slot.start, _clouds(rng, slot.date, cache)
        for site in METERED_SITES:
            if site == GAPPY_SITE and index % GAP_EVERY == 0:
                lines.append(_line("co2_slot", {"site": site}, {"meters_expected": 1, "meters_measured": 0}, t))
                continue
            kw = load_kw(site, slot) - (pv_kw(slot, clouds) if site == PRODUCER else 0.0)
            kwh = max(0.0, kw) * 0.5                      # the producer buys only what its PV does not cover
            kg = ",".join(f"{name}={kwh * factor:.6f}" for name, factor in DEMO_KG_PER_KWH.items())
            lines.append(f"co2_slot,site={site} kwh={kwh:.6f},{kg},meters_expected=1i,meters_measured=1i "
                         f"{int(t.timestamp() * 1000)}")        # written directly: ~60k lines, fast
    return lines


def co2_input_lines(now: datetime) -> list[str]:
    """What the sites entered, per month of this fiscal year: sme-machining's electricity bills, gas
    deliveries and production for every finished month; the city hall annex's kerosene deliveries
    (heating) and sme-press's production, this month included."""
    lines = []
    month, number = fiscal_year_start(now), 0
    entered = {"source": "api", "entered_by": "demo"}
    while month <= now.astimezone(JST):
        following = (month + timedelta(days=32)).replace(day=1)
        tag = month.strftime("%Y-%m")
        lines += [
            _line("co2_input", {"site": "city-hall-annex", "kind": "fuel", "item": "kerosene", "month": tag},
                  {"amount": 0.4 + 0.1 * number, "unit": "kL", "cost_yen": 48000.0 + 12000 * number, **entered}, month),
            _line("co2_input", {"site": "sme-press", "kind": "production", "item": "pcs", "month": tag},
                  {"amount": 52000.0 + 800 * number, "unit": "pcs", **entered}, month),
        ]
        if following <= now.astimezone(JST):
            kwh = 9000.0 + 600 * number
            lines += [
                _line("co2_input", {"site": BILLED_SITE, "kind": "electricity", "item": "default/standard",
                                    "month": tag}, {"amount": kwh, "unit": "kWh", "cost_yen": kwh * 28.0, **entered}, month),
                _line("co2_input", {"site": BILLED_SITE, "kind": "fuel", "item": "city_gas_13a", "month": tag},
                      {"amount": 1.2 + 0.1 * number, "unit": "thousand m3", "cost_yen": 150000.0 + 9000 * number,
                       **entered}, month),
                _line("co2_input", {"site": BILLED_SITE, "kind": "production", "item": "t", "month": tag},
                      {"amount": 40.0 + number, "unit": "t", **entered}, month),
            ]
        month, number = following, number + 1
    return lines


def allocate_pro_rata(generation: float, producer_load: float, demand: dict[str, float]) -> dict:
    """The pro-rata rule for one slot: the producer's surplus split in proportion to demand, capped at it."""
    surplus = max(0.0, generation - producer_load)
    total = sum(demand.values())
    ratio = min(1.0, surplus / total) if total > 0 else 0.0
    received = {site: d * ratio for site, d in demand.items()}
    supplied = sum(received.values())
    return {"surplus": surplus, "received": received, "supplied": supplied, "export": surplus - supplied,
            "self": generation - surplus}


def interchange_lines(now: datetime) -> list[str]:
    rng, cache = random.Random(5), {}
    start = (now - timedelta(days=INTERCHANGE_DAYS)).astimezone(JST).replace(hour=0, minute=0, second=0,
                                                                            microsecond=0)
    slots = list(_slots(start, now))
    lines = []
    for index, slot in enumerate(slots):
        provisional = index >= len(slots) - PROVISIONAL_SLOTS
        t, clouds = slot.start, _clouds(rng, slot.date, cache)
        generation = pv_kw(slot, clouds) * 0.5
        producer_load = load_kw(PRODUCER, slot) * 0.5
        demand = {site: load_kw(site, slot) * 0.5 for site in CONSUMERS}
        share = allocate_pro_rata(generation, producer_load, demand)
        common = {"provisional": provisional, "rule": "pro_rata"}
        lines.append(_line("interchange_slot", {"community": COMMUNITY, "site": PRODUCER, "role": "producer"}, {
            "generation_kwh": generation, "consumption_kwh": producer_load, "supplied_kwh": share["supplied"],
            "received_kwh": 0.0, "self_kwh": share["self"], "export_kwh": share["export"],
            "grid_kwh": max(0.0, producer_load - generation), **common}, t))
        for site in CONSUMERS:
            received = share["received"][site]
            lines.append(_line("interchange_slot", {"community": COMMUNITY, "site": site, "role": "consumer"}, {
                "generation_kwh": 0.0, "consumption_kwh": demand[site], "supplied_kwh": 0.0, "received_kwh": received,
                "self_kwh": 0.0, "export_kwh": 0.0, "grid_kwh": demand[site] - received, **common}, t))
            if received > 0:
                lines.append(_line("interchange_flow", {"community": COMMUNITY, "from": PRODUCER, "to": site},
                                   {"kwh": received, "provisional": provisional}, t))
    return lines


def greencity_lines(now: datetime) -> list[str]:
    """Line protocol (ms precision) for the CO2 and interchange boards, ending at ``now``."""
    return co2_slot_lines(now) + co2_input_lines(now) + interchange_lines(now)
