"""Allocation of a community's shareable energy per 30-minute slot. Pure functions over polars
frames, no I/O (README.md in this folder has the rules with a worked example).

Per slot, the producers' shareable energy is pooled (``S``) and split among the consumers by the
rule; each producer then supplies its part of what was taken (``R``) in proportion to what it
offered, and exports the rest:

* ``static``: consumer c receives ``min(static_share_c * S, demand_c)``; an unused share is
  exported, not given to the others.
* ``pro_rata``: c receives ``demand_c * min(1, S / D)`` with ``D`` the consumers' total demand,
  i.e. S split in proportion to demand and capped at it.
* ``priority``: consumers in ascending ``priority`` take up to their demand until S is used;
  consumers with the same priority split what is left for them pro rata.

Numbers are rounded to ``DECIMALS`` (1e-6 kWh, a milliwatt-hour) as they are computed, and
export and grid are taken from the rounded ones, so reruns give identical numbers; a producer's
``generation = self + supplied + export`` holds to 1e-6 kWh (when it offers at most what it
generates), and a slot's supplied and received totals agree to the rounding of its rows.
"""

from __future__ import annotations

import polars as pl

from cloud.domains._greencity.calendar import SLOT_MS

RULES = ("static", "pro_rata", "priority")
ROLE = pl.Enum(["producer", "consumer"])
DECIMALS = 6
ALLOCATION_SCHEMA = {
    "slot_start": pl.Int64, "site": pl.String, "role": ROLE, "generation_kwh": pl.Float64,
    "consumption_kwh": pl.Float64, "shareable_kwh": pl.Float64, "supplied_kwh": pl.Float64,
    "received_kwh": pl.Float64, "self_kwh": pl.Float64, "export_kwh": pl.Float64, "grid_kwh": pl.Float64,
}
FLOW_SCHEMA = {"slot_start": pl.Int64, "from": pl.String, "to": pl.String, "kwh": pl.Float64}
PARTICIPANT_SCHEMA = {"site": pl.String, "role": pl.String, "static_share": pl.Float64, "priority": pl.Int64}


def participants_frame(rows: list[dict]) -> pl.DataFrame:
    """site, role, static_share, priority from dicts (missing keys: null)."""
    return pl.DataFrame([{k: r.get(k) for k in PARTICIPANT_SCHEMA} for r in rows], schema=PARTICIPANT_SCHEMA)


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """min(1, n / d); 0 for 0 / 0 (x / 0 = inf is capped at 1, and only ever multiplies a 0)."""
    return (numerator / denominator).clip(upper_bound=1.0).fill_nan(0.0)


def _received(rule: str, demand: pl.Expr, pool: pl.Expr, total_demand: pl.Expr) -> pl.Expr:
    # Producers have demand 0, so each formula gives them 0.
    if rule == "static":
        return pl.min_horizontal(pl.col("static_share") * pool, demand)
    if rule == "pro_rata":
        return demand * _ratio(pool, total_demand)
    # priority: what the higher-priority consumers took first is gone; the tie group shares the rest.
    left = (pool - pl.col("_before")).clip(lower_bound=0.0)
    return (demand * _ratio(left, pl.col("_group"))).fill_null(0.0)


