"""Monthly statements, the day view and the day/night x weekday/holiday breakdown, from settled
slots (``interchange_slot``) and flows (``interchange_flow``). Pure functions, no I/O.

* yen: a consumer pays ``received_kwh x price``; a producer earns ``supplied_kwh x price``
  (rounded to the yen, as a bill is).
* CO2 avoided: a consumer's ``received_kwh x`` its retailer's adjusted emission factor (the
  electricity it did not buy); a producer's is the sum of its flows times each receiver's factor.
  None (``"factor unknown"``) when a factor needed is not known.
"""

from __future__ import annotations

import csv
import io
import math

import polars as pl

from cloud.domains._greencity.calendar import SLOT_MS, with_calendar

KWH_DECIMALS = 6
KG_DECIMALS = 3
SETTLED_COLUMNS = ("generation_kwh", "consumption_kwh", "supplied_kwh", "received_kwh", "self_kwh",
                   "export_kwh", "grid_kwh")
STATEMENT_COLUMNS = ("site", "role", "supplied_kwh", "received_kwh", "yen", "yen_paid", "yen_earned",
                     "co2_avoided_kg", "co2_note", "generation_kwh", "consumption_kwh", "self_kwh", "export_kwh",
                     "grid_kwh", "slots", "slots_provisional")
BREAKDOWN_GROUPS = [("weekday", "day"), ("weekday", "night"), ("holiday", "day"), ("holiday", "night")]


def yen(amount: float) -> int:
    """Rounded half up to the yen (Python's round() would round 2.5 to 2)."""
    return int(math.floor(amount + 0.5 + 1e-9))


def _kwh(expr: pl.Expr) -> pl.Expr:
    return expr.sum().round(KWH_DECIMALS)


def statements(settled: pl.DataFrame, flows: pl.DataFrame, participants: list[dict], price_yen_per_kwh: float,
               factors: dict[str, float | None]) -> list[dict]:
    """One statement per participant (in ``participants`` order: dicts with site, role).

    ``settled``: rows of interchange_slot (slot_start, site, provisional and SETTLED_COLUMNS);
    ``flows``: slot_start, from, to, kwh; ``factors``: site -> adjusted kg-CO2/kWh or None."""
    sums = (settled.group_by("site")
            .agg(*[_kwh(pl.col(c)) for c in SETTLED_COLUMNS], pl.len().alias("slots"),
                 pl.col("provisional").sum().alias("slots_provisional"))
            if settled.height else pl.DataFrame(schema={"site": pl.String}))
    by_site = {row["site"]: row for row in sums.iter_rows(named=True)}
    pair_kwh = (flows.group_by("from", "to").agg(_kwh(pl.col("kwh"))).iter_rows()) if flows.height else []
    supplied_to: dict[str, list[tuple[str, float]]] = {}
    for source, target, kwh in pair_kwh:
        supplied_to.setdefault(source, []).append((target, kwh))
    out = []
    for participant in participants:
        site, role = participant["site"], participant["role"]
        row = by_site.get(site, {})
        values = {c: float(row.get(c) or 0.0) for c in SETTLED_COLUMNS}
        paid = yen(values["received_kwh"] * price_yen_per_kwh) if role == "consumer" else 0
        earned = yen(values["supplied_kwh"] * price_yen_per_kwh) if role == "producer" else 0
        if role == "consumer":
            factor = factors.get(site)
            co2 = None if factor is None else round(values["received_kwh"] * factor, KG_DECIMALS)
        else:
            parts = [(kwh, factors.get(target)) for target, kwh in supplied_to.get(site, [])]
            co2 = (None if any(f is None for _, f in parts)
                   else round(sum(kwh * f for kwh, f in parts), KG_DECIMALS))
        out.append({"site": site, "role": role, **{c: values[c] for c in ("supplied_kwh", "received_kwh")},
                    "yen": float(paid or earned), "yen_paid": float(paid), "yen_earned": float(earned),
                    "co2_avoided_kg": co2, "co2_note": "factor unknown" if co2 is None else "",
                    **{c: values[c] for c in ("generation_kwh", "consumption_kwh", "self_kwh", "export_kwh",
                                              "grid_kwh")},
                    "slots": int(row.get("slots") or 0), "slots_provisional": int(row.get("slots_provisional") or 0)})
    return out


