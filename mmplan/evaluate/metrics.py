"""Scoring forecasts against actuals: the one definition of WAPE, bias, MASE, coverage and skill.

Shared by `backtest` (scored per cutoff) and whatever else scores a forecast after the fact,
so every report of a metric means the same thing.

Actuals are the history's lane volumes with missing periods (days, weeks or months) as
zeros, summed to every level by the forecast's own helpers (`lane_series`,
`build_hierarchy`, `aggregate`); a point's `step` counts periods after its cutoff.

New series. A lane (or a whole origin, region, ...) whose first row is after a cutoff is
not in that cutoff's forecast: the pipeline could not know it. It is still scored, as a
forecast of zero with a zero-width interval and model ``Zero/new``, because a plan built
from that forecast would have carried nothing for it. So every level is scored on the
same volume (a parent's actual is the sum of its children's, new lanes included) and the
points stay coherent; filter ``model != "Zero/new"`` to score known series only.

Metrics, pooled over all points of a group (run x level, per horizon step and overall),
so a large lane weighs more than a small one and zero-volume lanes need no special case:

- WAPE = sum |forecast - actual| / sum actual;
- bias = sum (forecast - actual) / sum actual (positive: over-forecast);
- MASE = sum |error| / sum of the in-sample seasonal-naive MAE of each point's series,
  measured on the training window of its cutoff (the scale statsforecast's MASE uses),
  with the season of the history's frequency (mmplan.forecasting.frequency.season);
- coverage_<p> = share of points with lo_<p> <= actual <= hi_<p> (nominal: p / 100);
- skill = 1 - WAPE / WAPE of the baseline run (``naive``: a per-lane seasonal naive,
  summed bottom-up) on the same points (0: no better than naive; 0.2: a fifth less error;
  negative: worse).

Every ratio is zero-safe: with a zero denominator it is 0 when the numerator is 0 too (a
forecast of zero for a lane that carried nothing is perfect) and null otherwise (never
NaN or inf, which JSON cannot hold). A gate treats a null measurement as failed.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, NamedTuple

import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting import aggregate, hierarchy_levels, history_hierarchy, lane_series
from mmplan.forecasting.frequency import (
    Freq,
    config_freq,
    future_dates,
    periods_between,
    season,
    shift,
)
from mmplan.forecasting.hierarchy import LANE, Level, series_id
from mmplan.tables import LANE_KEYS

__all__ = [
    "METRICS_FORMAT",
    "BASELINE_MODEL",
    "BASELINE_RUN",
    "NEW_MODEL",
    "Actuals",
    "actuals",
    "level_names",
    "mase_scale",
    "score",
    "ratio",
    "compute_metrics",
    "finite",
    "metrics_record",
    "lane_markets",
    "market_points",
]

# metrics.json's and calibration.parquet's format. 2: the baseline run is a per-lane
# seasonal naive reconciled bottom-up whatever `lanes` is (format 1 shared it out like
# the primary, which flattered skill).
METRICS_FORMAT = 2  # = mmplan.tables.CALIBRATION_FORMAT
# The baseline every backtest runs: the naive forecast a planner would build by hand, a
# SeasonalNaive(season_length) of every lane, summed bottom-up (mmplan.evaluate.backtest).
BASELINE_MODEL = "SeasonalNaive"
BASELINE_RUN = "naive"
# Model label of a series that first appears after a cutoff (scored as a zero forecast).
NEW_MODEL = "Zero/new"


class Actuals(NamedTuple):
    """Zero-filled actuals at every level, and the series they belong to."""

    y: pl.DataFrame  # unique_id, ds, y
    series: pl.DataFrame  # unique_id, level


def actuals(history: pl.DataFrame, fcfg: ForecastConfig) -> Actuals:
    """Zero-filled actuals (unique_id, ds, y) at every level, and the series table.

    Built like the forecast builds its training series, over the whole history: each lane
    runs from its first row to the history's end, a missing period being a zero.
    """
    daily, _ = lane_series(history, freq=config_freq(fcfg))
    hier = history_hierarchy(history, fcfg)
    return Actuals(aggregate(daily, hier), hier.series.select("unique_id", "level"))


def level_names(fcfg: ForecastConfig, columns: list[str]) -> list[str]:
    """The hierarchy's level names, total first: the levels every metric is reported at."""
    return [name for name, _ in hierarchy_levels(fcfg, columns)]


