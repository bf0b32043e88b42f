"""`forecast`: hierarchical lane forecasts, base models per series reconciled so levels add up.

Pipeline, every step fit on the history it is given and nothing else:

1. Lane series (mmplan.forecasting.series). Each lane runs from its first row to the last
   date of the history; a missing day is a zero (DESIGN.md). `fit_days` keeps only the
   most recent days.
2. Hierarchy (mmplan.forecasting.hierarchy). `total`, one level per entry of
   `[forecast].hierarchy` (a list of column sets, e.g. [["origin_region"], ["origin"]];
   several sets crossing each other give a grouped hierarchy), and `lane`. Every level is
   a sum of lanes, through a summing matrix S.
3. Rules (mmplan.forecasting.rules). Every series gets a model by rules, in order, shown
   in the `model` column of the output as ``<model>/<rule>``: closed, short, sparse, and
   otherwise the series' champion from a backtest, if given, else `model`.
4. Base forecasts (mmplan.forecasting.models): statsforecast, one call per model, with
   in-sample fitted values (the residuals that MinTrace's variance estimates need).
   Calendar events from config are regressors for the models that take them (AutoARIMA,
   MSTL with an ARIMA trend). A series its model raises on takes `short_model` instead,
   labelled ``<short_model>/failed``.
5. Reconciliation (mmplan.forecasting.reconcile) with the configured method, normal
   intervals: BottomUp and MinTrace in mmplan.forecasting.mint (sparse, scales to 100k
   lanes), TopDown and MiddleOut through hierarchicalforecast. Closed series are left out
   of it: they stay zero rather than absorb adjustments. With `lanes = 'share'` only the
   levels above the lanes are fitted and reconciled, and the lanes take shares of their
   parents (mmplan.forecasting.shares, per weekday). With `lanes = 'auto'` (the default)
   every series is fitted and each lane takes its share or its own reconciled forecast,
   whichever the validation windows favour (mmplan.forecasting.choice); the levels above
   are the sums of the lanes as chosen.
6. Non-negativity: the reconciled lane forecasts are clipped at zero and every level is
   re-summed from its lanes (S @ max(b, 0)). This keeps levels adding up exactly and costs
   one sparse product, where hierarchicalforecast's non-negative MinTrace solves a QP per
   horizon step and can stall (hierarchicalforecast issue #178;
   benchmarks/nonneg_bench.py). Intervals keep their reconciled half-widths around the
   final point, with the lower bound clipped at zero, so lo <= forecast <= hi always holds.
7. Calibration (mmplan.forecasting.calibration): each level's half-widths are multiplied
   by the factors the validation windows measured (mmplan.forecasting.choice) or, when
   given, by those of a backtest's calibration.parquet (mmplan.evaluate.calibrate), before
   the lower bound is clipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import Config, ForecastConfig
from mmplan.errors import ConfigError, DataError
from mmplan.forecasting.calibration import calibrate, check_calibration
from mmplan.forecasting.choice import Parts, Validation, compose, validate
from mmplan.forecasting.frequency import config_freq, future_dates, n_periods, resolve, season
from mmplan.forecasting.hierarchy import Hierarchy, history_hierarchy, upper_hierarchy
from mmplan.forecasting.models import (
    FAILED_RULE,
    Progress,
    base_forecasts,
    mstl_label,
    mstl_seasons,
    no_progress,
    yearly_season,
)
from mmplan.forecasting.reconcile import Bands, reconcile, upper_reconciliation
from mmplan.forecasting.rules import assign_models
from mmplan.forecasting.series import aggregate, first_date, lane_series, last_date, level_series
from mmplan.forecasting.shares import share_lanes
from mmplan.forecasting.temporal import long_range_forecast, long_range_reason
from mmplan.logs import checkpoint
from mmplan.tables import check, validate_history

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = ["forecast", "check_forecastable", "compact_keys", "FitSeries"]


@dataclass(frozen=True)
class FitSeries:
    """What the base models are fitted on: the hierarchy and its long series."""

    hier: Hierarchy  # the whole hierarchy, or with shared-out lanes the levels above them
    y: pl.DataFrame  # unique_id, ds, y
    end: dt.date  # the history's last day


def forecast(
    history: pl.DataFrame,
    config: Config | ForecastConfig | None = None,
    *,
    champions: pl.DataFrame | None = None,
    calibration: pl.DataFrame | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> pl.DataFrame:
    """Reconciled, non-negative forecasts with intervals for every series of the hierarchy.

    Returns the forecast table of DESIGN.md: unique_id, level, key columns, date,
    forecast, lo_<p>/hi_<p> for each interval level, model. The history is validated
    first (DataError naming the rows if it breaks its contract). Base models are fit on
    `engine` (mmplan.engine; default: this machine); reconciliation runs here.
    `calibration` (level, interval, factor), from a backtest, scales each level's intervals
    instead of the factors the validation windows measured.
    """
    cfg = _checked(history, _config(config))
    if cfg.freq == "day" and long_range_reason(cfg) is not None:
        return _long_range(history, cfg, calibration, progress or no_progress, engine)
    return _ordinary(history, cfg, champions, calibration, progress, engine)


def _checked(history: pl.DataFrame, cfg: ForecastConfig) -> ForecastConfig:
    """`cfg` with its frequency settled, once the history passed its contract (DataError
    naming the rows) and can be forecast."""
    problems = validate_history(history, cfg.max_history_gap_days, cfg.freq, cat=True)
    check(problems, "history", "history")
    cfg = resolve(cfg, history.get_column("date"))  # auto -> the history's frequency
    check_forecastable(history, cfg)
    return cfg


def _ordinary(
    history: pl.DataFrame,
    cfg: ForecastConfig,
    champions: pl.DataFrame | None,
    calibration: pl.DataFrame | None,
    progress: Progress | None,
    engine: Engine | None,
) -> pl.DataFrame:
    """The forecast of one frequency, steps 1-7 of the module docstring."""
    history = compact_keys(history)
    hier = history_hierarchy(history, cfg)
    if calibration is not None:  # before minutes of fitting
        check_calibration(calibration, [name for name, _ in hier.levels], cfg)
    cfg = cfg.model_copy(update={"lanes": lanes_mode(cfg, hier)})
    report = progress or no_progress
    checked = None
    if cfg.validation_windows and (
        cfg.lanes == "auto" or calibration is None or len(_tries(cfg)) > 1
    ):
        report(0, cfg.validation_windows, "validating")
        checkpoint("forecast.validating")
        cfg, checked = _validated(history, hier, cfg, champions, engine)
    parts = forecast_parts(history, hier, cfg, champions, report, engine)
    n_lanes = hier.lanes.height
    use_share = np.full(n_lanes, cfg.lanes == "share")
    if cfg.lanes == "auto":
        use_share = checked.use_share if checked else np.zeros(n_lanes, dtype=bool)
    lanes = compose(parts, use_share)
    bands = parts.bands
    for p in cfg.levels:
        bands.half_lo[p][hier.bottom_rows] = lanes.half_lo[p]
        bands.half_hi[p][hier.bottom_rows] = lanes.half_hi[p]
    point = np.asarray(hier.S @ np.maximum(lanes.bottom, 0.0))
    if calibration is not None:
        calibrate(bands, calibration, hier, parts.plan, cfg)
    elif checked is not None:
        calibrate(bands, checked.factors, hier, parts.plan, cfg)
    table = _forecast_table(hier, parts.plan, parts.end, point, bands, lanes.labels, cfg)
    _check_finite(table, cfg)
    return table


def _long_range(
    history: pl.DataFrame,
    cfg: ForecastConfig,
    calibration: pl.DataFrame | None,
    progress: Progress,
    engine: Engine | None,
) -> pl.DataFrame:
    """The temporal hierarchy (mmplan.forecasting.temporal): this pipeline run at each grain,
    the backtest's calibration applied to the days only (it measured daily horizons)."""

    def fit(grain_history: pl.DataFrame, grain_cfg: ForecastConfig) -> pl.DataFrame:
        grain_cfg = _checked(grain_history, grain_cfg)
        daily = calibration if grain_cfg.freq == "day" else None
        return _ordinary(grain_history, grain_cfg, None, daily, progress, engine)

    hier = history_hierarchy(compact_keys(history), cfg)
    return long_range_forecast(history, hier, cfg, fit)


