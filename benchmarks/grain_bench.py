"""Benchmark the weekly capacity plan (`optimize --grain week`) against the daily plan of
the same days, on the shipped sample network (`data/sample/`, 48 facilities, 98 lanes).

Demand is the last `--weeks` whole ISO weeks of the sample history: each lane's daily
volume for the daily plan, and its ISO-week sums (a `grain` column, `date` the Monday) for
the weekly one, so both plan the same packages and no model is fitted. It prints, for each
plan: MIPs solved, wall seconds, objective, truck cost, trucks (daily) or loads (weekly),
the peak fleet in trucks a day, unserved volume and the facility-periods at capacity.

    .venv/bin/python benchmarks/grain_bench.py [--weeks 8] [--time-limit 60] [--days 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import polars as pl

from mmplan.config import OptimizeConfig
from mmplan.plan import demand_rows, optimize

DATA = Path(__file__).resolve().parent.parent / "data" / "sample"


def demand(weeks: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The daily rows of the last `weeks` whole ISO weeks, and those rows with their week
    sums (grain day and week)."""
    history = pl.read_parquet(DATA / "history.parquet")
    last: dt.date = history["date"].max()  # type: ignore[assignment]
    # The last whole week ends on the Sunday on or before the history's last day.
    end = last - dt.timedelta(days=last.isoweekday() % 7)
    start = end - dt.timedelta(days=7 * weeks - 1)
    days = history.filter(pl.col("date").is_between(start, end)).select(
        "date", "origin", "destination", "volume"
    )
    week = (
        days.group_by("origin", "destination", pl.col("date").dt.truncate("1w"))
        .agg(pl.col("volume").sum())
        .select(days.columns)
    )
    both = pl.concat(
        [days.with_columns(grain=pl.lit("day")), week.with_columns(grain=pl.lit("week"))]
    )
    return days, both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--days", type=int, default=7, help="operating days per week")
    args = parser.parse_args()
    nodes = pl.read_parquet(DATA / "nodes.parquet")
    lanes = pl.read_parquet(DATA / "lanes.parquet")
    days, both = demand(args.weeks)
    base = OptimizeConfig(time_limit=args.time_limit, operating_days_per_week=args.days)
    print(
        f"{args.weeks} weeks ({days['date'].min()} to {days['date'].max()}), "
        f"{days['volume'].sum():,.0f} packages, {lanes.height} lanes; "
        f"time_limit {args.time_limit:g} s a run; load {os.getloadavg()[0]:.1f}"
    )
    print(
        "plan   | MIPs | seconds | objective | truck cost | trucks/loads | peak fleet "
        "| unserved | facility-periods full"
    )
    for grain in ("day", "week"):
        cfg = base.model_copy(update={"grain": grain})
        rows = demand_rows(both, "volume", grain=grain)
        started = time.perf_counter()
        plan = optimize(rows, nodes, lanes, cfg, "volume")
        seconds = time.perf_counter() - started
        s = plan.summary
        full = plan.nodes.filter(pl.col("utilization") >= 0.999).height
        print(
            f"{grain:6} | {s['dates']:4} | {seconds:7.1f} | {s['objective']:,.0f} | "
            f"{s['totals']['truck_cost']:,.0f} | {s['totals']['trucks']:,.0f} | "
            f"{s['fleet']['peak']:,.0f} | {s['totals']['unserved_volume']:,.0f} | {full}"
        )
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