def mase_scale(y: pl.DataFrame, cutoff: dt.date, fcfg: ForecastConfig) -> pl.DataFrame:
    """Per series: mean |y_t - y_(t-m)| over the training window of `cutoff` (MASE's scale)."""
    train = y.filter(pl.col("ds") <= cutoff)
    if fcfg.fit_days is not None:
        train = train.filter(pl.col("ds") > shift(cutoff, -fcfg.fit_days, config_freq(fcfg)))
    m = season(fcfg)
    return (
        train.sort("unique_id", "ds")
        .with_columns((pl.col("y") - pl.col("y").shift(m).over("unique_id")).abs().alias("d"))
        .group_by("unique_id")
        .agg(pl.col("d").mean().alias("mase_scale"))
    )


def score(
    fc: pl.DataFrame,
    y: pl.DataFrame,
    series: pl.DataFrame,
    cutoff: dt.date,
    horizon: int,
    scale: pl.DataFrame,
    interval_levels: list[int],
    freq: Freq = "day",
) -> pl.DataFrame:
    """Points of one cutoff's forecast: each forecast row with its actual, plus the series
    that appear only after the cutoff as zero forecasts (module docstring). `horizon` and
    the points' `step` count periods of `freq`."""
    interval_cols = [f"{s}_{p}" for p in interval_levels for s in ("lo", "hi")]
    window = y.filter(
        (pl.col("ds") > cutoff) & (pl.col("ds") <= shift(cutoff, horizon, freq))
    ).rename({"ds": "date", "y": "actual"})
    known = fc.select("unique_id", "level", "date", "forecast", *interval_cols, "model")
    new_ids = (
        window.select("unique_id")
        .unique()
        .join(known.select("unique_id").unique(), on="unique_id", how="anti")
    )
    dates = pl.DataFrame({"date": future_dates(cutoff, horizon, freq)})
    new = (
        new_ids.join(series, on="unique_id")
        .join(dates, how="cross")
        .with_columns(
            pl.lit(0.0).alias("forecast"),
            *[pl.lit(0.0).alias(c) for c in interval_cols],
            pl.lit(NEW_MODEL).alias("model"),
        )
        .select(known.columns)
    )
    return (
        pl.concat([known, new])
        .join(window, on=["unique_id", "date"], how="left")
        .join(scale, on="unique_id", how="left")
        .with_columns(
            pl.col("actual").fill_null(0.0),
            pl.lit(cutoff).alias("cutoff"),
            periods_between(pl.lit(cutoff), pl.col("date"), freq).cast(pl.Int32).alias("step"),
        )
        .select(
            "unique_id",
            "level",
            "cutoff",
            "date",
            "step",
            "actual",
            "forecast",
            *interval_cols,
            "model",
            "mase_scale",
        )
    )


def lane_markets(history: pl.DataFrame, column: str, levels: list[Level]) -> pl.DataFrame:
    """One row per lane: its series id, its market (the history's `column`) and the key
    columns of every level, for `market_points`."""
    keys = dict.fromkeys(c for _, cols in levels for c in cols if c not in LANE_KEYS)
    firsts = {c: pl.col(c).first() for c in keys} | {"market": pl.col(column).first()}
    return (
        history.group_by(LANE_KEYS)
        .agg(**firsts)
        .with_columns(series_id(LANE, LANE_KEYS).alias("unique_id"))
    )


def market_points(points: pl.DataFrame, lanes: pl.DataFrame, levels: list[Level]) -> pl.DataFrame:
    """The points of every market on its own: `points` with a `market` column, each
    market's series at every level summed from its own lanes (`lanes` from `lane_markets`).

    A series whose lanes all lie in one market keeps its points (intervals and MASE scale
    included). A series spanning markets (the total, a region of several markets) is split:
    each market's part is the sum of its lanes' actuals and forecasts, exact because the
    forecast is coherent (the naive too: it is summed bottom-up), but with no interval or
    MASE scale, which do not add up (coverage and MASE are null there). Lanes without a
    market (in the forecast, not in the actuals) belong to none."""
    lane_pts = points.filter(pl.col("level") == LANE).join(lanes, on="unique_id")
    keep = ["run", "unique_id", "cutoff", "date", "step"]
    extra = [c for c in points.columns if c not in (*keep, "level", "actual", "forecast")]
    parts = [lane_pts.select(*points.columns, "market")]
    for name, cols in levels:
        if name == LANE:
            continue
        sid = series_id(name, cols).alias("unique_id")
        spans = lanes.group_by(sid).agg(pl.col("market").n_unique().alias("_n"))
        nested = spans.filter(pl.col("_n") == 1).get_column("unique_id").to_list()
        mine = lanes.select(sid, "market").unique()
        whole = points.filter((pl.col("level") == name) & pl.col("unique_id").is_in(nested))
        parts.append(whole.join(mine, on="unique_id").select(*points.columns, "market"))
        split = (
            lane_pts.with_columns(sid)
            .filter(~pl.col("unique_id").is_in(nested))
            .group_by("run", "market", "unique_id", "cutoff", "date", "step")
            .agg(pl.col("actual").sum(), pl.col("forecast").sum())
            .with_columns(pl.lit(name).alias("level"), *[pl.lit(None).alias(c) for c in extra])
        )
        parts.append(split.select(*points.columns, "market"))
    return pl.concat(parts, how="vertical_relaxed")


