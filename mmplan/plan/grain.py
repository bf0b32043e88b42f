"""Weekly and monthly capacity plans: one MIP per period, trucks as loads.

`optimize --grain week` (or month) plans a forecast's week (month) rows with the daily
model unchanged (mmplan.plan.model), on the network scaled to the period. A lane runs at
most one truck a day on each of the period's operating days, so with D operating days

    loads y_a per period,  y_a <= D x max_trucks_a,  volume <= truck_capacity_a x y_a,
    throughput θ_n <= D x (capacity_n + added_n),  added_n <= D x extra_capacity_n,
    Σ_a y_a <= D x F,  Σ_{a ∈ out(o)} y_a <= D x F_o      (fleet budgets, per day),

and cost per truck, per package, handling and penalty as a day's. D counts the period's
days that fall on the first `operating_days_per_week` weekdays of their ISO week (Monday
first): `operating_days_per_week` for a whole week. A partial period (a long-range
forecast's first or last week or month, which sums only the horizon's days in it) counts
only the days it covers, so its capacity, loads and budgets are pro-rated to them rather
than the whole period's (a partial period with no operating day moves nothing).
`transit_days` is still ignored: a period's volume ships and arrives within it.

From the plan: the fleet per origin and period (loads / D, rounded up: trucks a day) and
its peak, where each fleet budget binds and, measured by re-solving those periods with one
more truck a day (D more loads), where it falls short; and each limited facility's
throughput against its period's capacity, where it binds, its shadow price, and the volume
unserved on pairs starting or ending at it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from mmplan.config import OptimizeConfig
from mmplan.plan.assemble import METHOD, Plan, assemble
from mmplan.plan.demand import COVERED, Day, grain_rows, period_coverage, scenario, with_coverage
from mmplan.plan.fleet import TOTAL, plus_one
from mmplan.plan.marginal import METHOD_NOTE, MIN_SECONDS, plan_config
from mmplan.plan.network import Network
from mmplan.plan.parallel import Failed, solve_dates

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "optimize_grain",
    "operating_days",
    "period_end",
    "period_network",
    "coverage",
    "FLEET",
    "CAPACITY",
]

# A facility binds when its throughput reaches this share of its capacity (as the plan
# summary's "days full" counts).
FULL = 0.999
# The extra tables a grain plan's folder holds, beside the four plan tables.
FLEET, CAPACITY = "fleet", "capacity"


def period_end(start: dt.date, grain: str) -> dt.date:
    """The last day of the week (month) starting `start`."""
    if grain == "week":
        return start + dt.timedelta(days=6)
    if grain == "month":
        return start.replace(day=calendar.monthrange(start.year, start.month)[1])
    return start


def operating_days(
    start: dt.date,
    grain: str,
    per_week: int,
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> int:
    """Operating days of the period starting `start`: its days among the first `per_week`
    weekdays (Monday first) of their ISO weeks (`per_week` for a whole week), counting only
    the days from `first` to `last` when the period is covered in part (default: all)."""
    if grain not in ("week", "month"):
        return 1
    lo, hi = first or start, last or period_end(start, grain)
    return sum((lo + dt.timedelta(days=i)).weekday() < per_week for i in range((hi - lo).days + 1))


def _times(limit: Any, days: int) -> Any:
    """A per-day limit over `days` days; unlimited (inf) stays unlimited even at 0 days,
    where inf x 0 would be NaN."""
    if days > 0:
        return limit * days
    return np.where(np.isinf(limit), limit, 0.0) if isinstance(limit, np.ndarray) else limit


def period_network(net: Network, days: int) -> Network:
    """`net` for a period of `days` operating days: per-day limits (facility and added
    capacity, max_trucks, fleet budgets) times `days`; costs and truck capacity as they are.
    With no operating day no lane runs (max_trucks 0, unlimited ones too)."""
    return replace(
        net,
        cap=_times(net.cap, days),
        extra=_times(net.extra, days),
        maxt=net.maxt * days if days > 0 else np.zeros_like(net.maxt),
        fleet_total=_times(net.fleet_total, days),
        fleet_node=None if net.fleet_node is None else _times(net.fleet_node, days),
    )


class Coverage(NamedTuple):
    """The days of one period a plan covers: first and last, how many, of how many."""

    first: dt.date
    last: dt.date
    days: int  # calendar days covered
    length: int  # calendar days in the whole period


def coverage(demand: pl.DataFrame, labelled: pl.DataFrame, grain: str) -> dict[Any, Coverage]:
    """Per period start, the days the demand covers: its COVERED columns (demand_rows adds
    them), else the day rows of the table it came with, else the whole period."""
    starts = demand.select("date").unique()
    if set(COVERED) <= set(demand.columns):
        got = demand.group_by("date").agg(pl.col(COVERED[0]).min(), pl.col(COVERED[1]).max())
    else:
        got = with_coverage(starts, period_coverage(labelled, grain), grain)
    out = {}
    for start, first, last in got.select("date", *COVERED).iter_rows():
        # Clipped to the period: coverage outside it is a malformed table, not more days.
        end = period_end(start, grain)
        lo, hi = max(first, start), min(last, end)
        if lo > hi:
            lo, hi = start, end
        out[start] = Coverage(lo, hi, (hi - lo).days + 1, (end - start).days + 1)
    return out


def optimize_grain(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    columns: list[str],
    *,
    progress: Callable[[int, int, str], None] | None = None,
    engine: Engine | None = None,
) -> dict[str, Plan]:
    """One week (month) plan per demand column: every (column, period) its own MIP on the
    network scaled to the period, solved together as a daily run's dates are."""
    started = time.perf_counter()
    grain = config.grain
    # From Python, demand may come without the grain column (rows already picked by
    # demand_rows) or with it: either way, plan only `grain` rows dated on period starts,
    # so daily rows are never taken for weeks.
    labelled = demand if "grain" in demand.columns else demand.with_columns(grain=pl.lit(grain))
    demand = grain_rows(labelled, grain)[0]
    covered = coverage(demand, labelled, grain)
    parts = {c: scenario(demand, nodes, lanes, config, c) for c in dict.fromkeys(columns)}
    net, _, penalty, _ = next(iter(parts.values()))
    # A partial period's operating days are those of the days it covers (module docstring).
    per_week = config.operating_days_per_week
    days_of = {
        d.date: operating_days(d.date, grain, per_week, *covered[d.date][:2])
        for part in parts.values()
        for d in part.days
    }
    nets = {n: period_network(net, n) for n in set(days_of.values())}
    tasks = [(c, day) for c, part in parts.items() for day in part.days]
    outcomes = solve_dates(
        [nets[days_of[d.date]] for _, d in tasks],
        [d for _, d in tasks],
        penalty,
        plan_config(config, [net]),  # the one-more-truck re-solves' reserve, if a budget
        started,
        progress,
        engine,
    )
    plans = {}
    for c, part in parts.items():
        mine = [o for (tc, _), o in zip(tasks, outcomes, strict=True) if tc == c]
        day_nets = [nets[days_of[d.date]] for d in part.days]
        plan = assemble(net, mine, penalty, config, c, part.scale, started, METHOD, nets=day_nets)
        periods = {
            d.date: PeriodPlan(d, nets[days_of[d.date]], days_of[d.date], covered[d.date])
            for d in part.days
        }
        fleet = _fleet_table(plan, net, periods)
        saved = _one_more_truck(plan, _binding(fleet), periods, penalty, config, engine, started)
        capacity = _capacity_table(plan, periods)
        lp = _Relaxation(net, penalty, c, part.scale)
        capacity = capacity.join(
            _capacity_values(capacity, periods, lp, config, engine, started),
            on=["node", "date"],
            how="left",
        )
        _add_grain(plan, _with_shortfall(fleet, saved), capacity, periods, config, saved)
        plans[c] = plan
    return plans