def compact_keys(history: pl.DataFrame) -> pl.DataFrame:
    """The history with its text columns as Categorical. At 100k lanes the keys are most
    of the history's bytes (16 per String value, 4 per Categorical one), and every
    validation window and aggregation copies them; the forecast table casts them back."""
    return history.with_columns(pl.col(pl.String).cast(pl.Categorical))


def _tries(cfg: ForecastConfig) -> list[str]:
    """The models the validation windows compare: `model` and its candidates."""
    return list(dict.fromkeys([cfg.model, *cfg.candidates]))


def _validated(
    history: pl.DataFrame,
    hier: Hierarchy,
    cfg: ForecastConfig,
    champions: pl.DataFrame | None,
    engine: Engine | None,
) -> tuple[ForecastConfig, Validation | None]:
    """The validation windows, once per model tried: the config of the model whose lanes
    (shared or its own, as each lane chose) erred least in them, and what they measured.
    Candidates tie-break in their order, `model` first."""
    best: tuple[ForecastConfig, Validation | None] | None = None
    for model in _tries(cfg):
        tried = cfg.model_copy(update={"model": model})

        def run(train: pl.DataFrame, tried: ForecastConfig = tried) -> Parts:
            return forecast_parts(
                train, history_hierarchy(train, tried), tried, champions, no_progress, engine
            )

        checked = validate(history, hier, tried, run)
        if best is None or (
            checked is not None and (best[1] is None or checked.lane_error < best[1].lane_error)
        ):
            best = (tried, checked)
    assert best is not None  # _tries always holds `model`
    return best


