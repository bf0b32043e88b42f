"""The plan section: where capacity binds, what it costs, and what goes unserved.

From the folder `mmplan optimize` writes: the solve's status and gap (summary.json), a
facility x date utilisation heatmap (the `[report].max_facilities` facilities with the
highest peak utilisation; facilities without a capacity have none), the binding
facilities with their shadow prices (what one more package of capacity a day would save),
the most expensive lanes, trucks per day and the unserved volume.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.report import charts
from mmplan.report.inputs import PlanInput, read_plan
from mmplan.report.markup import esc, figures, number, paragraph, percent, table
from mmplan.report.registry import Context, InputKind, Part, Section, register

__all__ = ["render_plan", "binding_facilities", "expensive_lanes", "BINDING"]

BINDING = 0.999  # a facility at 99.9% of its capacity or more binds


def binding_facilities(nodes: pl.DataFrame) -> pl.DataFrame:
    """Facilities at capacity on some date, or with a non-zero shadow price: days binding,
    peak utilisation, mean and largest shadow price, capacity added."""
    binds = (pl.col("utilization") >= BINDING) | (pl.col("shadow_price").abs() > 1e-9)
    return (
        nodes.filter(binds.fill_null(False))
        .group_by("node")
        .agg(
            pl.len().alias("days"),
            pl.col("utilization").max().alias("peak"),
            pl.col("shadow_price").mean().alias("mean_price"),
            pl.col("shadow_price").max().alias("max_price"),
            pl.col("added_capacity").fill_null(0.0).sum().alias("added"),
        )
        .sort(["mean_price", "node"], descending=[True, False])
    )


def expensive_lanes(trucks: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` lanes with the largest cost over the plan's dates."""
    return (
        trucks.group_by("origin", "destination")
        .agg(
            pl.col("cost").sum(),
            pl.col("trucks").sum(),
            pl.col("volume").sum(),
            pl.col("utilization").mean(),
        )
        .sort(["cost", "origin", "destination"], descending=[True, False, False])
        .head(n)
    )


def _heatmap(nodes: pl.DataFrame, limit: int) -> Any | None:
    capped = nodes.filter(pl.col("utilization").is_not_null())
    if capped.is_empty():
        return None
    peaks = capped.group_by("node").agg(pl.col("utilization").max().alias("peak"))
    top = peaks.sort(["peak", "node"], descending=[True, False]).head(limit)["node"].to_list()
    dates = sorted(capped["date"].unique().to_list())
    wide = (
        capped.filter(pl.col("node").is_in(top))
        .with_columns(pl.col("date").cast(pl.String))
        .pivot(on="date", index="node", values="utilization")
    )
    order = {name: i for i, name in enumerate(top)}
    wide = wide.sort(pl.col("node").replace_strict(order, return_dtype=pl.Int64))
    columns = [d.isoformat() for d in dates]
    z = [[row.get(c) for c in columns] for row in wide.iter_rows(named=True)]
    title = f"Facility utilisation ({len(top)} of {peaks.height} with a capacity, highest first)"
    return charts.heatmap(title, wide["node"].to_list(), columns, z, "utilisation")


def _tiles(plan: PlanInput) -> str:
    s = plan.summary
    totals = s.get("totals", {})
    return figures(
        [
            ("status", esc(s.get("status", "-"))),
            ("objective", number(s.get("objective"))),
            ("gap", percent(s.get("gap"), 2)),
            ("trucks", number(totals.get("trucks"))),
            ("lanes used", number(totals.get("lanes_used"))),
            ("demand", number(totals.get("demand"))),
            ("unserved", number(totals.get("unserved_volume"))),
            ("dates", number(plan.trucks["date"].n_unique())),
        ]
    )


def _binding_table(nodes: pl.DataFrame) -> str:
    binding = binding_facilities(nodes)
    if binding.is_empty():
        return "<h3>Binding facilities</h3>" + paragraph("No facility reaches its capacity.")
    rows = [
        [
            esc(r["node"]),
            number(r["days"]),
            percent(r["peak"]),
            number(r["mean_price"], 2),
            number(r["max_price"], 2),
            number(r["added"]),
        ]
        for r in binding.head(25).iter_rows(named=True)
    ]
    headers = ["facility", "days binding", "peak", "mean shadow price", "max", "capacity added"]
    note = paragraph(
        "Shadow price: cost saved per package of extra capacity on a binding day.", "note"
    )
    return "<h3>Binding facilities</h3>" + note + table(headers, rows, numeric=range(1, 6))


def _lanes_table(trucks: pl.DataFrame, n: int) -> str:
    rows = [
        [
            esc(f"{r['origin']} → {r['destination']}"),
            number(r["cost"]),
            number(r["trucks"], 1),
            number(r["volume"]),
            percent(r["utilization"]),
        ]
        for r in expensive_lanes(trucks, n).iter_rows(named=True)
    ]
    headers = ["lane", "cost", "trucks", "volume", "mean truck utilisation"]
    return f"<h3>Most expensive lanes (top {n})</h3>" + table(headers, rows, numeric=range(1, 5))


def _unserved(unserved: pl.DataFrame) -> list[Part]:
    if unserved.is_empty() or float(unserved["volume"].sum()) <= 0:
        return [Part("<h3>Unserved volume</h3>" + paragraph("All demand is served."))]
    per_day = unserved.group_by("date").agg(pl.col("volume").sum()).sort("date")
    fig = charts.bars(
        "Unserved volume per day",
        [d.isoformat() for d in per_day["date"]],
        per_day["volume"].to_list(),
        "packages",
        colour="#D55E00",
    )
    pairs = (
        unserved.group_by("origin", "destination")
        .agg(pl.col("volume").sum())
        .sort(["volume", "origin", "destination"], descending=[True, False, False])
    )
    rows = [
        [esc(f"{r['origin']} → {r['destination']}"), number(r["volume"])]
        for r in pairs.head(10).iter_rows(named=True)
    ]
    html = "<h3>Unserved volume</h3>" + table(["demand pair", "unserved packages"], rows, [1])
    return [Part(html), Part(figure=fig)]


def render_plan(ctx: Context) -> Section:
    """Key figures, utilisation heatmap, binding facilities, lanes, trucks, unserved."""
    plan: PlanInput = ctx.inputs["plan"].data
    parts = [Part(_tiles(plan))]
    heat = _heatmap(plan.nodes, ctx.config.max_facilities)
    if heat is not None:
        parts.append(Part(figure=heat))
    parts.append(Part(_binding_table(plan.nodes)))
    per_day = plan.trucks.group_by("date").agg(pl.col("trucks").sum()).sort("date")
    fig = charts.bars(
        "Trucks per day",
        [d.isoformat() for d in per_day["date"]],
        per_day["trucks"].to_list(),
        "trucks",
    )
    parts += [Part(figure=fig), Part(_lanes_table(plan.trucks, ctx.config.top_lanes))]
    parts += _unserved(plan.unserved)
    return Section("plan", "Plan", parts)


register(InputKind("plan", read_plan, render_plan, order=40))
