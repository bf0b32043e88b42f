"""Base forecasts: the statsforecast model of each series, fitted in chunks on an engine.

statsforecast, one call per model, with in-sample fitted values (the residuals that
MinTrace's variance estimates need). Calendar events from config are regressors for the
models that take them (AutoARIMA, MSTL with an ARIMA trend).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting.frequency import (
    Freq,
    config_freq,
    future_dates,
    season,
    statsforecast_freq,
)
from mmplan.forecasting.gbm import GBM_MODEL, gbm_forecasts
from mmplan.forecasting.series import event_features
from mmplan.logs import checkpoint

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "Progress",
    "no_progress",
    "EXOGENOUS_MODELS",
    "NO_NATIVE_INTERVALS",
    "YEAR",
    "MIN_YEARLY_DAYS",
    "make_model",
    "mstl_seasons",
    "mstl_label",
    "yearly_season",
    "BaseForecasts",
    "FIT_ERRORS",
    "FAILED_RULE",
    "Chunk",
    "base_forecasts",
    "fit_chunk",
    "series_scales",
    "interval_cols",
]

# progress(done, total, label): how far model fitting is, for a progress bar.
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, label: str) -> None:
    """A progress callback that reports nothing."""


# Models that use exogenous regressors (the event calendar).
EXOGENOUS_MODELS = {"AutoARIMA", "MSTL"}
YEAR = 365
# MSTL gets a yearly season only for daily series of at least this many days: half the days
# of the year seen twice (730 days of history qualify, and so do backtest windows of 680).
# Weekly and monthly series have the year as their main season (52, 12) already.
MIN_YEARLY_DAYS = YEAR + YEAR // 2
# Decimals kept of each series' values once scaled to a mean absolute value of 1.
SCALED_DECIMALS = 10
# Models with no native intervals; they get conformal ones.
NO_NATIVE_INTERVALS = {"CrostonOptimized", "CrostonClassic", "CrostonSBA", "ADIDA", "IMAPA", "TSB"}


def make_model(
    name: str,
    season_length: int,
    horizon: int,
    alias: str = "base",
    mstl_trend: str = "ARIMA",
    intervals: str = "model",
    yearly: bool = True,
) -> Any:
    """A statsforecast model instance for a configured model name (statsforecast is untyped).

    `yearly` = False leaves MSTL's yearly season out, for series too short to estimate it.
    """
    from statsforecast import models as m
    from statsforecast.utils import ConformalIntervals

    trends: dict[str, Callable[..., Any]] = {
        # ARIMA(1,1,1) on the deseasonalised series takes the event regressors at a seventh
        # of AutoARIMA's search cost (benchmarks/model_choice.py).
        "ARIMA": lambda **kw: m.ARIMA(order=(1, 1, 1), **kw),
        "AutoARIMA": lambda **kw: m.AutoARIMA(seasonal=False, **kw),
        "AutoETS": lambda **kw: m.AutoETS(model="ZZN", **kw),  # no regressors: events ignored
    }

    conformal = ConformalIntervals(h=horizon, n_windows=2)
    if name in NO_NATIVE_INTERVALS:
        if name == "TSB":
            return m.TSB(alpha_d=0.1, alpha_p=0.1, alias=alias, prediction_intervals=conformal)
        return getattr(m, name)(alias=alias, prediction_intervals=conformal)
    seasonal: dict[str, Callable[[], Any]] = {
        "AutoETS": lambda: m.AutoETS(season_length=season_length, alias=alias),
        "AutoTheta": lambda: m.AutoTheta(season_length=season_length, alias=alias),
        "AutoARIMA": lambda: m.AutoARIMA(season_length=season_length, alias=alias),
        # Weekly and yearly seasonality; the ARIMA trend takes the event regressors.
        "MSTL": lambda: m.MSTL(
            season_length=mstl_seasons(season_length, yearly),
            trend_forecaster=trends[mstl_trend](),
            alias=alias,
        ),
        "SeasonalNaive": lambda: m.SeasonalNaive(season_length=season_length, alias=alias),
        "Naive": lambda: m.Naive(alias=alias),
        "HistoricAverage": lambda: m.HistoricAverage(alias=alias),
    }
    if name == "MSTL" and not mstl_seasons(season_length, yearly):
        # No season to take out (statsforecast's MSTL would need supersmoother for a
        # period of 1): MSTL is its trend model on the series itself, which is what this
        # fits. The forecast's model column says so (mstl_label).
        model = trends[mstl_trend](alias=alias)
    else:
        model = seasonal[name]()
    if intervals == "conformal":
        model.prediction_intervals = conformal
        if hasattr(model, "trend_forecaster"):  # MSTL takes its intervals from its trend
            model.trend_forecaster.prediction_intervals = conformal
    return model


def mstl_seasons(season_length: int, yearly: bool) -> list[int]:
    """MSTL's seasons: the configured one and, for long series, the year; a season of 1
    day is no season."""
    return [s for s in (season_length, YEAR if yearly else 1) if s > 1]


def yearly_season(freq: Freq) -> pl.Expr:
    """Whether a series (its `length` column, in periods) gets MSTL's yearly season: daily
    series of at least MIN_YEARLY_DAYS days only."""
    return (pl.col("length") >= MIN_YEARLY_DAYS) & pl.lit(freq == "day")


def mstl_label(trend: str) -> str:
    """The model column of a series whose MSTL has no season: its trend model fits it."""
    return f"MSTL({trend}, no season)"


# What statsforecast raises when a model cannot be fitted on one series: MSTL's ARIMA trend
# on a monthly lane whose volume moved elsewhere in its last month (the shipped sample's
# DS001) raised ValueError on an empty array and failed the whole forecast (exit 70).
FIT_ERRORS: tuple[type[Exception], ...] = (ValueError, ArithmeticError, np.linalg.LinAlgError)
# The model column's rule of a series whose model failed and took the fallback instead.
FAILED_RULE = "failed"


class BaseForecasts(NamedTuple):
    """Base forecasts (unique_id, ds, base, base-lo/hi-<p>) and in-sample fitted values
    (unique_id, ds, y, base), both sorted by series and date, and the series whose model
    could not be fitted and that the fallback models forecast instead."""

    forecasts: pl.DataFrame
    fitted: pl.DataFrame
    failed: tuple[str, ...] = ()


class Chunk(NamedTuple):
    """Some series' history and, for models with regressors, their future regressors."""

    history: pl.DataFrame
    x_future: pl.DataFrame | None


