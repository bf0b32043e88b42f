"""Run summaries: a small dict per command (for --json) and its Rich rendering on stderr.

Summaries are computed from the outputs, never from stage internals, so what a planner
reads is what was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["forecast_summary", "print_forecast"]


def forecast_summary(result: pl.DataFrame, output: str | Path) -> dict[str, Any]:
    """Counts per level and model, the horizon and the forecast total."""
    lanes = result.filter(pl.col("level") == "lane")
    return {
        "output": str(output),
        "series": result.get_column("unique_id").n_unique(),
        "lanes": lanes.get_column("unique_id").n_unique(),
        "dates": [str(result["date"].min()), str(result["date"].max())],
        "levels": dict(result.group_by("level").agg(pl.col("unique_id").n_unique()).iter_rows()),
        "models": dict(
            lanes.group_by("model").agg(pl.col("unique_id").n_unique()).sort("model").iter_rows()
        ),
        "total_forecast": float(result.filter(pl.col("level") == "total")["forecast"].sum()),
    }


def print_forecast(console: Any, summary: dict[str, Any]) -> None:
    """Rich summary of a forecast run."""
    from rich.table import Table

    table = Table(title=f"forecast -> {summary['output']}", show_edge=False)
    table.add_column("lane model")
    table.add_column("lanes", justify="right")
    for model, n in summary["models"].items():
        table.add_row(model, f"{n:,}")
    console.print(table)
    console.print(
        f"{summary['series']:,} series ({summary['lanes']:,} lanes), dates "
        f"{summary['dates'][0]} .. {summary['dates'][1]}, total forecast "
        f"{summary['total_forecast']:,.0f} packages"
    )


# --------------------------------------------------------------------------- optimize

__all__ += ["plan_summary", "print_plan"]


def plan_summary(plan: Any, output: str | Path, top: int = 5) -> dict[str, Any]:
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
        .agg(pl.col("cost").sum(), pl.col("trucks").sum(), pl.col("volume").sum(),
             pl.col("utilization").mean().alias("mean_utilization"))
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
            "worst_pairs": unserved.group_by("origin", "destination")
            .agg(pl.col("volume").sum())
            .sort("volume", descending=True)
            .head(top)
            .to_dicts(),
        },
    }


def print_plan(console: Any, summary: dict[str, Any]) -> None:
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
    console.print(
        f"trucks {t['trucks']:,.0f} on {t['lanes_used']:,} lanes: truck cost "
        f"{t['truck_cost']:,.0f}, package cost {t['package_cost']:,.0f}, handling "
        f"{t['handling_cost']:,.0f}, added capacity {t['extra_capacity_cost']:,.0f}"
    )
    if summary["binding_facilities"]:
        table = Table(title="most binding facilities", show_edge=False)
        for col in ("facility", "max util", "days full", "added", "shadow price"):
            table.add_column(col, justify="left" if col == "facility" else "right")
        for row in summary["binding_facilities"]:
            price = row["mean_shadow_price"]
            table.add_row(row["node"], f"{row['max_utilization'] or 0:.0%}",
                          str(row["days_at_capacity"]), f"{row['added_capacity']:,.0f}",
                          "-" if price is None else f"{price:,.2f}")
        console.print(table)
    if summary["expensive_lanes"]:
        table = Table(title="most expensive lanes", show_edge=False)
        for col in ("lane", "cost", "trucks", "volume", "mean util"):
            table.add_column(col, justify="left" if col == "lane" else "right")
        for row in summary["expensive_lanes"]:
            table.add_row(f"{row['origin']} -> {row['destination']}", f"{row['cost']:,.0f}",
                          f"{row['trucks']:,.0f}", f"{row['volume']:,.0f}",
                          f"{row['mean_utilization']:.0%}")
        console.print(table)
    u = summary["unserved"]
    if u["volume"] > 0:
        worst = ", ".join(f"{r['origin']}->{r['destination']} {r['volume']:,.0f}"
                          for r in u["worst_pairs"])
        console.print(
            f"[bold yellow]unserved:[/] {u['volume']:,.0f} packages on {u['pairs']} pairs, "
            f"penalty {u['penalty_per_package']:,.2f} each = {u['penalty_cost']:,.0f} "
            f"(capacity ran out; most: {worst})", markup=True)
    else:
        console.print("unserved: none; every package has a route.")
