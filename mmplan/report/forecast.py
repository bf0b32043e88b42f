"""The forecast section (fan charts) and, for a history given alone, the history section.

Fan charts are drawn for the total, the top `[report].top_series` series by forecast
volume of every level between the total and the lanes (each region and the busiest
origins with the default hierarchy), and the lanes named with `--series`. Never every
lane: a network of 100k lanes draws as many charts as one of 100. With a history, each
chart starts with the series' last `[report].history_periods` periods of actuals, summed
from the lanes by the series' key columns (origin, origin_region, ...).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.errors import UsageError
from mmplan.report import charts
from mmplan.report.inputs import ForecastInput, HistoryInput, read_forecast, read_history
from mmplan.report.markup import esc, figures, number, paragraph, span, table
from mmplan.report.registry import Context, InputKind, Part, Section, register

__all__ = ["render_forecast", "render_history", "chosen_series", "resolve_series"]

NOT_KEYS = {"unique_id", "level", "date", "forecast", "model"}


def _levels(table_: pl.DataFrame) -> list[str]:
    """Level names in hierarchy order: total first, lane last, the rest as they appear."""
    seen = table_.get_column("level").unique(maintain_order=True).to_list()
    middle = [lv for lv in seen if lv not in ("total", "lane")]
    return [lv for lv in ("total",) if lv in seen] + middle + [lv for lv in ("lane",) if lv in seen]


def resolve_series(names: list[str], ids: set[str]) -> list[str]:
    """--series values as series ids: an id (`lane:FC01/DS003`, `origin:FC01`), or a lane
    as `FC01/DS003` or `FC01->DS003`. An unknown one is a usage error (exit 2)."""
    found = []
    for name in names:
        candidates = [name, f"lane:{name}", f"lane:{name.replace('->', '/')}"]
        match = next((c for c in candidates if c in ids), None)
        if match is None:
            examples = ", ".join(sorted(i for i in ids if i.startswith("lane:"))[:3])
            raise UsageError(
                f"--series {name}: the forecast has no such series. Give a series id or a "
                f"lane as ORIGIN/DESTINATION, e.g. {examples}."
            )
        if match not in found:
            found.append(match)
    return found


def chosen_series(table_: pl.DataFrame, top: int, named: list[str]) -> list[str]:
    """The series to draw: total, the top `top` of each middle level, then `named`."""
    volume = table_.group_by("unique_id", "level").agg(pl.col("forecast").sum())
    chosen: list[str] = []
    for level in _levels(table_):
        if level == "lane":
            continue
        rows = volume.filter(pl.col("level") == level).sort(
            ["forecast", "unique_id"], descending=[True, False]
        )
        chosen += rows.get_column("unique_id").head(1 if level == "total" else top).to_list()
    return chosen + [s for s in named if s not in chosen]


def _keys(rows: pl.DataFrame) -> dict[str, str]:
    """The key columns that identify a series (non-null in its rows) and their values."""
    first = rows.row(0, named=True)
    return {
        c: first[c]
        for c in rows.columns
        if c not in NOT_KEYS and not c.startswith(("lo_", "hi_")) and first[c] is not None
    }


def _history_window(history: pl.DataFrame, periods: int) -> pl.DataFrame:
    """The history's last `periods` distinct dates."""
    dates = history.get_column("date").unique().sort()
    start = dates[max(0, len(dates) - periods)]
    return history.filter(pl.col("date") >= start)


def _actuals(window: pl.DataFrame, keys: dict[str, str]) -> tuple[list[str], list[float]] | None:
    """The series' volume per date in the window, zero where no lane of it had a row."""
    if any(c not in window.columns for c in keys):
        return None
    rows = window.filter(*[pl.col(c) == v for c, v in keys.items()]) if keys else window
    dates = window.select(pl.col("date").unique().sort())
    summed = dates.join(
        rows.group_by("date").agg(pl.col("volume").sum()), on="date", how="left"
    ).fill_null(0.0)
    return [d.isoformat() for d in summed["date"]], [round(v, 2) for v in summed["volume"]]


