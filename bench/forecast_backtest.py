"""Backtest of the day-ahead forecasts (cloud/domains/forecast) over a year of 30-minute history.

For every day of the year, demand and PV are forecast as the job would have done it live:
at 10:00 JST the day before, from the history that had ended by then, with the model
retrained every 7 days (``backtest.walk_forward``). It prints, per target, the MAE of the
model and of the seasonal-naive baseline (the same slot one week earlier) in kWh per slot,
the skill score 1 - MAE_model / MAE_naive, and the run time.

History (``--history``):
* ``greencity``: the demo model of ``simulators.greencity`` (sme-press demand, hitachi-omika PV, 400 kWp);
* ``own``: ``bench/forecast_history.py`` (a factory with a day shift and unannounced overtime days,
  PV with a Markov sky and cloudy spells);
* ``both`` (default when simulators.greencity is importable).

    ./hinode.sh bench forecast_backtest [--history both|greencity|own] [--year 2025] [--retrain 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from bench.forecast_history import history as own_history  # noqa: E402
from cloud.domains._greencity.calendar import DAY_MS, date_start_ms  # noqa: E402
from cloud.domains.forecast import backtest, models  # noqa: E402

WARM_UP_DAYS = 35          # history before the first forecast day (the model needs 14 days, naive 7)
KWP = 400.0


def greencity_history(first: date, days: int) -> dict[str, pl.DataFrame]:
    from simulators.greencity.model import site_energy

    start, end = date_start_ms(first), date_start_ms(first) + days * DAY_MS
    press = site_energy("sme-press", start, end)
    omika = site_energy("hitachi-omika", start, end)
    return {"demand": pl.DataFrame({"slot_start": press.slot_start.astype("int64"), "kwh": press.import_kwh}),
            "pv": pl.DataFrame({"slot_start": omika.slot_start.astype("int64"), "kwh": omika.pv_kwh})}


def cpu_s() -> float:
    usage = os.times()
    return usage.user + usage.system


def run(name: str, series: dict[str, pl.DataFrame], first_day: date, last_day: date, retrain: int) -> list[str]:
    lines = []
    for target, spec in (("demand", models.TargetSpec("demand")), ("pv", models.TargetSpec("pv", kwp=KWP))):
        started, cpu = time.perf_counter(), cpu_s()
        forecasts = backtest.walk_forward(series[target], spec, first_day, last_day, retrain_every_days=retrain)
        result = backtest.scores(forecasts, series[target])
        wall, used = time.perf_counter() - started, cpu_s() - cpu
        mean = float(series[target]["kwh"].mean())
        lines.append(f"{name:<10} {target:<7} {result['slots']:>6} {mean:>10.2f} {result['mae']['gbr']:>10.3f} "
                     f"{result['mae']['seasonal_naive']:>10.3f} {result['skill']:>7.3f} {wall:>7.1f} {used:>7.1f}")
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", choices=("both", "greencity", "own"), default="both")
    parser.add_argument("--year", type=int, default=2025, help="forecast every day of this calendar year")
    parser.add_argument("--retrain", type=int, default=7, help="retrain every N days")
    args = parser.parse_args()
    first_day, last_day = date(args.year, 1, 1), date(args.year, 12, 31)
    history_first = first_day - timedelta(days=WARM_UP_DAYS)
    days = (last_day - history_first).days + 1
    sources = ["greencity", "own"] if args.history == "both" else [args.history]
    started = time.perf_counter()
    print(f"forecast days {first_day} .. {last_day}, retrained every {args.retrain} days, PV {KWP:.0f} kWp; "
          f"MAE in kWh per 30-minute slot over all slots (nights included)")
    print(f"{'history':<10} {'target':<7} {'slots':>6} {'mean kWh':>10} {'MAE gbr':>10} {'MAE naive':>10} "
          f"{'skill':>7} {'wall s':>7} {'cpu s':>7}")
    for source in sources:
        if source == "greencity":
            try:
                series = greencity_history(history_first, days)
            except ImportError as exc:
                print(f"greencity  skipped: simulators.greencity not importable ({exc})")
                continue
        else:
            series = own_history(history_first, days, kwp=KWP)
        run(source, series, first_day, last_day, args.retrain)
    print(f"total {time.perf_counter() - started:.1f} s wall, {cpu_s():.1f} s CPU (this process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
