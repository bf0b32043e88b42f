"""Weekly and monthly capacity plans: one MIP per period, trucks as loads.

`optimize --grain week` (or month) plans a forecast's week (month) rows with the daily
model unchanged (mmplan.plan.model), on the network scaled to the period. A lane runs at
most one truck a day on each of the period's operating days, so with D operating days

    loads y_a per period,  y_a <= D x max_trucks_a,  volume <= truck_capacity_a x y_a,
    throughput θ_n <= D x (capacity_n + added_n),  added_n <= D x extra_capacity_n,
    Σ_a y_a <= D x F,  Σ_{a ∈ out(o)} y_a <= D x F_o      (fleet budgets, per day),

and cost per truck, per package, handling and penalty as a day's. D is
`operating_days_per_week` for a week; for a month, the month's days that fall on the first
`operating_days_per_week` weekdays of their ISO week (Monday first). `transit_days` is still
ignored: a period's volume ships and arrives within it.

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

import polars as pl

from mmplan.config import OptimizeConfig
from mmplan.plan.assemble import METHOD, Plan, assemble
from mmplan.plan.demand import Day, grain_rows, scenario
from mmplan.plan.fleet import TOTAL, plus_one
from mmplan.plan.marginal import METHOD_NOTE
from mmplan.plan.network import Network
from mmplan.plan.parallel import Failed, solve_dates

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = ["optimize_grain", "operating_days", "period_network", "FLEET", "CAPACITY"]

# A facility binds when its throughput reaches this share of its capacity (as the plan
# summary's "days full" counts).
FULL = 0.999
# The extra tables a grain plan's folder holds, beside the four plan tables.
FLEET, CAPACITY = "fleet", "capacity"


def operating_days(start: dt.date, grain: str, per_week: int) -> int:
    """Operating days of the period starting `start`: `per_week` for a week; for a month,
    its days among the first `per_week` weekdays (Monday first) of their ISO weeks."""
    if grain == "week":
        return per_week
    if grain == "month":
        days = calendar.monthrange(start.year, start.month)[1]
        return sum(
            dt.date(start.year, start.month, d).weekday() < per_week for d in range(1, days + 1)
        )
    return 1


def period_network(net: Network, days: int) -> Network:
    """`net` for a period of `days` operating days: per-day limits (facility and added
    capacity, max_trucks, fleet budgets) times `days`; costs and truck capacity as they are."""
    return replace(
        net,
        cap=net.cap * days,
        extra=net.extra * days,
        maxt=net.maxt * days,
        fleet_total=net.fleet_total * days,
        fleet_node=None if net.fleet_node is None else net.fleet_node * days,
    )


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
    parts = {c: scenario(demand, nodes, lanes, config, c) for c in dict.fromkeys(columns)}
    net, _, penalty, _ = next(iter(parts.values()))
    days_of = {
        d.date: operating_days(d.date, grain, config.operating_days_per_week)
        for part in parts.values()
        for d in part.days
    }
    nets = {n: period_network(net, n) for n in set(days_of.values())}
    tasks = [(c, day) for c, part in parts.items() for day in part.days]
    outcomes = solve_dates(
        [nets[days_of[d.date]] for _, d in tasks],
        [d for _, d in tasks],
        penalty,
        config,
        started,
        progress,
        engine,
    )
    plans = {}
    for c, part in parts.items():
        mine = [o for (tc, _), o in zip(tasks, outcomes, strict=True) if tc == c]
        day_nets = [nets[days_of[d.date]] for d in part.days]
        plan = assemble(net, mine, penalty, config, c, part.scale, started, METHOD, nets=day_nets)
        periods = {d.date: (d, nets[days_of[d.date]], days_of[d.date]) for d in part.days}
        fleet = _fleet_table(plan, net, periods)
        saved = _one_more_truck(plan, _binding(fleet), periods, penalty, config, engine)
        capacity = _capacity_table(plan, periods)
        lp = _Relaxation(net, penalty, c, part.scale)
        capacity = capacity.join(
            _capacity_values(capacity, periods, lp, config, engine), on=["node", "date"], how="left"
        )
        _add_grain(plan, _with_shortfall(fleet, saved), capacity, periods, config, saved)
        plans[c] = plan
    return plans


Periods = dict[Any, tuple[Day, Network, int]]  # by period start: its demand, network, days


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
) -> dict[tuple[str, Any], float | None]:
    """Per binding (budget, period), the cost one more truck a day (D more loads) saves,
    measured by re-solving the period (None: not measured, with --relax, marginal_value =
    false, or a re-solve that failed)."""
    if not binding or not config.fleet.marginal_value or config.relax:
        return {key: None for key in binding}
    plus = []
    for name, date in binding:
        _, pnet, days = periods[date]
        for _ in range(days):  # one truck a day more is `days` more loads in the period
            pnet = plus_one(pnet, name)
        plus.append(pnet)
    share = max(config.time_limit * len(binding) / max(len(periods), 1), 1.0)
    outs = solve_dates(
        plus,
        [periods[date][0] for _, date in binding],
        penalty,
        config.model_copy(update={"time_limit": share}),
        time.perf_counter(),
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
    dates = sorted(periods)
    days = pl.DataFrame(
        {"date": dates, "operating_days": [periods[d][2] for d in dates]},
        schema={"date": pl.Date, "operating_days": pl.Int64},
    )
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
    frame = frame.with_columns(
        fleet=(pl.col("loads") / pl.col("operating_days") - 1e-6).ceil().clip(lower_bound=0.0),
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
    days = pl.DataFrame(
        {"date": sorted(periods), "operating_days": [periods[d][2] for d in sorted(periods)]},
        schema={"date": pl.Date, "operating_days": pl.Int64},
    )
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
            (pl.col("capacity") / pl.col("operating_days")).alias("capacity_per_day"),
            (pl.col("utilization") >= FULL).alias("binds"),
            pl.col("unserved_volume").fill_null(0.0),
        )
        .select(
            "node",
            "date",
            "operating_days",
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
) -> pl.DataFrame:
    """node, date and `capacity_value` in the periods where a facility binds: the dual of
    its capacity in the period's LP relaxation, the cost a package more of capacity saves
    when loads may change too (the shadow price fixes them: where the loads are full as
    well it reads 0, though capacity with more loads would pay)."""
    schema = {"node": pl.String, "date": pl.Date, "capacity_value": pl.Float64}
    dates = sorted(set(capacity.filter(pl.col("binds"))["date"].to_list()))
    if not dates:
        return pl.DataFrame(schema=schema)
    share = max(config.time_limit * len(dates) / max(len(periods), 1), 1.0)
    cfg = config.model_copy(update={"relax": True, "time_limit": share})
    nets = [periods[d][1] for d in dates]
    started = time.perf_counter()
    outs = solve_dates(nets, [periods[d][0] for d in dates], lp.penalty, cfg, started, None, engine)
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
        operating_days={str(d): p[2] for d, p in sorted(periods.items())},
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
