"""Terminal rendering of an optimize run: the plan summary dict (summary.json plus what a
planner looks at first, for --json and the log) and its Rich lines on stderr.

Split from mmplan.cli.render, which holds the other commands' summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

    from mmplan.plan import Plan

__all__ = ["plan_summary", "plan_summaries", "plans_json", "print_plan"]


def plan_summary(plan: Plan, output: str | Path, top: int = 5) -> dict[str, Any]:
    """summary.json plus what a planner looks at first: binding facilities, dear lanes."""
    nodes = plan.nodes
    binding = (
        nodes.filter(pl.col("capacity").is_not_null())
        .group_by("node")
        .agg(
            pl.col("utilization").max().alias("max_utilization"),
            (pl.col("utilization") >= 0.999).sum().alias("days_at_capacity"),
            pl.col("added_capacity").sum().alias("added_capacity"),
            pl.col("shadow_price").mean().alias("mean_shadow_price"),
        )
        .sort(["mean_shadow_price", "max_utilization"], descending=True, nulls_last=True)
        .head(top)
    )
    dear = (
        plan.trucks.group_by("origin", "destination")
        .agg(
            pl.col("cost").sum(),
            pl.col("trucks").sum(),
            pl.col("volume").sum(),
            pl.col("utilization").mean().alias("mean_utilization"),
        )
        .sort("cost", descending=True)
        .head(top)
    )
    unserved = plan.unserved
    s = plan.summary
    return {
        **s,
        "output": str(output),
        "binding_facilities": binding.to_dicts(),
        "expensive_lanes": dear.to_dicts(),
        "unserved": {
            "volume": float(unserved["volume"].sum()),
            "pairs": unserved.select("origin", "destination").unique().height,
            "penalty_per_package": s["unserved_penalty"],
            "penalty_cost": s["totals"]["unserved_penalty_cost"],
            # Per reason (penalty below the carrying cost, part-full trucks, capacity).
            "reasons": s.get("unserved_reasons", []),
            "worst_pairs": s.get("unserved_pairs", [])[:top],
        },
    }


def plan_summaries(
    plans: Mapping[str, Plan], folders: Mapping[str, Path]
) -> dict[str, dict[str, Any]]:
    """`plan_summary` of each plan, by planned column, naming the folder it was written to."""
    return {col: plan_summary(plan, folders[col]) for col, plan in plans.items()}


def plans_json(summaries: dict[str, dict[str, Any]], *, scenarios: bool) -> dict[str, Any]:
    """What `optimize --json` prints: the plan's summary, or with --scenarios each plan's
    by column."""
    return {"scenarios": summaries} if scenarios else next(iter(summaries.values()))


def _dates(dates: list[str], limit: int = 3) -> str:
    return ", ".join(dates[:limit]) + (
        f" and {len(dates) - limit} more" if len(dates) > limit else ""
    )


def _print_downgrades(console: Console, summary: dict[str, Any]) -> None:
    """Say which phase produced the plans when not all came from the MIP, which dates fell
    back because the MIP solver gave no plan, and which stopped short of relative_gap."""
    phases = summary.get("phases", {})
    if set(phases) - {"mip", "lp relaxation"}:
        console.print("plans by phase: " + ", ".join(f"{p} {n}" for p, n in phases.items()))
    fallback = summary.get("fallback_dates", {})
    if fallback:
        why = ", ".join(sorted(set(fallback.values())))
        console.print(
            f"[bold yellow]fell back:[/] on {len(fallback)} dates {summary['solver']} gave no "
            f"plan ({escape(why)}): {_dates(sorted(fallback))} carry a heuristic's plan.",
            markup=True,
        )
    short = summary.get("short_of_time_dates", [])
    if short:
        console.print(
            f"[bold yellow]short of time:[/] {len(short)} dates stopped at their share of "
            f"time_limit = {summary.get('time_limit')} s before relative_gap: {_dates(short)}. "
            f"Every date gets at least its LP and a rounded plan (this run: "
            f"{summary['seconds']:.1f} s); raise {escape('[optimize]')} time_limit for closer "
            "plans.",
            markup=True,
        )
    loose = summary.get("nondeterministic_dates", [])
    if summary.get("deterministic_requested") and loose:
        console.print(
            f"[bold yellow]not deterministic:[/] time_limit fired before the work limits on "
            f"{len(loose)} dates ({_dates(loose)}): a rerun may plan them differently.",
            markup=True,
        )


def _print_fleet(console: Console, fleet: dict[str, Any]) -> None:
    """The fleet the plan needs, its budgets, and what one more truck a day would save."""
    if not fleet:
        return
    budget = fleet.get("budget", {})
    limits = ([f"total {budget['total']:g}"] if budget.get("total") is not None else []) + [
        f"{k} {v:g}" for k, v in budget.get("origin", {}).items()
    ]
    console.print(
        f"fleet: peak {fleet['peak']:,.0f} trucks a day on {fleet['peak_date']}"
        + (f"; budgets {', '.join(limits)}" if limits else "")
    )
    for name, v in fleet.get("marginal_value", {}).items():
        if v["saved"] is None:  # the plan left no time for the re-solves
            console.print(f"  one more truck a day on the {name} budget: {v['method']}")
            continue
        console.print(
            f"  one more truck a day on the {name} budget saves {v['saved']:,.0f} over "
            f"{len(v['per_date'])} dates it binds on ({v['method']})"
        )


def print_plan(console: Console, summary: dict[str, Any]) -> None:
    """Rich summary of an optimize run."""
    from rich.table import Table

    t = summary["totals"]
    console.print(
        f"plan -> {summary['output']}: {summary['status']} ({summary['problem']}, "
        f"{summary['solver']}), {summary['dates']} dates in {summary['seconds']:.1f}s; "
        f"objective {summary['objective']:,.0f}, bound {summary['best_bound']:,.0f}, "
        f"gap {100 * summary['gap']:.2f}% ({100 * summary['operating_gap']:.2f}% of the cost "
        "without unserved penalties)"
    )
    _print_downgrades(console, summary)
    console.print(
        f"trucks {t['trucks']:,.0f} on {t['lanes_used']:,} lanes: truck cost "
        f"{t['truck_cost']:,.0f}, package cost {t['package_cost']:,.0f}, handling "
        f"{t['handling_cost']:,.0f}, added capacity {t['extra_capacity_cost'] + 0.0:,.0f}"
    )
    if summary.get("grain", "day") == "day":  # a week or month plan's: cli.render_grain
        _print_fleet(console, summary.get("fleet", {}))
    if summary["binding_facilities"]:
        table = Table(title="most binding facilities", show_edge=False)
        for col in ("facility", "max util", "days full", "added", "mean shadow price"):
            table.add_column(col, justify="left" if col == "facility" else "right")
        for row in summary["binding_facilities"]:
            price = row["mean_shadow_price"]
            table.add_row(
                row["node"],
                f"{row['max_utilization'] or 0:.0%}",
                str(row["days_at_capacity"]),
                f"{row['added_capacity'] + 0.0:,.0f}",  # + 0.0: print -0.0 as 0
                "-" if price is None else f"{price:,.2f}",
            )
        console.print(table)
    if summary["expensive_lanes"]:
        table = Table(title="most expensive lanes", show_edge=False)
        for col in ("lane", "cost", "trucks", "volume", "mean util"):
            table.add_column(col, justify="left" if col == "lane" else "right")
        for row in summary["expensive_lanes"]:
            table.add_row(
                f"{row['origin']} -> {row['destination']}",
                f"{row['cost']:,.0f}",
                f"{row['trucks']:,.0f}",
                f"{row['volume']:,.0f}",
                f"{row['mean_utilization']:.0%}",
            )
        console.print(table)
    _print_unserved(console, summary["unserved"])


def _print_unserved(console: Console, u: dict[str, Any]) -> None:
    """The unserved line, and under it one line per reason with its worst pairs: the penalty
    below the cost of carrying, part-full trucks, or capacity."""
    if u["volume"] <= 0:
        console.print("unserved: none; every package has a route.")
        return
    console.print(
        f"[bold yellow]unserved:[/] {u['volume']:,.0f} packages on {u['pairs']} pairs, "
        f"penalty {u['penalty_per_package']:,.4g} each = {u['penalty_cost']:,.0f}",
        markup=True,
    )
    for r in u["reasons"]:
        worst = ", ".join(
            f"{p['origin']}->{p['destination']} {p['volume']:,.0f}"
            for p in u["worst_pairs"]
            if p["reason"] == r["reason"]
        )
        most = f"; most: {worst}" if worst else ""
        console.print(
            f"  {r['volume']:,.0f} on {r['pairs']} pairs: {r['message']}{most}",
            markup=False,
            highlight=False,
        )