def lanes_mode(cfg: ForecastConfig, hier: Hierarchy) -> str:
    """How the lanes are forecast: `lanes` as configured, with "auto" settled by size and
    shape. Above `max_model_lanes` lanes every lane is shared (per-lane models fit about 5
    series per CPU-second, too slow for 100k lanes); a hierarchy whose lanes' parent level
    does not nest in the levels above it cannot share, so its lanes get their own models."""
    if cfg.lanes != "auto":
        return cfg.lanes
    try:
        upper_hierarchy(hier)
    except ConfigError:
        return "model"
    return "share" if hier.lanes.height > cfg.max_model_lanes else "auto"


def forecast_parts(
    history: pl.DataFrame,
    hier: Hierarchy,
    cfg: ForecastConfig,
    champions: pl.DataFrame | None,
    progress: Progress,
    engine: Engine | None,
) -> Parts:
    """Fit, reconcile and share: the pieces a forecast is composed of (choice.Parts).
    `cfg.lanes` is settled ("auto", "share" or "model")."""
    fit = _fit_series(history, hier, cfg)
    plan = assign_models(fit.y, fit.end, cfg, champions)
    bands, failed = _reconciled_bands(fit, hier, plan, cfg, progress, engine)
    if failed:  # their model could not be fitted: label them as the fallback fitted them
        hit = pl.col("unique_id").is_in(list(failed))
        plan = plan.with_columns(
            pl.when(hit).then(pl.lit(cfg.short_model)).otherwise("model").alias("model"),
            pl.when(hit).then(pl.lit(FAILED_RULE)).otherwise("rule").alias("rule"),
        )
    shared = None
    if cfg.lanes != "model":
        upper = fit.hier if cfg.lanes == "share" else upper_hierarchy(hier)
        shared = share_lanes(history, hier, upper, cfg, bands)
    return Parts(hier, plan, bands, shared, fit.end)


def _check_finite(table: pl.DataFrame, cfg: ForecastConfig) -> None:
    """Never hand back a NaN or infinite forecast: the history's magnitude limit
    (mmplan.tables.MAX_VOLUME) should prevent one, so this names what went wrong instead."""
    numbers = ["forecast", *[f"{side}_{p}" for p in cfg.levels for side in ("lo", "hi")]]
    bad = table.filter(pl.any_horizontal(~pl.col(numbers).is_finite()))
    if bad.is_empty():
        return
    series = ", ".join(bad.get_column("unique_id").unique(maintain_order=True).head(5))
    raise DataError(
        f"the forecast is not finite (NaN or infinite) for {bad.height} of {table.height} "
        f"rows (series: {series}); no forecast was written. The history's volumes are "
        "probably too large or too varied to compute with: check their units and scale."
    )


def _config(config: Config | ForecastConfig | None) -> ForecastConfig:
    if config is None:
        return ForecastConfig()
    return config.forecast if isinstance(config, Config) else config


def check_forecastable(history: pl.DataFrame, cfg: ForecastConfig) -> None:
    """Refuse histories that pass the contract but cannot give a meaningful forecast."""
    first, last = first_date(history), last_date(history)
    today = dt.datetime.now(dt.UTC).date()
    if last > today + dt.timedelta(days=1):
        rows = history.with_row_index("_row").filter(pl.col("date") > today)["_row"]
        raise DataError(
            f"history column 'date' runs into the future: it ends on {last}, after today "
            f"({today}), in {rows.len()} rows (first: {rows.head(5).to_list()}). History must be "
            "observed volume; check the upstream date column (time zone, year)."
        )
    span, unit = n_periods(first, last, config_freq(cfg)) + 1, f"{config_freq(cfg)}s"
    if span < 2 * season(cfg):
        raise DataError(
            f"history spans {span} {unit} ({first} .. {last}); forecasting needs at least "
            f"{2 * season(cfg)} {unit} (two seasons of {season(cfg)}). Supply more "
            "history, or set a shorter [forecast] season_length."
        )
    if history.get_column("volume").sum() == 0:
        raise DataError(
            "history column 'volume' is zero on every row, so every lane is closed and there is "
            "nothing to forecast. Check the upstream extract."
        )