def slot_totals(settled: pl.DataFrame) -> pl.DataFrame:
    """Per slot: generation (producers), consumption (consumers), shared (received), export, provisional."""
    producer, consumer = pl.col("role") == "producer", pl.col("role") == "consumer"
    return (settled.group_by("slot_start")
            .agg(_kwh(pl.col("generation_kwh").filter(producer)).alias("generation_kwh"),
                 _kwh(pl.col("consumption_kwh").filter(consumer)).alias("consumption_kwh"),
                 _kwh(pl.col("received_kwh")).alias("shared_kwh"),
                 _kwh(pl.col("export_kwh")).alias("export_kwh"),
                 _kwh(pl.col("self_kwh")).alias("self_kwh"),
                 pl.col("provisional").any().alias("provisional"))
            .sort("slot_start"))


def day_view(settled: pl.DataFrame, flows: pl.DataFrame) -> tuple[list[dict], list[dict]]:
    """(slots, flows) of GET .../day: per slot totals with ``slot`` (0-47); the day's kWh per pair."""
    totals = with_calendar(slot_totals(settled)) if settled.height else pl.DataFrame()
    slots = [{"slot_start": r["slot_start"], "slot": r["slot"], "generation_kwh": r["generation_kwh"],
              "consumption_kwh": r["consumption_kwh"], "shared_kwh": r["shared_kwh"],
              "export_kwh": r["export_kwh"], "provisional": r["provisional"]} for r in totals.iter_rows(named=True)]
    pairs = ([{"from": s, "to": t, "kwh": k} for s, t, k in
              flows.group_by("from", "to").agg(_kwh(pl.col("kwh"))).sort("from", "to").iter_rows()]
             if flows.height else [])
    return slots, pairs


def breakdown(settled: pl.DataFrame, extra_holidays: frozenset = frozenset()) -> list[dict]:
    """Day (08-22 JST) / night x weekday / holiday: generation, consumption, shared, export kWh, the
    share of the shareable energy that was shared and of the consumption that it covered."""
    if settled.height:
        totals = with_calendar(slot_totals(settled), extra_holidays=extra_holidays)
        grouped = {(r["day_type"], r["period"]): r for r in totals.group_by("day_type", "period").agg(
            pl.len().alias("slots"), *[_kwh(pl.col(c)) for c in ("generation_kwh", "consumption_kwh", "shared_kwh",
                                                                 "export_kwh")]).iter_rows(named=True)}
    else:
        grouped = {}
    out = []
    for day_type, period in BREAKDOWN_GROUPS:
        r = grouped.get((day_type, period), {})
        shared, export, used = (float(r.get(k) or 0.0) for k in ("shared_kwh", "export_kwh", "consumption_kwh"))
        out.append({"day_type": day_type, "period": period, "slots": int(r.get("slots") or 0),
                    "generation_kwh": float(r.get("generation_kwh") or 0.0), "consumption_kwh": used,
                    "shared_kwh": shared, "export_kwh": export,
                    "shared_fraction": round(shared / (shared + export), 4) if shared + export > 0 else None,
                    "coverage": round(shared / used, 4) if used > 0 else None})
    return out


def expected_slots(start_ms: int, end_ms: int) -> int:
    return (end_ms - start_ms) // SLOT_MS


def statements_csv(rows: list[dict], community: str, month: str, price: float) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["community", "month", "price_yen_per_kwh", *STATEMENT_COLUMNS])
    for row in rows:
        writer.writerow([community, month, price, *("" if row[c] is None else row[c] for c in STATEMENT_COLUMNS)])
    return buffer.getvalue()


def statements_xlsx(rows: list[dict], breakdown_rows: list[dict], community: str, month: str, price: float) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "statements"
    sheet.append(["community", community, "month", month, "price_yen_per_kwh", price])
    sheet.append(list(STATEMENT_COLUMNS))
    for row in rows:
        sheet.append([row[c] for c in STATEMENT_COLUMNS])
    sheet2 = book.create_sheet("breakdown")
    columns = list(breakdown_rows[0]) if breakdown_rows else []
    sheet2.append(columns)
    for row in breakdown_rows:
        sheet2.append([row[c] for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