class PeriodPlan(NamedTuple):
    """One period to plan: its demand, its network, its operating days and its coverage."""

    day: Day
    net: Network
    days: int
    covered: Coverage


Periods = dict[Any, PeriodPlan]  # by period start


def _binding(fleet: pl.DataFrame) -> list[tuple[str, Any]]:
    """(budget, period) where the plan needs every truck a day of the budget: its fleet
    (loads / operating days, rounded up) reaches the budget per day."""
    rows = fleet.filter(pl.col("binds"))
    names = [TOTAL if lv == "total" else o for lv, o in rows.select("level", "origin").rows()]
    return list(zip(names, rows["date"].to_list(), strict=True))


def _one_more_truck(
    plan: Plan,
    binding: list[tuple[str, Any]],
    periods: Periods,
    penalty: float,
    config: OptimizeConfig,
    engine: Engine | None,
    started: float,
) -> dict[tuple[str, Any], float | None]:
    """Per binding (budget, period), the cost one more truck a day (D more loads) saves,
    measured by re-solving the period within what is left of the run's `time_limit`
    (None: not measured, with --relax, marginal_value = false, no time left, or a re-solve
    that failed)."""
    left = started + 0.95 * config.time_limit - time.perf_counter()
    if not binding or not config.fleet.marginal_value or config.relax or left < MIN_SECONDS:
        return {key: None for key in binding}
    plus = []
    for name, date in binding:
        pnet, days = periods[date].net, periods[date].days
        for _ in range(days):  # one truck a day more is `days` more loads in the period
            pnet = plus_one(pnet, name)
        plus.append(pnet)
    outs = solve_dates(
        plus,
        [periods[date].day for _, date in binding],
        penalty,
        config,
        started,
        None,
        engine,
        catch=True,
    )
    saved: dict[tuple[str, Any], float | None] = {}
    for key, out in zip(binding, outs, strict=True):
        before = float(plan.summary["per_date"][str(key[1])]["objective"])
        saved[key] = None if isinstance(out, Failed) else max(before - out.day.objective, 0.0)
    return saved


