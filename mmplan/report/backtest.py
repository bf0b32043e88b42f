"""The backtest section: how accurate the forecast was, against the seasonal naive.

From the folder `mmplan backtest` writes: WAPE by level and horizon step for the primary
run (the configured `[forecast].model`) and for the baseline ``naive`` run, coverage of
each prediction interval by level against its nominal level, and the worst series (the
lanes with the largest absolute error summed over every cutoff, since a planner pays for
packages, not for percentages of small lanes).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.report import charts
from mmplan.report.inputs import BacktestInput, read_backtest
from mmplan.report.markup import esc, figures, number, paragraph, percent, span, table
from mmplan.report.registry import Context, InputKind, Part, Section, register

__all__ = ["render_backtest", "primary_run", "worst_series", "coverage_levels"]

BASELINE = "naive"


def primary_run(bt: BacktestInput) -> str:
    """The run the gates judge: the configured model, else the first run not the naive."""
    runs = bt.metrics.get_column("run").unique().sort().to_list()
    configured = ((bt.manifest or {}).get("config") or {}).get("forecast", {}).get("model")
    if configured in runs:
        return str(configured)
    others = [r for r in runs if r != BASELINE]
    return others[0] if others else runs[0]


def coverage_levels(columns: list[str]) -> list[int]:
    """The interval levels p the metrics measured coverage_p of, narrowest first."""
    return sorted(int(c[9:]) for c in columns if c.startswith("coverage_") and c[9:].isdigit())


def _level_order(points: pl.DataFrame) -> list[str]:
    seen = points.get_column("level").unique(maintain_order=True).to_list()
    middle = [lv for lv in seen if lv not in ("total", "lane")]
    return [lv for lv in ("total",) if lv in seen] + middle + [lv for lv in ("lane",) if lv in seen]


def worst_series(points: pl.DataFrame, run: str, level: str, n: int) -> pl.DataFrame:
    """The `n` series of `level` with the largest absolute error of `run`, with WAPE,
    bias and the naive's WAPE on the same points."""

    def pooled(name: str) -> pl.DataFrame:
        err = pl.col("forecast") - pl.col("actual")
        return (
            points.filter((pl.col("run") == name) & (pl.col("level") == level))
            .group_by("unique_id")
            .agg(
                pl.col("actual").sum().alias("actual"),
                err.abs().sum().alias("abs_error"),
                err.sum().alias("error"),
            )
        )

    naive = pooled(BASELINE).select("unique_id", pl.col("abs_error").alias("naive_abs_error"))
    ratio = pl.when(pl.col("actual") > 0)
    return (
        pooled(run)
        .join(naive, on="unique_id", how="left")
        .with_columns(
            ratio.then(pl.col("abs_error") / pl.col("actual")).alias("wape"),
            ratio.then(pl.col("error") / pl.col("actual")).alias("bias"),
            ratio.then(pl.col("naive_abs_error") / pl.col("actual")).alias("naive_wape"),
        )
        .sort(["abs_error", "unique_id"], descending=[True, False])
        .head(n)
    )


def _overall(metrics: pl.DataFrame, run: str) -> dict[str, dict[str, Any]]:
    rows = metrics.filter((pl.col("run") == run) & pl.col("step").is_null())
    return {row["level"]: row for row in rows.iter_rows(named=True)}


def _wape_chart(metrics: pl.DataFrame, run: str, levels: list[str]) -> Any:
    lines = []
    for level in levels:
        for name, dashed in ((run, False), (BASELINE, True)):
            rows = metrics.filter(
                (pl.col("run") == name) & (pl.col("level") == level) & pl.col("step").is_not_null()
            ).sort("step")
            if rows.height:
                label = level if name == run else f"{level} (naive)"
                lines.append((label, rows["step"].to_list(), rows["wape"].to_list(), dashed))
    title = f"WAPE by horizon step: {run} (solid) against the seasonal naive (dashed)"
    return charts.lines_chart(title, lines, "periods after the cutoff", "WAPE", percent=True)


def render_backtest(ctx: Context) -> Section:
    """Key figures, WAPE by level and step, coverage against nominal, the worst series."""
    bt: BacktestInput = ctx.inputs["backtest"].data
    run = primary_run(bt)
    levels = _level_order(bt.points)
    ps = coverage_levels(bt.metrics.columns)
    mine, naive = _overall(bt.metrics, run), _overall(bt.metrics, BASELINE)
    cutoffs = bt.points.get_column("cutoff").unique().sort()
    steps = bt.points.get_column("step").max() if "step" in bt.points.columns else None
    tiles = [
        ("cutoffs", f"{len(cutoffs)} ({span(cutoffs.min(), cutoffs.max())})"),
        ("horizon", f"{number(steps)} periods"),
        ("model", esc(run)),
    ]
    for level in (levels[0], levels[-1]):
        if level in mine:
            tiles.append((f"WAPE {level}", percent(mine[level]["wape"])))
            tiles.append((f"skill {level} vs naive", percent(mine[level]["skill"])))
    rows = [
        [
            esc(level),
            percent(mine.get(level, {}).get("wape")),
            percent(naive.get(level, {}).get("wape")),
            percent(mine.get(level, {}).get("skill")),
            percent(mine.get(level, {}).get("bias")),
            *[percent(mine.get(level, {}).get(f"coverage_{p}")) for p in ps],
        ]
        for level in levels
    ]
    headers = ["level", f"WAPE {run}", "WAPE naive", "skill", "bias"]
    headers += [f"coverage {p}% (nominal {p}%)" for p in ps]
    parts = [
        Part(figures(tiles)),
        Part(table(headers, rows, numeric=range(1, len(headers)))),
        Part(figure=_wape_chart(bt.metrics, run, levels)),
    ]
    if ps:
        coverage = {p: [mine.get(lv, {}).get(f"coverage_{p}") for lv in levels] for p in ps}
        title = f"Interval coverage by level ({run}), dashed: nominal"
        parts.append(Part(figure=charts.coverage_chart(title, levels, coverage)))
    parts += _worst(bt, run, levels[-1], ctx.config.worst_series)
    return Section("backtest", "Backtest", parts)


def _worst(bt: BacktestInput, run: str, level: str, n: int) -> list[Part]:
    worst = worst_series(bt.points, run, level, n)
    rows = [
        [
            esc(r["unique_id"]),
            number(r["actual"]),
            number(r["abs_error"]),
            percent(r["wape"]),
            percent(r["naive_wape"]),
            percent(r["bias"]),
        ]
        for r in worst.iter_rows(named=True)
    ]
    headers = ["series", "actual volume", "absolute error", "WAPE", "WAPE naive", "bias"]
    title = f"<h3>Worst {esc(level)} series by absolute error</h3>"
    note = paragraph("Summed over every cutoff and step; bias > 0 is an over-forecast.", "note")
    return [Part(title + note + table(headers, rows, numeric=range(1, 6)))]


register(InputKind("backtest", read_backtest, render_backtest, order=30))