def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, zero-safe: 0 when both are 0, null when only the denominator is."""
    return (
        pl.when(den > 0)
        .then(num / den)
        .when(num.abs() == 0)
        .then(pl.lit(0.0))
        .otherwise(pl.lit(None, pl.Float64))
    )


def compute_metrics(
    points: pl.DataFrame,
    interval_levels: list[int],
    baseline_run: str = BASELINE_RUN,
    by: tuple[str, ...] = ("level",),
) -> pl.DataFrame:
    """Pooled metrics per run x level, per step and overall (step null), from points.

    `by` are the columns a group is keyed by besides run and step: the level (the
    backtest), or level and unique_id (the monitor's per-series scores)."""
    err = pl.col("forecast") - pl.col("actual")
    sums = [
        pl.len().alias("points"),
        pl.col("actual").sum().alias("sum_actual"),
        err.sum().alias("sum_error"),
        err.abs().sum().alias("sum_abs_error"),
        err.abs().filter(pl.col("mase_scale").is_not_null()).sum().alias("_mase_num"),
        # No scale at all (a market's part of a series spanning markets): MASE unknown.
        pl.when(pl.col("mase_scale").is_not_null().any())
        .then(pl.col("mase_scale").sum())
        .alias("_mase_den"),
        *[
            # A point without an interval (a market's part of a spanning series) leaves
            # the group's coverage unknown rather than measured on the others.
            pl.when(pl.col(f"lo_{p}").is_null().any())
            .then(pl.lit(None, pl.Float64))
            .otherwise(pl.col("actual").is_between(pl.col(f"lo_{p}"), pl.col(f"hi_{p}")).mean())
            .alias(f"coverage_{p}")
            for p in interval_levels
        ],
    ]
    keys = list(by)
    by_step = points.group_by("run", *keys, "step").agg(sums)
    overall = (
        points.group_by("run", *keys).agg(sums).with_columns(pl.lit(None, pl.Int32).alias("step"))
    )
    table = pl.concat([by_step, overall.select(by_step.columns)])
    naive = table.filter(pl.col("run") == baseline_run).select(
        *keys, "step", pl.col("sum_abs_error").alias("_naive")
    )
    table = table.join(naive, on=[*keys, "step"], how="left", nulls_equal=True)
    return (
        table.with_columns(
            ratio(pl.col("sum_abs_error"), pl.col("sum_actual")).alias("wape"),
            ratio(pl.col("sum_error"), pl.col("sum_actual")).alias("bias"),
            pl.when(pl.col("_mase_den").is_not_null())
            .then(ratio(pl.col("_mase_num"), pl.col("_mase_den")))
            .alias("mase"),
            # Two perfect forecasts are equally good: skill 0, not 1.
            pl.when(pl.col("_naive") > 0)
            .then(1.0 - pl.col("sum_abs_error") / pl.col("_naive"))
            .when(pl.col("sum_abs_error") == 0)
            .then(pl.lit(0.0))
            .otherwise(pl.lit(None, pl.Float64))
            .alias("skill"),
        )
        .select(
            "run",
            *keys,
            "step",
            "points",
            "sum_actual",
            "sum_error",
            "sum_abs_error",
            "wape",
            "bias",
            "mase",
            "skill",
            *[f"coverage_{p}" for p in interval_levels],
        )
        .sort("run", *keys, "step", nulls_last=True)
    )


def finite(value: Any) -> Any:
    """JSON-safe number: NaN/inf (which should not occur) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_record(
    metrics: pl.DataFrame, levels: list[str], interval_levels: list[int]
) -> dict[str, Any]:
    """metrics.json's "metrics": run -> level -> overall values and "by_step"."""
    keys = ["wape", "bias", "mase", "skill", *[f"coverage_{p}" for p in interval_levels]]
    keys += ["points", "sum_actual", "sum_abs_error", "sum_error"]
    out: dict[str, Any] = {}
    for row in metrics.iter_rows(named=True):
        level = out.setdefault(row["run"], {}).setdefault(row["level"], {"by_step": {}})
        values = {k: finite(row[k]) for k in keys}
        if row["step"] is None:
            level.update(values)
        else:
            level["by_step"][str(row["step"])] = values
    # levels in hierarchy order (total first), as the planner reads them
    return {
        run: {lv: by_level[lv] for lv in levels if lv in by_level} for run, by_level in out.items()
    }