def base_forecasts(
    y: pl.DataFrame,
    plan: pl.DataFrame,
    end: dt.date,
    cfg: ForecastConfig,
    progress: Progress,
    engine: Engine | None = None,
) -> BaseForecasts:
    """Base forecasts and in-sample fitted values for all non-closed series.

    One statsforecast fit per (model, short) group. A local engine fits each group in one
    call spread over `n_jobs` processes; a Dask engine fits it in chunks of series on the
    workers. Series are fit independently, so the chunking changes no number.
    """
    from functools import partial

    from mmplan.engine import LocalEngine

    engine = engine or LocalEngine()
    futures, fitted, failed = [], [], []
    todo = plan.filter(pl.col("rule") != "closed")
    done = 0
    freq = config_freq(cfg)
    horizon_dates = future_dates(end, cfg.horizon, freq)
    # Short series are too short for conformal intervals' held-out windows.
    todo = todo.with_columns(short=pl.col("rule") == "short")
    # A yearly season needs most days of the year seen twice: on less, STL's yearly
    # component absorbs the noise (120 days left residuals of 1 package on 22k a day, and
    # intervals as narrow) and the forecast repeats days it never saw a year earlier.
    # `length` (assign_models) is the series' days in `y`: each runs from its start to `end`.
    todo = todo.with_columns(yearly=yearly_season(freq))
    for (model, short, yearly), group in todo.group_by(
        "model", "short", "yearly", maintain_order=True
    ):
        ids = group.get_column("unique_id")
        progress(done, todo.height, f"fitting {model} on {ids.len():,} series")
        checkpoint("forecast.fitting")
        data = y.filter(pl.col("unique_id").is_in(ids.implode()))
        if model == GBM_MODEL:  # one global model over the group, in this process
            fc, fit_values = gbm_forecasts(data, end, cfg)
            futures.append(fc)
            fitted.append(fit_values)
            done += ids.len()
            continue
        x_future = None
        if model in EXOGENOUS_MODELS and cfg.events:
            feats = event_features(data["ds"].unique().sort(), cfg.events, freq)
            # A regressor that never fires in the training window cannot be estimated.
            active = [c for c in feats.columns[1:] if feats[c].sum() > 0]
            if active:
                data = data.join(feats.select("ds", *active), on="ds")
                x_future = pl.DataFrame({"unique_id": ids}).join(
                    event_features(horizon_dates, cfg.events, freq).select("ds", *active),
                    how="cross",
                )
        fit = partial(
            fit_chunk,
            model=make_model(
                model,
                season(cfg),
                cfg.horizon,
                mstl_trend=cfg.mstl_trend,
                intervals="model" if short else cfg.intervals,
                yearly=yearly,
            ),
            horizon=cfg.horizon,
            levels=cfg.levels,
            n_jobs=engine.jobs_per_task(cfg.n_jobs),
            freq=statsforecast_freq(freq),
            fallbacks=_fallbacks(cfg),
        )
        chunks = _chunks(data, x_future, engine.chunk_size(ids.len()))
        sizes = [c.history["unique_id"].n_unique() for c in chunks]
        label = f"fitting {model} on {ids.len():,} series"
        tick = _chunk_progress(progress, done, sizes, todo.height, label)
        for got in engine.map(fit, chunks, tick):
            futures.append(got.forecasts)
            fitted.append(got.fitted)
            failed.extend(got.failed)
        done += ids.len()
    if not futures:
        return BaseForecasts(pl.DataFrame(), pl.DataFrame())
    return BaseForecasts(
        pl.concat(futures).sort("unique_id", "ds"),
        pl.concat(fitted).sort("unique_id", "ds"),
        tuple(failed),
    )


