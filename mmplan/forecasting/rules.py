"""Which model each series gets, by rules applied in order.

The rule shows in the `model` column of the output as ``<model>/<rule>``:

- closed: no volume in the last `closed_after_days` periods (or never) -> zero;
- short: fewer than max(`min_history_days`, 2 x horizon + 1) periods since the series
  started -> `short_model` (HistoricAverage below two seasons);
- sparse: average inter-demand interval (periods / non-zero periods, over the last year)
  above `sparse_adi` (1.32, the Syntetos-Boylan cut-off) -> `sparse_model`, with conformal
  intervals since intermittent models have no native ones;
- otherwise the series' champion from a backtest, if given, else `model`.

Periods are the history's days, weeks or months (mmplan.forecasting.frequency).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting.frequency import PER_YEAR, config_freq, periods_between, season, shift
from mmplan.tables import check

__all__ = ["is_closed", "assign_models"]


def is_closed(end: dt.date, cfg: ForecastConfig) -> pl.Expr:
    """The closed rule on a `last_volume` column: no volume in `closed_after_days`, or never."""
    idle = periods_between(pl.col("last_volume"), pl.lit(end), config_freq(cfg))
    return pl.col("last_volume").is_null() | (idle >= cfg.closed_after_days)


def assign_models(
    y: pl.DataFrame, end: dt.date, cfg: ForecastConfig, champions: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per series: the model it gets, the rule that chose it (module docstring) and
    its length in periods."""
    freq = config_freq(cfg)
    # A long-range forecast's day fit (mmplan.forecasting.temporal) runs past
    # long_range_after days, yet only its near days weigh fully: twice those make a series
    # old enough. Any other daily forecast has horizon <= long_range_after, so is unchanged.
    near = min(cfg.horizon, cfg.long_range_after) if freq == "day" else cfg.horizon
    short_days = max(cfg.min_history_days, 2 * near + 1)
    recent = y.filter(pl.col("ds") > shift(end, -PER_YEAR[freq], freq))
    stats = (
        y.group_by("unique_id")
        .agg(
            pl.col("ds").min().alias("start"),
            pl.col("ds").filter(pl.col("y") > 0).max().alias("last_volume"),
        )
        .join(
            recent.group_by("unique_id").agg(
                (pl.len() / (pl.col("y") > 0).sum().clip(1)).alias("adi")
            ),
            on="unique_id",
            how="left",
        )
    )
    length = periods_between(pl.col("start"), pl.lit(end), freq) + 1
    closed = is_closed(end, cfg)
    short = length < short_days
    if cfg.fit_days is not None:
        # A series that starts on the first day of the fit window is older than the window.
        short &= pl.col("start") > pl.lit(shift(end, -(cfg.fit_days - 1), freq))
    sparse = pl.col("adi") > cfg.sparse_adi
    plan = stats.with_columns(
        rule=pl.when(closed)
        .then(pl.lit("closed"))
        .when(short)
        .then(pl.lit("short"))
        .when(sparse)
        .then(pl.lit("sparse"))
        .otherwise(pl.lit("regular")),
        length=length,
    )
    if champions is not None:
        from mmplan.tables import validate_champions

        check(validate_champions(champions), "champions", "champions")
        plan = plan.join(
            champions.select("unique_id", pl.col("model").alias("champion")),
            on="unique_id",
            how="left",
        )
    else:
        plan = plan.with_columns(champion=pl.lit(None, pl.String))
    short_model = (
        pl.when(pl.col("length") < 2 * season(cfg))
        .then(pl.lit("HistoricAverage"))
        .otherwise(pl.lit(cfg.short_model))
    )
    return (
        plan.with_columns(
            model=pl.when(pl.col("rule") == "closed")
            .then(pl.lit("Zero"))
            .when(pl.col("rule") == "short")
            .then(short_model)
            .when(pl.col("rule") == "sparse")
            .then(pl.lit(cfg.sparse_model))
            .otherwise(pl.coalesce("champion", pl.lit(cfg.model)))
        )
        .select("unique_id", "model", "rule", "length")
        .sort("unique_id")
    )
