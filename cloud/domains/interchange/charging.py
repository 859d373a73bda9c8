"""Tomorrow's expected community surplus as a charging site's target. Pure, no I/O.

Per slot the expected surplus is the expected shareable energy minus the consumers' expected
demand (kWh). The target is the longest run of consecutive slots whose surplus is positive
(ties: the one with more energy, then the earliest), at the run's mean surplus power
``mean(kWh per slot) x 2`` (a slot is half an hour) capped at the participant's ``max_kw``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cloud.domains._greencity.calendar import SLOT_MS

SLOTS_PER_HOUR = 3_600_000 // SLOT_MS
EXPECTED_SCHEMA = {"slot_start": pl.Int64, "shareable_kwh": pl.Float64, "demand_kwh": pl.Float64}


@dataclass(frozen=True)
class ChargingTarget:
    from_ms: int
    until_ms: int
    power_kw: float
    surplus_kwh: float       # the window's expected surplus
    slots: int

    def params(self) -> dict:
        """The ``site_target`` command's params."""
        return {"power_kw": self.power_kw, "from_ts": self.from_ms, "until_ts": self.until_ms}


def choose_window(expected: pl.DataFrame, max_kw: float) -> ChargingTarget | None:
    """``expected``: slot_start, shareable_kwh, demand_kwh (EXPECTED_SCHEMA). None without surplus."""
    frame = (expected.sort("slot_start")
             .with_columns((pl.col("shareable_kwh") - pl.col("demand_kwh")).alias("surplus"))
             .filter(pl.col("surplus").is_not_null()))
    best: tuple[tuple[int, float, int], list[int]] | None = None   # ((slots, kWh, -first index), run)
    run: list[int] = []
    rows = frame.select("slot_start", "surplus").rows()
    for i, (start, surplus) in enumerate(rows + [(None, None)]):
        contiguous = run and start is not None and start == rows[run[-1]][0] + SLOT_MS
        if start is not None and surplus > 0 and (not run or contiguous):
            run.append(i)
            continue
        if run:
            energy = sum(rows[j][1] for j in run)
            key = (len(run), energy, -run[0])
            if best is None or key > best[0]:
                best = (key, run)
        run = [i] if start is not None and surplus > 0 else []
    if best is None:
        return None
    (count, energy, _), indices = best
    mean_kw = energy / count * SLOTS_PER_HOUR
    return ChargingTarget(from_ms=rows[indices[0]][0], until_ms=rows[indices[-1]][0] + SLOT_MS,
                          power_kw=round(min(mean_kw, max_kw), 3), surplus_kwh=round(energy, 6), slots=count)


def combine_expected(slot_starts: list[int], forecast: pl.DataFrame, week_before: pl.DataFrame) -> pl.DataFrame:
    """EXPECTED_SCHEMA for ``slot_starts``: per participant and slot the forecast when there is one,
    else the same slot one week earlier; producers' kWh summed as shareable, consumers' as demand.

    Both inputs: site, role, slot_start, kwh (producer: shareable kWh; consumer: demand kWh);
    ``week_before`` at its own times (shifted by 7 days here). A slot with neither counts 0."""
    week_ms = 7 * 48 * SLOT_MS
    shifted = week_before.with_columns(pl.col("slot_start") + week_ms)
    grid = (pl.DataFrame({"slot_start": slot_starts}, schema={"slot_start": pl.Int64})
            .join(pl.concat([forecast.select("site", "role"), week_before.select("site", "role")]).unique(),
                  how="cross"))
    key = ["site", "role", "slot_start"]
    values = (grid.join(forecast.select(*key, pl.col("kwh").alias("forecast")), on=key, how="left")
              .join(shifted.select(*key, pl.col("kwh").alias("fallback")), on=key, how="left")
              .with_columns(pl.coalesce("forecast", "fallback").fill_null(0.0).alias("kwh")))
    return (pl.DataFrame({"slot_start": slot_starts}, schema={"slot_start": pl.Int64})
            .join(values.group_by("slot_start").agg(
                pl.col("kwh").filter(pl.col("role") == "producer").sum().alias("shareable_kwh"),
                pl.col("kwh").filter(pl.col("role") == "consumer").sum().alias("demand_kwh")),
                on="slot_start", how="left")
            .with_columns(pl.col("shareable_kwh").fill_null(0.0), pl.col("demand_kwh").fill_null(0.0))
            .cast(EXPECTED_SCHEMA).sort("slot_start"))