def _fleet_table(plan: Plan, net: Network, periods: Periods) -> pl.DataFrame:
    """Per period, network-wide (level total) and per origin facility (level origin): loads,
    the fleet they need (trucks a day), the budget per day and per period, and whether the
    fleet reaches the budget (binds)."""
    days = _period_days(periods)
    t = plan.trucks
    origins = pl.DataFrame(
        {"origin": sorted(set(t["origin"].to_list()))}, schema={"origin": pl.String}
    )
    per_origin = (
        origins.join(days, how="cross")
        .join(
            t.group_by("origin", "date").agg(pl.col("trucks").sum().alias("loads")),
            on=["origin", "date"],
            how="left",
        )
        .with_columns(pl.lit("origin").alias("level"))
    )
    total = days.join(
        t.group_by("date").agg(pl.col("trucks").sum().alias("loads")), on="date", how="left"
    ).with_columns(pl.lit("total").alias("level"), pl.lit(None, dtype=pl.String).alias("origin"))
    budgets = {
        str(net.names[i]): float(net.fleet_node[i])
        for i in range(net.n)
        if net.fleet_node is not None and math.isfinite(net.fleet_node[i])
    }
    if math.isfinite(net.fleet_total):
        budgets[TOTAL] = net.fleet_total
    frame = pl.concat([total.select(per_origin.columns), per_origin]).with_columns(
        pl.col("loads").fill_null(0.0)
    )
    key = pl.when(pl.col("level") == "total").then(pl.lit(TOTAL)).otherwise(pl.col("origin"))
    # No operating day (a partial period): no lane runs, so no loads and no fleet.
    per_day = pl.col("loads") / pl.col("operating_days").clip(lower_bound=1)
    frame = frame.with_columns(
        fleet=(per_day - 1e-6).ceil().clip(lower_bound=0.0),
        budget=key.replace_strict(budgets, default=None, return_dtype=pl.Float64),
    ).with_columns(
        budget_loads=pl.col("budget") * pl.col("operating_days"),
        binds=pl.col("budget").is_not_null() & (pl.col("fleet") >= pl.col("budget") - 1e-9),
    )
    return frame.select(
        "level",
        "origin",
        "date",
        "operating_days",
        "covered_days",
        "period_days",
        "loads",
        "fleet",
        "budget",
        "budget_loads",
        "binds",
    ).sort("level", "origin", "date", descending=[True, False, False], nulls_last=False)


