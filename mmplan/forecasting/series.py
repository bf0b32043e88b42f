"""Series from a history, one value per period: per lane, per level, and the event regressors.

Each lane runs from its first row to the last date of the history; a missing period (day,
week or month: mmplan.forecasting.frequency) is a zero (DESIGN.md). `fit_days` keeps only
the most recent periods.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple, cast

import polars as pl

from mmplan.forecasting.frequency import Freq, period_range, period_start, shift
from mmplan.forecasting.hierarchy import Hierarchy, Level, series_id
from mmplan.tables import LANE_KEYS

__all__ = [
    "LaneSeries",
    "first_date",
    "last_date",
    "lane_series",
    "level_series",
    "aggregate",
    "event_features",
]


class LaneSeries(NamedTuple):
    """Volume per lane and period (origin, destination, date, volume) and the history's end."""

    daily: pl.DataFrame
    end: dt.date


def first_date(frame: pl.DataFrame, column: str = "date") -> dt.date:
    """The earliest day of a Date column (polars types a column's min as any literal)."""
    return cast(dt.date, frame.get_column(column).min())


def last_date(frame: pl.DataFrame, column: str = "date") -> dt.date:
    """The latest day of a Date column."""
    return cast(dt.date, frame.get_column(column).max())


def lane_series(
    history: pl.DataFrame, fit_days: int | None = None, freq: Freq = "day"
) -> LaneSeries:
    """Volume per lane and period from its first row to the history's end, zeros filled in."""
    end = last_date(history)
    spans = history.group_by(LANE_KEYS).agg(pl.col("date").min().alias("start"))
    if fit_days is not None:
        first = shift(end, -(fit_days - 1), freq)
        spans = spans.with_columns(pl.max_horizontal("start", pl.lit(first)).alias("start"))
    grid = spans.select(
        *LANE_KEYS, period_range(pl.col("start"), pl.lit(end), freq).alias("date")
    ).explode("date")
    daily = grid.join(
        history.select(*LANE_KEYS, "date", pl.col("volume").cast(pl.Float64)),
        on=[*LANE_KEYS, "date"],
        how="left",
    ).with_columns(pl.col("volume").fill_null(0.0))
    return LaneSeries(daily, end)


def level_series(
    history: pl.DataFrame, levels: list[Level], fit_days: int | None = None, freq: Freq = "day"
) -> pl.DataFrame:
    """Long series (unique_id, ds, y) of the given levels, summed from the history's rows.

    The same series as `aggregate(lane_series(...))` (each from its first row to the
    history's end, a missing day a zero) without the lanes' daily grid, which is what costs
    time and memory at 100k lanes.
    """
    end = last_date(history)
    rows = history.select(
        *dict.fromkeys(c for _, cols in levels for c in cols),
        "date",
        pl.col("volume").cast(pl.Float64),
    )
    first = first_date(history)
    if fit_days is not None:
        first = max(first, shift(end, -(fit_days - 1), freq))
    parts = []
    for name, cols in levels:
        # Sum first, name after: building an id string per history row is the slow part.
        sums = (
            rows.lazy()
            .group_by(*cols, "date")
            .agg(pl.col("volume").sum().alias("y"))
            .collect(engine="streaming")
            .select(series_id(name, cols).alias("unique_id"), "date", "y")
        )
        # A series starts at its first row in the whole history (a missing day is a zero,
        # not "not yet open"), clipped to the fit window.
        grid = (
            sums.group_by("unique_id")
            .agg(
                period_range(
                    pl.max_horizontal(pl.col("date").min(), pl.lit(first)), pl.lit(end), freq
                )
                .first()
                .alias("ds")
            )
            .explode("ds")
        )
        sums = sums.filter(pl.col("date") >= first)
        parts.append(
            grid.join(sums.rename({"date": "ds"}), on=["unique_id", "ds"], how="left").with_columns(
                pl.col("y").fill_null(0.0)
            )
        )
    return pl.concat(parts).sort("unique_id", "ds")


def aggregate(daily: pl.DataFrame, hier: Hierarchy) -> pl.DataFrame:
    """Long series (unique_id, ds, y) for every level: each a sum of its lanes."""
    parts = []
    with_attrs = daily.join(hier.lanes, on=LANE_KEYS, how="left")
    for name, cols in hier.levels:
        sid = series_id(name, cols).alias("unique_id")
        parts.append(
            with_attrs.group_by(sid, pl.col("date").alias("ds")).agg(
                pl.col("volume").sum().alias("y")
            )
        )
    return pl.concat(parts).sort("unique_id", "ds")


def event_features(
    dates: pl.Series, events: dict[str, list[dt.date]], freq: Freq = "day"
) -> pl.DataFrame:
    """0/1 columns, one per configured event, for the given period dates (known in advance).

    Events are days; in a weekly or monthly series an event marks the period that holds
    one of its days (Black Friday marks its week, or November).
    """
    frame = pl.DataFrame({"ds": dates})
    anchor = dates[0] if dates.len() else dt.date(2000, 1, 1)
    return frame.with_columns(
        [
            pl.col("ds")
            .is_in(sorted({period_start(d, anchor, freq) for d in days}))
            .cast(pl.Float64)
            .alias(f"event_{name}")
            for name, days in sorted(events.items())
        ]
    )