def _with_priority_groups(frame: pl.LazyFrame, slot_start: pl.Series, levels: int) -> pl.LazyFrame:
    """Adds ``_group`` (the slot's demand at the row's priority level) and ``_before`` (at the levels
    before it). Slots on the 30-minute grid get a dense (slot, level) index, and the small table of
    sums is gathered by it; other slot starts join it back on a (slot, level) key."""
    first, last = (slot_start.min() or 0), (slot_start.max() or 0)
    cells = ((last - first) // SLOT_MS + 1) * levels
    dense = cells <= 4 * len(slot_start) + 10_000 and bool(((slot_start - first) % SLOT_MS == 0).all())
    slot_key = (pl.col("slot_start") - first) // SLOT_MS if dense else pl.col("slot_start")
    frame = frame.with_columns((slot_key * levels + pl.col("_level")).alias("_key")).collect().lazy()
    sums = frame.group_by("_key").agg(pl.col("_demand").sum().alias("_group"))   # producers add 0
    if dense:
        sums = pl.LazyFrame({"_key": pl.int_range(0, cells, eager=True)}).join(sums, on="_key", how="left")
    table = (sums.with_columns(pl.col("_group").fill_null(0.0)).sort("_key")
             .with_columns((pl.col("_group").cum_sum().over(pl.col("_key") // levels) - pl.col("_group"))
                           .alias("_before")).collect())
    if dense:
        return frame.with_columns(pl.lit(table["_group"]).gather(pl.col("_key")).alias("_group"),
                                  pl.lit(table["_before"]).gather(pl.col("_key")).alias("_before"))
    return frame.join(table.lazy(), on="_key", how="left")


def allocate(slots: pl.DataFrame, participants: pl.DataFrame, rule: str) -> pl.DataFrame:
    """Per (slot_start, site) of ``slots`` whose site is a participant: ALLOCATION_SCHEMA.

    ``slots``: slot_start (ms), site, generation_kwh, consumption_kwh and optionally shareable_kwh
    (null = not metered). A producer's shareable energy is shareable_kwh (its metered export) when
    given, else generation minus its own consumption (when metered), at least 0. A consumer's
    demand is its consumption. Nulls count as 0 (the caller marks such slots provisional).
    ``participants``: site, role (producer|consumer), static_share, priority (PARTICIPANT_SCHEMA).
    Rows come in no defined order (sorting 5 M rows would double the time): sort to compare or show.
    """
    if rule not in RULES:
        raise ValueError(f"rule {rule!r} is not one of {', '.join(RULES)}")
    parts = participants.select(
        pl.col("site").cast(pl.String), pl.col("role").cast(ROLE), (pl.col("role") == "producer").alias("producer"),
        pl.col("static_share").cast(pl.Float64).fill_null(0.0),
        pl.col("priority").cast(pl.Int64).fill_null(0))
    parts = parts.with_columns(pl.when("producer").then(0.0).otherwise(pl.col("static_share")).alias("static_share"),
                               (pl.col("priority").rank("dense") - 1).cast(pl.Int64).alias("_level"))
    levels = parts["_level"].max() + 1 if parts.height else 1
    if parts["site"].n_unique() != parts.height:
        raise ValueError("participants list a site more than once")
    # A year of 300 sites is 5 M rows: no join with the participants and no strings per row. Each
    # row's site becomes its participant's index (an Enum of the sites; others: null, left out) and
    # the per-participant values are gathered by it.
    index = pl.col("_index")

    def of_participant(name: str) -> pl.Expr:
        return pl.lit(parts[name]).gather(index).alias(name)

    is_producer = pl.col("_producer")
    gen, cons = pl.col("generation_kwh").fill_null(0.0), pl.col("consumption_kwh").fill_null(0.0)
    net = (gen - cons).clip(lower_bound=0.0)
    has_share = "shareable_kwh" in slots.columns
    offered = pl.coalesce(pl.col("shareable_kwh"), net) if has_share else net
    per_site = {"static": "static_share", "priority": "_level"}.get(rule)
    frame = (
        slots.lazy()
        .select(pl.col("slot_start").cast(pl.Int64), pl.col("site").cast(pl.String),
                pl.col("generation_kwh").cast(pl.Float64), pl.col("consumption_kwh").cast(pl.Float64),
                *([pl.col("shareable_kwh").cast(pl.Float64)] if has_share else []))
        .with_columns(pl.col("site").cast(pl.Enum(parts["site"].to_list()), strict=False).to_physical()
                      .alias("_index"))
        .filter(index.is_not_null())
        .with_columns(of_participant("producer").alias("_producer"), *([of_participant(per_site)] if per_site else []))
        .with_columns(pl.when(is_producer).then(offered).otherwise(0.0).alias("_offer"),
                      pl.when(is_producer).then(0.0).otherwise(cons).alias("_demand"))
        .with_columns(pl.col("_offer").sum().over("slot_start").alias("_pool"),
                      pl.col("_demand").sum().over("slot_start").alias("_total"))
    )
    if rule == "priority":
        frame = _with_priority_groups(frame, slots["slot_start"], levels)
    received = _received(rule, pl.col("_demand"), pl.col("_pool"), pl.col("_total")).round(DECIMALS)
    frame = frame.with_columns(received.alias("received_kwh"))
    # What the consumers took together: min(S, D) under pro_rata and priority; a sum under static.
    taken = (pl.col("received_kwh").sum().over("slot_start") if rule == "static"
             else pl.min_horizontal(pl.col("_pool"), pl.col("_total")))
    # Consumers offer 0, so they supply 0.
    supplied = (pl.col("_offer") * _ratio(taken, pl.col("_pool"))).fill_nan(0.0).round(DECIMALS)
    frame = frame.with_columns(supplied.alias("supplied_kwh"))
    self_used = pl.when(is_producer).then((gen - pl.col("_offer")).clip(lower_bound=0.0)).otherwise(0.0)
    return (
        frame.with_columns(
            of_participant("role"),
            pl.col("_offer").round(DECIMALS).alias("shareable_kwh"),
            self_used.round(DECIMALS).alias("self_kwh"),
            (pl.col("_offer").round(DECIMALS) - pl.col("supplied_kwh")).round(DECIMALS).alias("export_kwh"),
            pl.when(is_producer).then((cons - self_used).clip(lower_bound=0.0))
            .otherwise(pl.col("_demand").round(DECIMALS) - pl.col("received_kwh")).round(DECIMALS).alias("grid_kwh"),
        )
        .select(list(ALLOCATION_SCHEMA))
        .collect()
    )


def flows(allocation: pl.DataFrame, *, zero_pairs: pl.DataFrame | None = None) -> pl.DataFrame:
    """From producer to consumer per slot (FLOW_SCHEMA): each consumer's received energy split
    among the producers in proportion to what each supplied in that slot; only kWh > 0, plus a 0
    for each pair of ``zero_pairs`` (from, to) in every slot where it has no flow (stored, so a
    re-settled slot overwrites a flow that is gone)."""
    producers = (allocation.lazy().filter((pl.col("role") == "producer") & (pl.col("supplied_kwh") > 0))
                 .select("slot_start", pl.col("site").alias("from"), "supplied_kwh")
                 .with_columns(pl.col("supplied_kwh").sum().over("slot_start").alias("_supplied")))
    consumers = (allocation.lazy().filter((pl.col("role") == "consumer") & (pl.col("received_kwh") > 0))
                 .select("slot_start", pl.col("site").alias("to"), "received_kwh"))
    positive = (producers.join(consumers, on="slot_start", how="inner")
                .select("slot_start", "from", "to",
                        (pl.col("received_kwh") * pl.col("supplied_kwh") / pl.col("_supplied")).round(DECIMALS)
                        .alias("kwh"))
                .collect().cast(FLOW_SCHEMA))
    if zero_pairs is not None and zero_pairs.height:
        grid = (allocation.select("slot_start").unique()
                .join(zero_pairs.select(pl.col("from").cast(pl.String), pl.col("to").cast(pl.String)).unique(),
                      how="cross"))
        zeros = (grid.join(positive, on=["slot_start", "from", "to"], how="anti")
                 .with_columns(pl.lit(0.0).alias("kwh")).cast(FLOW_SCHEMA))
        positive = pl.concat([positive, zeros.select(list(FLOW_SCHEMA))])
    return positive.sort("slot_start", "from", "to")


def allocate_by_month(slots: pl.DataFrame, participants: pl.DataFrame, rule_of_slot: pl.DataFrame) -> pl.DataFrame:
    """``allocate`` with the rule per slot: ``rule_of_slot`` has slot_start, rule (the month's rule).
    Answers ALLOCATION_SCHEMA plus ``rule``."""
    tagged = slots.join(rule_of_slot.select("slot_start", "rule"), on="slot_start", how="inner")
    parts = [allocate(tagged.filter(pl.col("rule") == rule), participants, rule)
             .with_columns(pl.lit(rule).alias("rule"))
             for rule in sorted(tagged["rule"].unique().to_list())]
    if not parts:
        return pl.DataFrame(schema={**ALLOCATION_SCHEMA, "rule": pl.String})
    return pl.concat(parts).sort("slot_start", "site")