def _short(saved: float | None) -> bool:
    """Does a binding budget fall short: one more truck a day saves (or was not measured)?"""
    return saved is None or saved > 1e-6


def _with_shortfall(
    fleet: pl.DataFrame, saved: dict[tuple[str, Any], float | None]
) -> pl.DataFrame:
    """`fleet` with what one more truck a day saves where the budget binds, and `short`:
    it binds and the saving is positive (or it binds and the saving was not measured)."""
    names = [
        (TOTAL if lv == "total" else o, d)
        for lv, o, d in fleet.select("level", "origin", "date").rows()
    ]
    return fleet.with_columns(
        short=pl.Series([k in saved and _short(saved[k]) for k in names]),
        one_more_truck_saves=pl.Series([saved.get(k) for k in names], dtype=pl.Float64),
    )


def _capacity_table(plan: Plan, periods: Periods) -> pl.DataFrame:
    """Per limited facility and period: throughput against the period's capacity, whether
    it binds, its shadow price, and the volume unserved on pairs starting or ending at it."""
    days = _period_days(periods)
    u = plan.unserved
    lost = (
        pl.concat(
            [
                u.select(pl.col(end).alias("node"), "date", "volume")
                for end in ("origin", "destination")
            ]
        )
        .group_by("node", "date")
        .agg(pl.col("volume").sum().alias("unserved_volume"))
    )
    return (
        plan.nodes.filter(pl.col("capacity").is_not_null())
        .join(days, on="date", how="left")
        .join(lost, on=["node", "date"], how="left")
        .with_columns(
            pl.when(pl.col("operating_days") > 0)
            .then(pl.col("capacity") / pl.col("operating_days"))
            .alias("capacity_per_day"),
            (pl.col("utilization") >= FULL).alias("binds"),
            pl.col("unserved_volume").fill_null(0.0),
        )
        .select(
            "node",
            "date",
            "operating_days",
            "covered_days",
            "period_days",
            "throughput",
            "capacity",
            "capacity_per_day",
            "added_capacity",
            "utilization",
            "binds",
            "shadow_price",
            "unserved_volume",
        )
        .sort("node", "date")
    )


def _period_days(periods: Periods) -> pl.DataFrame:
    """date, operating_days, covered_days (the period's days the plan covers) and
    period_days (its days in all): fewer covered than period days marks a partial period."""
    dates = sorted(periods)
    return pl.DataFrame(
        {
            "date": dates,
            "operating_days": [periods[d].days for d in dates],
            "covered_days": [periods[d].covered.days for d in dates],
            "period_days": [periods[d].covered.length for d in dates],
        },
        schema={
            "date": pl.Date,
            "operating_days": pl.Int64,
            "covered_days": pl.Int64,
            "period_days": pl.Int64,
        },
    )