def _title(uid: str, level: str) -> str:
    if uid == "total":
        return "Total"
    label = uid.split(":", 1)[1] if ":" in uid else uid
    return f"{level} {label.replace('/', ' → ') if level == 'lane' else label}"


def _fan(rows: pl.DataFrame, fc: ForecastInput, title: str, history: Any) -> Any:
    rows = rows.sort("date")
    dates = [d.isoformat() for d in rows["date"]]
    bands = [
        (p, rows[f"lo_{p}"].round(2).to_list(), rows[f"hi_{p}"].round(2).to_list())
        for p in fc.levels
    ]
    return charts.fan_chart(title, history, dates, rows["forecast"].round(2).to_list(), bands)


def render_forecast(ctx: Context) -> Section:
    """Fan charts for the chosen series, and a table of what each forecasts."""
    fc: ForecastInput = ctx.inputs["forecast"].data
    tbl = fc.table
    named = resolve_series(ctx.series, set(tbl.get_column("unique_id").unique().to_list()))
    hist = ctx.inputs.get("history")
    window = _history_window(hist.data.table, ctx.config.history_periods) if hist else None
    chosen = chosen_series(tbl, ctx.config.top_series, named)
    picked = tbl.filter(pl.col("unique_id").is_in(chosen))
    dates = tbl.get_column("date")
    counts = tbl.group_by("level").agg(pl.col("unique_id").n_unique())
    per_level = dict(zip(counts["level"], counts["unique_id"], strict=True))
    parts = [
        Part(
            figures(
                [
                    ("forecast dates", span(dates.min(), dates.max())),
                    ("dates", number(dates.n_unique())),
                    ("series", number(tbl.get_column("unique_id").n_unique())),
                    ("lanes", number(per_level.get("lane", 0))),
                    ("intervals", esc(", ".join(f"{p}%" for p in fc.levels) or "none")),
                ]
            )
        )
    ]
    rows = []
    for uid in chosen:
        series = picked.filter(pl.col("unique_id") == uid)
        level = series["level"][0]
        actuals = _actuals(window, _keys(series)) if window is not None else None
        parts.append(Part(figure=_fan(series, fc, _title(uid, level), actuals)))
        models = ", ".join(sorted(series["model"].unique().to_list()))
        rows.append([esc(uid), esc(level), number(series["forecast"].sum()), esc(models)])
    note = (
        f"Drawn: the total, the top {ctx.config.top_series} series of each level between the "
        "total and the lanes by forecast volume, and the lanes named with --series."
    )
    parts.insert(1, Part(paragraph(note, "note")))
    table_html = table(["series", "level", "forecast volume", "model"], rows, numeric=[2])
    parts.append(Part(table_html))
    return Section("forecast", "Forecast", parts)


def render_history(ctx: Context) -> Section | None:
    """Total volume per period, when the history is given without a forecast (with one,
    the fan charts draw the history)."""
    if "forecast" in ctx.inputs:
        return None
    hist: HistoryInput = ctx.inputs["history"].data
    total = hist.table.group_by("date").agg(pl.col("volume").sum()).sort("date")
    lanes = hist.table.select("origin", "destination").n_unique()
    fig = charts.lines_chart(
        "Total volume per period",
        [("total", [d.isoformat() for d in total["date"]], total["volume"].to_list(), False)],
        "date",
        "packages",
        steps=False,
    )
    tiles = figures(
        [
            ("dates", span(total["date"].min(), total["date"].max())),
            ("lanes", number(lanes)),
            ("rows", number(hist.table.height)),
        ]
    )
    return Section("history", "History", [Part(tiles), Part(figure=fig)])


register(InputKind("history", read_history, render_history, order=10))
register(InputKind("forecast", read_forecast, render_forecast, order=20))
