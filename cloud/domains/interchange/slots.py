"""From meters' per-slot kWh to a community's slots, which of them are complete, and their
settlement (allocation + rule + provisional flag). Pure functions over polars frames, no I/O.

A meter counts as *measured* in a slot when it has readings in the slot **and** in an earlier and
a later slot: only then was the counter read before the slot's start and after its end, so all of
the slot's minutes are in its kWh (with the readings only up to some minute before the end, the
interpolation would leave the last minutes out and a late reading would change the slot). A slot
is *complete* when every meter of every participant is measured in it. Give these functions the
energy of one slot before and one after the slots in question.
"""

from __future__ import annotations

import polars as pl

from cloud.domains._greencity.calendar import OFFSET_MS, SLOT_MS
from cloud.domains.interchange.config import Community
from cloud.domains.interchange.service import ALLOCATION_SCHEMA, allocate_by_month, participants_frame

KINDS = ("generation", "export", "consumption")
COMMUNITY_SLOTS_SCHEMA = {"slot_start": pl.Int64, "site": pl.String, "generation_kwh": pl.Float64,
                          "consumption_kwh": pl.Float64, "shareable_kwh": pl.Float64}
STATUS_SCHEMA = {"slot_start": pl.Int64, "meters_expected": pl.Int64, "meters_measured": pl.Int64,
                 "meters_reporting": pl.Int64, "complete": pl.Boolean}
SETTLED_SCHEMA = {**ALLOCATION_SCHEMA, "rule": pl.String, "provisional": pl.Boolean}


def meters_frame(community: Community) -> pl.DataFrame:
    """site, device, metric, kind: every meter of the community."""
    rows = [{"site": p.site, "device": ref.device, "metric": ref.metric, "kind": kind}
            for p in community.participants for kind, ref in p.meter_refs().items()]
    return pl.DataFrame(rows, schema={"site": pl.String, "device": pl.String, "metric": pl.String, "kind": pl.String})


def community_participants(community: Community) -> pl.DataFrame:
    return participants_frame([{"site": p.site, "role": p.role, "static_share": p.static_share,
                                "priority": p.priority} for p in community.participants])


def _measured(slot_energy: pl.DataFrame) -> pl.DataFrame:
    key = ["site", "device", "metric"]
    read = pl.col("slot_start").filter(pl.col("readings") > 0)
    return (slot_energy
            .with_columns(read.min().over(key).alias("_first"), read.max().over(key).alias("_last"))
            .with_columns(((pl.col("readings") > 0) & (pl.col("slot_start") > pl.col("_first"))
                           & (pl.col("slot_start") < pl.col("_last"))).alias("measured")))


def community_slots(slot_energy: pl.DataFrame, meters: pl.DataFrame, slot_starts: list[int]) -> pl.DataFrame:
    """Every (slot, participant site) of ``slot_starts``: COMMUNITY_SLOTS_SCHEMA. A meter without
    a row in a slot gives null there (missing, never 0); shareable_kwh is the export meter's kWh
    (null for a producer without one: allocate then takes generation minus own consumption)."""
    sites = meters.select("site").unique()
    kind = pl.col("kind")
    values = (slot_energy.join(meters, on=["site", "device", "metric"], how="inner")
              .filter(pl.col("slot_start").is_in(pl.Series(slot_starts, dtype=pl.Int64).implode()))
              .group_by("slot_start", "site")
              .agg(*[pl.when((kind == k).any()).then(pl.col("kwh").filter(kind == k).sum()).alias(k) for k in KINDS]))
    if values.height < len(slot_starts) * sites.height:     # some (slot, site) has no meter at all: a row of nulls
        grid = pl.DataFrame({"slot_start": slot_starts}, schema={"slot_start": pl.Int64}).join(sites, how="cross")
        values = grid.join(values, on=["slot_start", "site"], how="left")
    # A producer with an export meter whose slot is missing offers 0 (not its whole generation).
    exporting = meters.filter(pl.col("kind") == "export")["site"].unique().implode()
    shareable = pl.when(pl.col("site").is_in(exporting)).then(pl.col("export").fill_null(0.0))
    return (values
            .select("slot_start", "site", pl.col("generation").alias("generation_kwh"),
                    pl.col("consumption").alias("consumption_kwh"), shareable.alias("shareable_kwh"))
            .cast(COMMUNITY_SLOTS_SCHEMA).sort("slot_start", "site"))