def _fleet_summary(
    fleet: pl.DataFrame, saved: dict[tuple[str, Any], float | None]
) -> dict[str, Any]:
    """summary.json's `fleet` of a grain plan: trucks a day per period (the fleet), loads,
    the peaks, and per budget the periods it binds on and falls short in."""
    total = fleet.filter(pl.col("level") == "total").sort("date")
    origin = fleet.filter(pl.col("level") == "origin")
    peak = total.sort("fleet", descending=True, maintain_order=True).head(1)
    per_origin = origin.group_by("origin").agg(pl.col("fleet").max()).sort("origin")
    budgets: dict[str, Any] = {"total": total["budget"][0] if total.height else None}
    budgets["origin"] = {
        o: b
        for o, b in origin.filter(pl.col("budget").is_not_null())
        .select("origin", "budget")
        .unique()
        .sort("origin")
        .iter_rows()
    }
    budgets["per"] = "day: a period's budget is it times the period's operating days"
    by_name: dict[str, list[str]] = {}
    short: dict[str, list[str]] = {}
    for (name, date), value in sorted(saved.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        by_name.setdefault(name, []).append(str(date))
        if _short(value):
            short.setdefault(name, []).append(str(date))
    budgets["binding_dates"], budgets["short_periods"] = by_name, short
    measured = {k: v for k, v in saved.items() if v is not None}
    marginal: dict[str, Any] = {}
    for (name, date), value in measured.items():
        entry = marginal.setdefault(
            name,
            {
                "saved": 0.0,
                "per_date": {},
                "method": METHOD_NOTE + " (the period's operating days more loads)",
            },
        )
        entry["per_date"][str(date)] = value
        entry["saved"] += value
    return {
        "unit": "trucks a day: a period's loads / its operating days, rounded up",
        "trucks_per_date": {str(d): f for d, f in total.select("date", "fleet").iter_rows()},
        "loads_per_period": {str(d): v for d, v in total.select("date", "loads").iter_rows()},
        "peak": float(peak["fleet"][0]) if peak.height else 0.0,
        "peak_date": str(peak["date"][0]) if peak.height else None,
        "peak_per_origin": {str(o): float(f) for o, f in per_origin.iter_rows()},
        "budget": budgets,
        "marginal_value": marginal,
    }


class _Relaxation(NamedTuple):
    """What `assemble` needs of a column's periods to make a plan of their LP relaxations."""

    net: Network
    penalty: float
    column: str
    scale: float


def _capacity_values(
    capacity: pl.DataFrame,
    periods: Periods,
    lp: _Relaxation,
    config: OptimizeConfig,
    engine: Engine | None,
    started: float,
) -> pl.DataFrame:
    """node, date and `capacity_value` in the periods where a facility binds (LPs, within
    what is left of the run's `time_limit`, each at least solved): the dual of
    its capacity in the period's LP relaxation, the cost a package more of capacity saves
    when loads may change too (the shadow price fixes them: where the loads are full as
    well it reads 0, though capacity with more loads would pay)."""
    schema = {"node": pl.String, "date": pl.Date, "capacity_value": pl.Float64}
    dates = sorted(set(capacity.filter(pl.col("binds"))["date"].to_list()))
    if not dates:
        return pl.DataFrame(schema=schema)
    cfg = config.model_copy(update={"relax": True})
    nets = [periods[d].net for d in dates]
    outs = solve_dates(
        nets, [periods[d].day for d in dates], lp.penalty, cfg, started, None, engine
    )
    relaxed = assemble(
        lp.net, outs, lp.penalty, cfg, lp.column, lp.scale, started, METHOD, nets=nets
    )
    return relaxed.nodes.select(
        "node", "date", pl.col("shadow_price").alias("capacity_value")
    ).cast(schema)  # type: ignore[arg-type]


def _add_grain(
    plan: Plan,
    fleet: pl.DataFrame,
    capacity: pl.DataFrame,
    periods: Periods,
    config: OptimizeConfig,
    saved: dict[tuple[str, Any], float | None],
) -> None:
    """The fleet and capacity tables, and their summary, on a grain plan."""
    plan.extra = {FLEET: fleet, CAPACITY: capacity}
    binding = capacity.filter(pl.col("binds"))
    per_period = plan.unserved.group_by("date").agg(pl.col("volume").sum()).sort("date")
    plan.summary.update(
        grain=config.grain,
        operating_days_per_week=config.operating_days_per_week,
        operating_days={str(d): p.days for d, p in sorted(periods.items())},
        # The periods the plan covers in part, planned against those days' capacity only.
        partial_periods={
            str(d): {
                "first": str(p.covered.first),
                "last": str(p.covered.last),
                "covered_days": p.covered.days,
                "period_days": p.covered.length,
                "operating_days": p.days,
            }
            for d, p in sorted(periods.items())
            if p.covered.days < p.covered.length
        },
        fleet=_fleet_summary(fleet, saved),
        capacity={
            "binding_periods": sorted({str(d) for d in binding["date"].to_list()}),
            "binding": [
                {**row, "date": str(row["date"])}
                for row in binding.select(
                    "node",
                    "date",
                    "throughput",
                    "capacity",
                    "shadow_price",
                    "capacity_value",
                    "unserved_volume",
                ).to_dicts()
            ],
            "unserved_per_period": {str(d): float(v) for d, v in per_period.iter_rows()},
        },
    )