def _fallbacks(cfg: ForecastConfig) -> list[Any]:
    """The models a series whose own model fails is fitted with, in turn: `short_model`
    (what a series too young for its model gets), then HistoricAverage (which fits any
    series). Their own intervals: conformal windows would fail where the model did."""
    return [
        make_model(name, season(cfg), cfg.horizon, mstl_trend=cfg.mstl_trend, yearly=False)
        for name in dict.fromkeys([cfg.short_model, "HistoricAverage"])
    ]


def _chunk_progress(
    progress: Progress, start: int, sizes: list[int], total: int, label: str
) -> Callable[[int], None]:
    """A callback for chunk i finishing that reports the series fitted so far."""
    done = [start]

    def tick(i: int) -> None:
        done[0] += sizes[i]
        progress(done[0], total, label)

    return tick


def _chunks(data: pl.DataFrame, x_future: pl.DataFrame | None, size: int) -> list[Chunk]:
    """(history, future regressors) of consecutive groups of `size` series."""
    if size >= data["unique_id"].n_unique():  # one chunk (the local engine): no copy
        return [Chunk(data, x_future)]
    # Dense rank over the same set of ids numbers a series alike in both frames.
    chunk = ((pl.col("unique_id").rank("dense") - 1) // size).alias("_chunk")
    parts = data.with_columns(chunk).partition_by("_chunk", maintain_order=True, include_key=False)
    if x_future is None:
        return [Chunk(p, None) for p in parts]
    futures = x_future.with_columns(chunk).partition_by(
        "_chunk", maintain_order=True, include_key=False
    )
    return [Chunk(p, f) for p, f in zip(parts, futures, strict=True)]


def fit_chunk(
    chunk: Chunk,
    model: Any,
    horizon: int,
    levels: list[int],
    n_jobs: int,
    freq: str = "1d",
    fallbacks: list[Any] | None = None,
) -> BaseForecasts:
    """Forecasts and in-sample fitted values of one model on a chunk of series.

    When the model fails on the chunk (FIT_ERRORS) and `fallbacks` are given, each series
    is fitted alone, and one the model fails on takes the first fallback that fits it,
    named in `failed`: one odd series no longer fails the whole forecast. Runs in this
    process or on a Dask worker (mmplan.engine), so it takes and returns only picklable
    frames.
    """
    try:
        return _fit_one_model(chunk, model, horizon, levels, n_jobs, freq)
    except FIT_ERRORS:
        if not fallbacks:
            raise
    got, failed = [], []
    data, x_future = chunk
    for uid in data.get_column("unique_id").unique(maintain_order=True).to_list():
        mine = pl.col("unique_id") == uid
        one = Chunk(data.filter(mine), None if x_future is None else x_future.filter(mine))
        try:
            got.append(_fit_one_model(one, model, horizon, levels, 1, freq))
            continue
        except FIT_ERRORS:
            failed.append(uid)
        # The fallbacks take no regressors: the event columns are left out.
        plain = Chunk(one.history.select("unique_id", "ds", "y"), None)
        for i, other in enumerate(fallbacks):
            try:
                got.append(_fit_one_model(plain, other, horizon, levels, 1, freq))
                break
            except FIT_ERRORS:
                if i == len(fallbacks) - 1:
                    raise
    return BaseForecasts(
        pl.concat([g.forecasts for g in got]), pl.concat([g.fitted for g in got]), tuple(failed)
    )


def _fit_one_model(
    chunk: Chunk, model: Any, horizon: int, levels: list[int], n_jobs: int, freq: str
) -> BaseForecasts:
    """fit_chunk's statsforecast call: one model on every series of the chunk."""
    from statsforecast import StatsForecast

    data, x_future = chunk
    # Each series is fitted in its own units (its mean absolute volume is 1) and scaled
    # back: the models' optimiser tolerances and floors are absolute, so volumes in
    # billions or in millionths moved forecasts by 4-46% off the same history in packages.
    # Rounding the scaled values to 1e-10 makes the same history in another unit the same
    # input bit for bit: a last-bit difference (volume x 0.001 is inexact) sent AutoETS's
    # optimiser down another path, 0.3% off.
    scales = series_scales(data)
    data = data.join(scales, on="unique_id").with_columns(
        (pl.col("y") / pl.col("_scale")).round(SCALED_DECIMALS)
    )
    sf = StatsForecast(models=[model], freq=freq, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(
            df=data.drop("_scale"), h=horizon, X_df=x_future, level=levels, fitted=True
        )
        fit = sf.forecast_fitted_values()
    values = ["base", *interval_cols(levels)]
    return BaseForecasts(
        _rescaled(fc.select("unique_id", "ds", *values), scales, values),
        _rescaled(fit.select("unique_id", "ds", "y", "base"), scales, ["y", "base"]),
    )


def series_scales(data: pl.DataFrame) -> pl.DataFrame:
    """unique_id, _scale: each series' mean absolute value of `y` (1 for an all-zero one)."""
    mean_abs = pl.col("y").abs().mean()
    scale = pl.when(mean_abs > 0).then(mean_abs).otherwise(pl.lit(1.0))
    return data.group_by("unique_id").agg(scale.cast(pl.Float64).alias("_scale"))


def _rescaled(frame: pl.DataFrame, scales: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`columns` of a model's output multiplied back by their series' scale."""
    return (
        frame.join(scales, on="unique_id", how="left", maintain_order="left")
        .with_columns(pl.col(c) * pl.col("_scale") for c in columns)
        .drop("_scale")
    )


def interval_cols(levels: list[int], prefix: str = "base") -> list[str]:
    """The interval columns statsforecast names for a model alias: <prefix>-lo-80, ..."""
    return [f"{prefix}-{side}-{p}" for p in levels for side in ("lo", "hi")]
