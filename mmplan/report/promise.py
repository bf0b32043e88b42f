"""The promise section: how many days the plan's routes take, per origin-destination pair.

From the table `mmplan promise` writes (`--promise PROMISE.parquet` on `mmplan report`; one
row per pair, date and path, with the pair's `promised_days` on every row of that pair and
date): the volume by promised days, the share of volume it covers (`[promise] share` from
the table's provenance), and the `[report] worst_series` pairs with the longest promises,
each with its main path (the one carrying most of its volume over the dates).
"""

from __future__ import annotations

import polars as pl

from mmplan.report import charts
from mmplan.report.inputs import PromiseInput, read_promise
from mmplan.report.markup import esc, figures, number, paragraph, percent, table
from mmplan.report.registry import Context, InputKind, Part, Section, register

__all__ = ["render_promise", "pair_dates", "longest_promises"]

PAIR = ["origin", "destination"]


def pair_dates(promise: pl.DataFrame) -> pl.DataFrame:
    """One row per pair and date: its volume (over its paths) and promised days."""
    return promise.group_by(*PAIR, "date").agg(
        pl.col("volume").sum(), pl.col("promised_days").first()
    )


def longest_promises(promise: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` pairs with the longest volume-weighted promised days: volume, mean, fewest
    and most promised days over the dates, and the path carrying most of their volume."""
    days = pair_dates(promise)
    weighted = (pl.col("promised_days") * pl.col("volume")).sum() / pl.col("volume").sum()
    pairs = days.group_by(PAIR).agg(
        pl.col("volume").sum(),
        weighted.fill_nan(None).alias("mean_days"),
        pl.col("promised_days").min().alias("min_days"),
        pl.col("promised_days").max().alias("max_days"),
    )
    main = (
        promise.group_by(*PAIR, "path")
        .agg(pl.col("volume").sum().alias("path_volume"), pl.col("path_days").first())
        .sort(["path_volume", "path"], descending=[True, False])
        .group_by(PAIR, maintain_order=True)
        .first()
        .select(*PAIR, "path", "path_days")
    )
    order = ["mean_days", "max_days", *PAIR]
    return (
        pairs.join(main, on=PAIR, how="left")
        .sort(order, descending=[True, True, False, False], nulls_last=True)
        .head(n)
    )


def render_promise(ctx: Context) -> Section:
    """Key figures, volume by promised days, the pairs with the longest promises."""
    loaded = ctx.inputs["promise"]
    promise: PromiseInput = loaded.data
    days = pair_dates(promise.table)
    volume = float(days["volume"].sum())
    weighted = float((days["promised_days"] * days["volume"]).sum())
    mean = weighted / volume if volume else None
    share = ((loaded.record() or {}).get("config") or {}).get("promise", {}).get("share")
    tiles = figures(
        [
            ("pairs", number(days.select(PAIR).n_unique())),
            ("pair-dates", number(days.height)),
            ("volume", number(volume)),
            ("mean promised days (by volume)", number(mean, 2)),
            ("most promised days", number(days["promised_days"].max())),
            ("volume the promise covers", percent(share)),
        ]
    )
    by_days = days.group_by("promised_days").agg(pl.col("volume").sum()).sort("promised_days")
    fig = charts.bars(
        "Volume by promised days",
        [f"{d:g} d" for d in by_days["promised_days"]],
        by_days["volume"].to_list(),
        "packages",
    )
    n = ctx.config.worst_series
    rows = [
        [
            esc(f"{r['origin']} → {r['destination']}"),
            number(r["volume"]),
            number(r["mean_days"], 2),
            esc(f"{r['min_days']:g} – {r['max_days']:g}"),
            esc(r["path"]),
            number(r["path_days"], 1),
        ]
        for r in longest_promises(promise.table, n).iter_rows(named=True)
    ]
    headers = ["pair", "volume", "mean promised days", "range", "main path", "its days"]
    note = paragraph(
        "Promised days: the fewest days whose paths carry the covered share of a pair's "
        "volume on a date (transit days plus dwell at each facility left). transit_days do "
        "not shape the plan: this is what its routes take.",
        "note",
    )
    html = f"<h3>Longest promises (top {n} pairs)</h3>" + table(headers, rows, [1, 2, 3, 5])
    return Section("promise", "Promises", [Part(tiles), Part(figure=fig), Part(note + html)])


register(InputKind("promise", read_promise, render_promise, order=48))
