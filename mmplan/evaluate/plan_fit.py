"""Plan against actuals: did the trucks and facilities of a plan hold the volume that came?

Per lane and observed day of the plan, the planned capacity is trucks x truck_capacity
(trucks.parquet; the truck capacity from the lanes table when given, else read back from
the plan itself as volume / (utilization x trucks), which is exact for every lane the plan
loaded). Against the actual lane volume:

- overflow = max(0, actual - capacity): volume that did not fit on the planned trucks (a
  lane the plan ran no truck on overflows all of its volume);
- idle = max(0, capacity - actual): capacity paid for and not used.

Per facility and day, actual throughput is measured as the optimizer defines it, the larger
of the actual volume arriving and leaving on lanes, against the plan's capacity plus the
capacity it added (nodes.parquet; a null capacity is unlimited).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from mmplan.errors import DataError
from mmplan.evaluate.metrics import finite, ratio
from mmplan.tables import LANE_KEYS

__all__ = ["PlanFit", "truck_capacities", "plan_fit"]


@dataclass(frozen=True)
class PlanFit:
    """How a plan held up: per lane-day, per lane overall, per facility-day, and totals.

    `lanes`: origin, destination, date, trucks, truck_capacity, capacity, planned, actual,
    overflow, idle. `by_lane`: origin, destination, actual, capacity, overflow, idle,
    overflow_share. `facilities`: node, date, planned, actual, capacity, over, utilization.
    `network`: totals and shares (JSON-able), `dates`: the plan's dates that were observed.
    """

    lanes: pl.DataFrame
    by_lane: pl.DataFrame
    facilities: pl.DataFrame
    network: dict[str, Any]
    dates: list[dt.date]


def truck_capacities(trucks: pl.DataFrame, lanes: pl.DataFrame | None) -> pl.DataFrame:
    """origin, destination, truck_capacity of every lane in the plan.

    From `lanes` when given; otherwise read back from the plan (volume / (utilization x
    trucks) on a day the lane carried volume). DataError (65) naming the lanes when a lane
    runs trucks but never carried volume and no lanes table says its capacity."""
    if lanes is not None:
        return lanes.select(*LANE_KEYS, pl.col("truck_capacity").cast(pl.Float64))
    loaded = trucks.filter((pl.col("utilization") > 0) & (pl.col("trucks") > 0))
    derived = loaded.group_by(LANE_KEYS).agg(
        (pl.col("volume") / (pl.col("utilization") * pl.col("trucks")))
        .median()
        .alias("truck_capacity")
    )
    missing = (
        trucks.filter(pl.col("trucks") > 0)
        .select(LANE_KEYS)
        .unique()
        .join(derived, on=LANE_KEYS, how="anti")
        .sort(LANE_KEYS)
    )
    if missing.height:
        names = ", ".join(f"{o}->{d}" for o, d in missing.head(5).rows())
        raise DataError(
            f"the plan's trucks.parquet runs trucks on {missing.height} lanes that carried no "
            f"volume ({names}), so their truck capacity cannot be read from the plan. Pass "
            "the lanes table the plan was made with: --lanes LANES."
        )
    return derived


def _lane_days(
    trucks: pl.DataFrame, capacity: pl.DataFrame, actual: pl.DataFrame, dates: list[dt.date]
) -> pl.DataFrame:
    """Every lane-day a plan ran trucks on or the actuals carried volume on, on `dates`."""
    keys = [*LANE_KEYS, "date"]
    planned = trucks.filter(pl.col("date").is_in(dates)).select(
        *keys, pl.col("trucks").cast(pl.Float64), pl.col("volume").alias("planned")
    )
    moved = actual.filter(pl.col("date").is_in(dates) & (pl.col("volume") > 0)).select(
        *keys, pl.col("volume").alias("actual")
    )
    both = planned.join(moved, on=keys, how="full", coalesce=True)
    return (
        both.join(capacity, on=LANE_KEYS, how="left")
        .with_columns(
            pl.col("trucks").fill_null(0.0),
            pl.col("planned").fill_null(0.0),
            pl.col("actual").fill_null(0.0),
        )
        .with_columns(
            (pl.col("trucks") * pl.col("truck_capacity").fill_null(0.0)).alias("capacity")
        )
        .with_columns(
            (pl.col("actual") - pl.col("capacity")).clip(0).alias("overflow"),
            (pl.col("capacity") - pl.col("actual")).clip(0).alias("idle"),
        )
        .select(
            *keys,
            "trucks",
            "truck_capacity",
            "capacity",
            "planned",
            "actual",
            "overflow",
            "idle",
        )
        .sort(keys)
    )


def _facilities(nodes: pl.DataFrame, actual: pl.DataFrame, dates: list[dt.date]) -> pl.DataFrame:
    """Actual throughput per facility-day (the larger of in and out) against capacity."""
    day = actual.filter(pl.col("date").is_in(dates))
    out = day.group_by(pl.col("origin").alias("node"), "date").agg(
        pl.col("volume").sum().alias("o")
    )
    inn = day.group_by(pl.col("destination").alias("node"), "date").agg(
        pl.col("volume").sum().alias("i")
    )
    flows = out.join(inn, on=["node", "date"], how="full", coalesce=True).select(
        "node",
        "date",
        pl.max_horizontal(pl.col("o").fill_null(0.0), pl.col("i").fill_null(0.0)).alias("actual"),
    )
    plan = nodes.filter(pl.col("date").is_in(dates)).select(
        "node",
        "date",
        pl.col("throughput").alias("planned"),
        (pl.col("capacity") + pl.col("added_capacity").fill_null(0.0)).alias("capacity"),
    )
    return (
        plan.join(flows, on=["node", "date"], how="full", coalesce=True)
        .with_columns(pl.col("planned").fill_null(0.0), pl.col("actual").fill_null(0.0))
        .with_columns(
            pl.when(pl.col("capacity").is_null())
            .then(0.0)
            .otherwise((pl.col("actual") - pl.col("capacity")).clip(0))
            .alias("over"),
            ratio(pl.col("actual"), pl.col("capacity")).alias("utilization"),
        )
        .select("node", "date", "planned", "actual", "capacity", "over", "utilization")
        .sort("node", "date")
    )


def plan_fit(
    trucks: pl.DataFrame,
    nodes: pl.DataFrame,
    actual: pl.DataFrame,
    observed: list[dt.date],
    lanes: pl.DataFrame | None = None,
) -> PlanFit:
    """The plan's trucks and facilities against the actual lane volumes (origin,
    destination, date, volume) on the plan's dates that are in `observed`."""
    plan_dates = sorted(set(trucks.get_column("date").to_list()) | set(nodes["date"].to_list()))
    dates = [d for d in plan_dates if d in set(observed)]
    lane_days = _lane_days(trucks, truck_capacities(trucks, lanes), actual, dates)
    by_lane = (
        lane_days.group_by(LANE_KEYS)
        .agg(pl.col("actual", "capacity", "overflow", "idle").sum())
        .with_columns(ratio(pl.col("overflow"), pl.col("actual")).alias("overflow_share"))
        .sort("overflow", *LANE_KEYS, descending=[True, False, False])
    )
    facilities = _facilities(nodes, actual, dates)
    sums = lane_days.select(pl.col("actual", "capacity", "overflow", "idle").sum()).row(
        0, named=True
    )
    network = {
        "plan_dates": len(plan_dates),
        "observed_dates": len(dates),
        "actual": sums["actual"],
        "capacity": sums["capacity"],
        "overflow": sums["overflow"],
        "idle": sums["idle"],
        "overflow_share": finite(
            sums["overflow"] / sums["actual"]
            if sums["actual"]
            else (0.0 if not sums["overflow"] else None)
        ),
        "idle_share": finite(sums["idle"] / sums["capacity"]) if sums["capacity"] else 0.0,
        "lanes_overflowing": by_lane.filter(pl.col("overflow") > 0).height,
        "facility_days_over": facilities.filter(pl.col("over") > 0).height,
    }
    return PlanFit(lane_days, by_lane, facilities, network, dates)