def slot_status(slot_energy: pl.DataFrame, meters: pl.DataFrame, slot_starts: list[int]) -> pl.DataFrame:
    """Per slot of ``slot_starts``: meters_expected, meters_measured, meters_reporting (with any
    kWh row, measured or interpolated), complete (STATUS_SCHEMA)."""
    grid = (pl.DataFrame({"slot_start": slot_starts}, schema={"slot_start": pl.Int64})
            .join(meters.select("site", "device", "metric").unique(), how="cross"))
    measured = _measured(slot_energy).select("site", "device", "metric", "slot_start", "measured")
    return (grid.join(measured, on=["site", "device", "metric", "slot_start"], how="left")
            .group_by("slot_start")
            .agg(pl.len().alias("meters_expected"), pl.col("measured").fill_null(False).sum().alias("meters_measured"),
                 pl.col("measured").is_not_null().sum().alias("meters_reporting"))
            .with_columns((pl.col("meters_measured") == pl.col("meters_expected")).alias("complete"))
            .cast(STATUS_SCHEMA).sort("slot_start"))


def rules_of_slots(community: Community, slot_starts: list[int]) -> pl.DataFrame:
    """slot_start, rule: the rule of each slot's month."""
    frame = pl.DataFrame({"slot_start": slot_starts}, schema={"slot_start": pl.Int64})
    month = (pl.col("slot_start") + OFFSET_MS).cast(pl.Datetime("ms")).dt.strftime("%Y-%m")
    frame = frame.with_columns(month.alias("month"))
    rule_of_month = {m: community.rule_for(m) for m in frame["month"].unique().to_list()}
    return frame.select("slot_start", pl.col("month").replace_strict(rule_of_month, return_dtype=pl.String)
                        .alias("rule"))


def to_settle(status: pl.DataFrame, settled: pl.DataFrame, as_of_ms: int, grace_s: int) -> pl.DataFrame:
    """Which slots of ``status`` to (re-)settle now: slot_start, provisional.

    ``settled``: slot_start, provisional of what is stored (final slots are left alone). A complete
    slot is settled final; an incomplete one provisionally once ``grace_s`` has passed since its end
    (a provisional one again, with whatever data has arrived), if any meter has reported in it at
    all: a slot without any data is not settled (missing, not zero)."""
    grace_over = pl.col("slot_start") + SLOT_MS + grace_s * 1000 <= as_of_ms
    stored = settled.select(pl.col("slot_start").cast(pl.Int64), pl.col("provisional").cast(pl.Boolean)
                            .alias("_stored_provisional")).unique("slot_start", keep="any")
    return (status.join(stored, on="slot_start", how="left")
            .filter(pl.col("_stored_provisional").is_null() | pl.col("_stored_provisional"))
            .filter(pl.col("complete") | (grace_over & (pl.col("meters_reporting") > 0)))
            .select("slot_start", (~pl.col("complete")).alias("provisional"))
            .sort("slot_start"))


def settle(community: Community, slot_energy: pl.DataFrame, chosen: pl.DataFrame) -> pl.DataFrame:
    """Allocation of the ``chosen`` slots (slot_start, provisional): SETTLED_SCHEMA. Missing meter
    values count as 0 in a provisional slot."""
    if chosen.height == 0:
        return pl.DataFrame(schema=SETTLED_SCHEMA)
    starts = chosen["slot_start"].to_list()
    slots = community_slots(slot_energy, meters_frame(community), starts)
    allocation = allocate_by_month(slots, community_participants(community), rules_of_slots(community, starts))
    return (allocation.join(chosen.select("slot_start", "provisional"), on="slot_start", how="left",
                            maintain_order="left")       # allocate_by_month sorted it by slot and site
            .select(list(SETTLED_SCHEMA)))
