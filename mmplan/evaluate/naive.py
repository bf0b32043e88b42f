"""The backtest's seasonal-naive baseline, rebuilt from actuals as of a forecast's origin.

`mmplan backtest` runs the forecast pipeline with `baseline_config` (every lane its own
SeasonalNaive(season_length), summed bottom-up) to measure skill. `mmplan monitor` has no
reason to refit it: each lane's model follows from the same rules (mmplan.forecasting.rules
with the baseline config: closed -> zero; younger than two seasons -> its historic average;
otherwise the seasonal naive) and its values from the last season before the origin, as
statsforecast computes them. The levels above are the lanes' sums.

It needs the season before the origin in the actuals. A lane whose first row is the actuals'
first day may be older than the actuals show; it is taken as established (seasonal naive).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mmplan.config import ForecastConfig
from mmplan.evaluate.backtest import baseline_config, through_cutoff
from mmplan.evaluate.metrics import BASELINE_MODEL
from mmplan.forecasting import Hierarchy, aggregate, assign_models, lane_series
from mmplan.forecasting.frequency import config_freq, future_dates, periods_between, season, shift
from mmplan.forecasting.hierarchy import LANE, series_id
from mmplan.forecasting.series import first_date
from mmplan.tables import LANE_KEYS

__all__ = ["naive_start", "naive_forecast"]


def naive_start(origin: dt.date, fcfg: ForecastConfig) -> dt.date:
    """The first day the actuals must hold for the naive as of `origin`: a season before."""
    return shift(origin, -(season(fcfg) - 1), config_freq(fcfg))


def _lane_values(
    daily: pl.DataFrame, origin: dt.date, horizon: int, fcfg: ForecastConfig, first: dt.date
) -> pl.DataFrame:
    """origin, destination, date, volume: each lane's naive for the `horizon` periods."""
    freq, m = config_freq(fcfg), season(fcfg)
    y = daily.with_columns(series_id(LANE, LANE_KEYS).alias("unique_id")).rename(
        {"date": "ds", "volume": "y"}
    )
    models = assign_models(y, origin, baseline_config(fcfg, horizon)).join(
        y.group_by("unique_id").agg(pl.col("ds").min().alias("start")), on="unique_id"
    )
    # Actuals that start late make every lane look young; those lanes are established.
    models = models.with_columns(
        pl.when((pl.col("model") == "HistoricAverage") & (pl.col("start") == first))
        .then(pl.lit(BASELINE_MODEL))
        .otherwise(pl.col("model"))
        .alias("model")
    )
    lanes = y.group_by("unique_id").agg(pl.col(LANE_KEYS).first(), pl.col("y").mean().alias("avg"))
    back = y.with_columns(periods_between(pl.col("ds"), pl.lit(origin), freq).alias("k")).filter(
        pl.col("k") < m
    )
    steps = pl.DataFrame({"date": future_dates(origin, horizon, freq)}).with_row_index(
        "h", offset=1
    )
    steps = steps.with_columns((m - 1 - (pl.col("h").cast(pl.Int64) - 1) % m).alias("k"))
    return (
        lanes.join(models.select("unique_id", "model"), on="unique_id")
        .join(steps, how="cross")
        .join(
            back.select("unique_id", "k", pl.col("y").alias("last")),
            on=["unique_id", "k"],
            how="left",
        )
        .select(
            *LANE_KEYS,
            "date",
            pl.when(pl.col("model") == "Zero")
            .then(0.0)
            .when(pl.col("model") == "HistoricAverage")
            .then(pl.col("avg"))
            .otherwise(pl.col("last").fill_null(0.0))
            .alias("volume"),
        )
    )


def naive_forecast(
    history: pl.DataFrame, origin: dt.date, horizon: int, fcfg: ForecastConfig, hier: Hierarchy
) -> pl.DataFrame:
    """The baseline's forecast table (unique_id, level, date, forecast, zero-width intervals,
    model) at every level of `hier`, from the rows of `history` up to `origin`."""
    train = history.filter(pl.col("date") <= origin)
    freq = config_freq(fcfg)
    daily, _ = lane_series(through_cutoff(train, origin), fit_days=fcfg.fit_days, freq=freq)
    lanes = _lane_values(daily, origin, horizon, fcfg, first_date(history))
    sums = aggregate(lanes, hier).rename({"ds": "date", "y": "forecast"})
    intervals = [pl.col("forecast").alias(f"{s}_{p}") for p in fcfg.levels for s in ("lo", "hi")]
    return sums.join(hier.series.select("unique_id", "level"), on="unique_id").select(
        "unique_id", "level", "date", "forecast", *intervals, pl.lit(BASELINE_MODEL).alias("model")
    )