def _fit_series(history: pl.DataFrame, hier: Hierarchy, cfg: ForecastConfig) -> FitSeries:
    """The hierarchy the base models are fitted on and its series."""
    if cfg.lanes == "share":
        # Only the levels above the lanes are fitted and reconciled.
        fit_hier = upper_hierarchy(hier)
        end = last_date(history)
        y = level_series(history, fit_hier.levels, cfg.fit_days, config_freq(cfg))
    else:
        fit_hier = hier
        daily, end = lane_series(history, cfg.fit_days, config_freq(cfg))
        y = aggregate(daily, hier)
    return FitSeries(fit_hier, y, end)


def _reconciled_bands(
    fit: FitSeries,
    hier: Hierarchy,
    plan: pl.DataFrame,
    cfg: ForecastConfig,
    progress: Progress,
    engine: Engine | None,
) -> tuple[Bands, tuple[str, ...]]:
    """Base forecasts of the open series, reconciled over `fit.hier`, and the series whose
    model failed (a fallback forecast them: models.fit_chunk).

    Rows are those of hier.series, whose first rows are fit.hier's; closed series stay 0.
    """
    open_ids = plan.filter(pl.col("rule") != "closed").get_column("unique_id")
    bands = Bands.zeros(hier.series.height, cfg.horizon, cfg.levels)
    if not open_ids.len():
        return bands, ()
    got = base_forecasts(fit.y, plan, fit.end, cfg, progress, engine)
    progress(open_ids.len(), open_ids.len(), "reconciling")
    checkpoint("forecast.reconciling")
    how = upper_reconciliation(cfg, fit.hier)
    rec = reconcile(got.forecasts, got.fitted, fit.hier, open_ids, how)
    bands.fill(rec, hier.series, fit.end, cfg.levels)
    return bands, got.failed


def _forecast_table(
    hier: Hierarchy,
    plan: pl.DataFrame,
    end: dt.date,
    point: npt.NDArray[np.float64],
    bands: Bands,
    lane_labels: pl.DataFrame | None,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """The forecast table: point forecasts, clipped intervals and the model of each series."""
    horizon = cfg.horizon
    dates = future_dates(end, cfg.horizon, config_freq(cfg))
    out = {
        "unique_id": np.repeat(hier.series["unique_id"].to_numpy(), horizon),
        "date": np.tile(dates.to_numpy(), hier.series.height),
        "forecast": point.ravel(),
    }
    for p in cfg.levels:
        out[f"lo_{p}"] = np.maximum(point - bands.half_lo[p], 0.0).ravel()
        out[f"hi_{p}"] = (point + bands.half_hi[p]).ravel()
    model = pl.col("model")
    if not mstl_seasons(season(cfg), yearly=False):
        # MSTL on a series too short for the yearly season has no season: its trend fits it.
        no_season = (model == "MSTL") & ~yearly_season(config_freq(cfg))
        model = pl.when(no_season).then(pl.lit(mstl_label(cfg.mstl_trend))).otherwise(model)
    model_label = plan.select(
        "unique_id",
        pl.when(pl.col("rule") == "regular")
        .then(model)
        .otherwise(pl.concat_str(model, pl.lit("/"), "rule"))
        .alias("model"),
    )
    if lane_labels is not None:  # shared lanes: their label replaces their own model's
        ids = lane_labels.get_column("unique_id").implode()
        model_label = pl.concat([model_label.filter(~pl.col("unique_id").is_in(ids)), lane_labels])
    result = (
        pl.DataFrame(out)
        .with_columns(pl.col("date").cast(pl.Date))
        .join(hier.series, on="unique_id", how="left", maintain_order="left")
        .join(model_label, on="unique_id", how="left", maintain_order="left")
    )
    interval_cols = [f"{side}_{p}" for p in cfg.levels for side in ("lo", "hi")]
    return result.select(
        "unique_id",
        "level",
        pl.col(hier.key_columns).cast(pl.String),  # the contract's type, not Categorical
        "date",
        "forecast",
        *interval_cols,
        "model",
    )  # rows in hierarchy order: total first, lanes last, dates ascending
