"""Long-range forecasts: a temporal hierarchy of days, ISO weeks and calendar months.

Past `[forecast] long_range_after` days (or with `long_range = true`) a daily history is
forecast at three grains and the grains are reconciled with each other (THieF,
Athanasopoulos et al. 2017), so the far days take their level from models of the weekly
and monthly totals rather than from a daily model run hundreds of steps.

1. Three fits of the ordinary pipeline (mmplan.forecasting.pipeline), each reconciled
   across the lane hierarchy: the daily history over the whole horizon; the history summed
   into whole ISO weeks (dated by their Monday) and into whole calendar months (dated by
   the 1st), each up to its last complete period, forecast to the end of the horizon.
   Every grain fits `long_range_model`; the validation windows are skipped (a window of a
   480-day horizon would hold most of the history back), so intervals are the models' own,
   and intermittent series take `short_model` (Croston's intervals are conformal only).
   A grain whose history is too short for its season (two years of weeks or months) is
   left out and its rows are the sums of the days.
2. Temporal reconciliation. hierarchicalforecast's temporal aggregation needs buckets of a
   fixed number of steps, and calendar months hold 28 to 31 days, so mmplan builds its own
   summing matrix over the horizon's days: one row per day, one per whole ISO week within
   `long_range_weeks` weeks, one per whole calendar month. Weeks need not nest in months;
   both are sums of the days. The reconciled days are the weighted least squares fit
   b = (S' W S)^-1 S' W y of the base forecasts y, with structural weights (a period's
   variance in proportion to its days, WLS-structural) and the days past `long_range_days`
   weighted 1e-4: those days keep the daily model's day-of-week and day-of-year shape and
   take their level from the weeks and months. A series whose week or month fit is a
   fallback (`short_model`, a failed fit: not `long_range_model`) is reconciled without
   that grain, so a young lane's historic average does not set its far days.
3. Non-negativity as in the daily path: the lanes' days are clipped at zero and every level
   is re-summed from them. Weeks and months are then the sums of the final days (partial
   periods at the horizon's ends: of the days inside it), so the grains add up exactly.
4. Intervals: each grain keeps its own model's half-widths around the reconciled point,
   the lower bound clipped at zero; a partial period's are its model's scaled by the share
   of its days inside the horizon, and a period whose grain was left out takes the root sum
   of squares of its days' half-widths.

Output: the forecast table with a `grain` column (day, week, month), every grain covering
the whole horizon (mmplan.tables.forecast checks it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.errors import DataError
from mmplan.forecasting.frequency import SEASON, Freq, future_dates, n_periods
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.series import last_date

__all__ = [
    "long_range_reason",
    "long_range_forecast",
    "grain_history",
    "grain_summary",
    "grain_config",
    "TemporalSpec",
    "temporal_spec",
]

# The weight of a daily model's forecast past `long_range_days`: small enough that the
# weeks and months set those days' level, large enough to keep the solve well posed.
FAR_DAY_WEIGHT = 1e-4
_TRUNCATE = {"week": "1w", "month": "1mo"}

Fit = Callable[[pl.DataFrame, ForecastConfig], pl.DataFrame]


def long_range_reason(cfg: ForecastConfig) -> str | None:
    """Why a daily forecast with this config is long-range, or None for the daily path."""
    if cfg.long_range:
        return "[forecast] long_range = true"
    if cfg.horizon > cfg.long_range_after:
        return f"horizon {cfg.horizon} days > [forecast] long_range_after = {cfg.long_range_after}"
    return None


@dataclass(frozen=True)
class Period:
    """One week or month of the horizon: its first day and the horizon's days in it."""

    start: dt.date
    days: npt.NDArray[np.int64]  # column indices of the horizon's days
    length: int  # days in the whole period


@dataclass(frozen=True)
class TemporalSpec:
    """The horizon's days and its ISO weeks and calendar months (step 2 of the docstring)."""

    days: pl.Series
    periods: dict[str, list[Period]]

    def full(self, grain: str) -> list[Period]:
        """The periods lying wholly inside the horizon."""
        return [p for p in self.periods[grain] if len(p.days) == p.length]

    def summing(self, grain: str) -> npt.NDArray[np.float64]:
        """Periods x days, 1 where a day is in the period."""
        out = np.zeros((len(self.periods[grain]), self.days.len()))
        for i, p in enumerate(self.periods[grain]):
            out[i, p.days] = 1.0
        return out


def temporal_spec(end: dt.date, horizon: int) -> TemporalSpec:
    """The weeks and months of the `horizon` days after `end`."""
    days = future_dates(end, horizon, "day")
    frame = pl.DataFrame({"date": days}).with_row_index("i")
    periods: dict[str, list[Period]] = {}
    for grain, unit in _TRUNCATE.items():
        groups = (
            frame.group_by(pl.col("date").dt.truncate(unit).alias("start"))
            .agg(pl.col("i"))
            .sort("start")
        )
        periods[grain] = [
            Period(start, np.asarray(idx, dtype=np.int64), _length(start, grain))
            for start, idx in groups.iter_rows()
        ]
    return TemporalSpec(days, periods)


def _length(start: dt.date, grain: str) -> int:
    if grain == "week":
        return 7
    following = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return (following - start).days


def projection(
    spec: TemporalSpec, base: dict[str, list[int]], near_days: int
) -> npt.NDArray[np.float64]:
    """Days x base rows: the WLS-structural projection from the base forecasts (all days,
    then the periods `base` lists per grain, by index) onto reconciled days."""
    n = spec.days.len()
    rows = [np.eye(n)]
    variance = [np.where(np.arange(n) < near_days, 1.0, 1.0 / FAR_DAY_WEIGHT)]
    for grain in ("week", "month"):
        picked = base.get(grain, [])
        if picked:
            rows.append(spec.summing(grain)[picked])
            variance.append(np.array([spec.periods[grain][i].length for i in picked], float))
    s = np.vstack(rows)
    w = 1.0 / np.concatenate(variance)
    sw = s.T * w  # S' W
    return np.asarray(np.linalg.solve(sw @ s, sw))


@dataclass(frozen=True)
class GrainFit:
    """One grain's fitted forecast as matrices over the day fit's series (rows) and that
    grain's periods of the horizon (columns); None where the grain was left out."""

    point: npt.NDArray[np.float64]
    half_lo: dict[int, npt.NDArray[np.float64]]
    half_hi: dict[int, npt.NDArray[np.float64]]
    models: pl.DataFrame  # unique_id, model


def long_range_forecast(
    history: pl.DataFrame, hier: Hierarchy, cfg: ForecastConfig, fit: Fit
) -> pl.DataFrame:
    """The long-range forecast table (module docstring) of a validated daily history;
    `fit(history, config)` runs the ordinary pipeline."""
    end, horizon = last_date(history), cfg.horizon
    spec = temporal_spec(end, horizon)
    day_cfg = grain_config(cfg, "day", horizon)
    day_table = fit(history, day_cfg)
    ids = hier.series.get_column("unique_id")
    day = _day_fit(day_table, ids, horizon, cfg.levels)
    # The series' key columns and model, in the hierarchy's order (the rows of the matrices).
    named = day_table.select(pl.exclude("date", "forecast", "^lo_.*$", "^hi_.*$"))
    series = pl.DataFrame({"unique_id": ids}).join(
        named.unique("unique_id", keep="first"), on="unique_id", how="left", maintain_order="left"
    )
    columns = [c for c in day_table.columns if c != "date"]
    columns[columns.index("forecast") : columns.index("forecast")] = ["grain", "date"]
    coarse: dict[str, GrainFit | None] = {}
    for grain in ("week", "month"):
        coarse[grain] = _coarse_fit(history, spec, grain, ids, cfg, fit)
    base_rows: dict[str, list[int]] = {}
    for grain in ("week", "month"):
        if coarse[grain] is None:
            continue
        within = horizon if grain == "month" else 7 * cfg.long_range_weeks
        base_rows[grain] = [
            i
            for i, p in enumerate(spec.periods[grain])
            if len(p.days) == p.length and p.days[0] < within
        ]
    rec = _reconcile(spec, day, coarse, base_rows, ids, cfg)
    lanes = np.maximum(rec[hier.bottom_rows], 0.0)
    days = np.asarray(hier.S @ lanes)
    frames = [_grain_frame(series, columns, days, day.half_lo, day.half_hi, spec.days, cfg)]
    for grain in ("week", "month"):
        frames.append(_period_frame(series, columns, spec, grain, days, day, coarse[grain], cfg))
    return pl.concat(frames, how="vertical")


def _reconcile(
    spec: TemporalSpec,
    day: GrainFit,
    coarse: dict[str, GrainFit | None],
    base_rows: dict[str, list[int]],
    ids: pl.Series,
    cfg: ForecastConfig,
) -> npt.NDArray[np.float64]:
    """Series x days: each series' days reconciled with the coarse grains whose fit of it
    is `long_range_model` itself. A fallback (a lane too young for two years of months
    takes HistoricAverage, or a failed fit) would set the level of every far day of that
    series: on the three-year sample two young lanes' month averages did most of the
    temporal path's lane error. Series are grouped by the grains they keep, one projection
    per group; levels add up again when they are re-summed from the lanes."""
    grains = [g for g in ("week", "month") if g in base_rows]
    keep = {}
    for g in grains:
        got = coarse[g]
        assert got is not None
        labels = pl.DataFrame({"unique_id": ids}).join(
            got.models, on="unique_id", how="left", maintain_order="left"
        )["model"]
        keep[g] = (labels == cfg.long_range_model).fill_null(False).to_numpy()
    rec = np.empty_like(day.point)
    patterns = np.stack([keep[g] for g in grains], axis=1) if grains else np.zeros((len(ids), 0))
    for pattern in {tuple(bool(v) for v in row) for row in patterns}:
        rows = np.flatnonzero((patterns == np.array(pattern, dtype=bool)).all(axis=1))
        used = [g for g, ok in zip(grains, pattern, strict=True) if ok]
        stacked = [day.point[rows]]
        for g in used:
            got = coarse[g]
            assert got is not None
            stacked.append(got.point[rows][:, base_rows[g]])
        proj = projection(spec, {g: base_rows[g] for g in used}, cfg.long_range_days)
        rec[rows] = np.hstack(stacked) @ proj.T
    return rec


def grain_config(cfg: ForecastConfig, grain: Freq, horizon: int) -> ForecastConfig:
    """The ordinary pipeline's config for one grain: `long_range_model`, no validation
    windows, and the day counts turned into the grain's periods (public so that
    benchmarks/long_range.py fits monthly totals exactly as the month grain here does)."""
    per = {"day": 1, "week": 7, "month": 30}[grain]

    def periods(days: int) -> int:
        return max(1, -(-days // per))

    update: dict[str, object] = {
        "freq": grain,
        "horizon": horizon,
        "model": cfg.long_range_model,
        "candidates": [],
        "validation_windows": 0,
        "intervals": "model",  # conformal windows of a 480-day horizon would need 3 years
        # Intermittent-demand models have conformal intervals only (two horizons of history
        # each): intermittent series take the short-history model instead.
        "sparse_model": cfg.short_model,
    }
    if grain != "day":
        update |= {
            # No event regressors: a week or month holding an event day is one period in
            # dozens (MSTL's ARIMA trend crashed on the summed columns of a three-year
            # sample), and the day grain keeps the events, which reconciliation carries.
            "default_events": False,
            "events": {},
            "season_length": None,
            # A regular model needs two seasons of history (younger series crashed
            # statsforecast's SeasonalNaive and MSTL): younger ones are "short".
            "min_history_days": max(periods(cfg.min_history_days), 2 * SEASON[grain] + 1),
            "closed_after_days": periods(cfg.closed_after_days),
            "share_days": periods(cfg.share_days),
            "fit_days": None if cfg.fit_days is None else periods(cfg.fit_days),
        }
    return cfg.model_copy(update=update)


def _matrix(
    table: pl.DataFrame, ids: pl.Series, dates: pl.Series, column: str
) -> npt.NDArray[np.float64]:
    """Series x dates of one column of a forecast table (0 where a series has no row)."""
    rows = pl.DataFrame({"unique_id": ids}).with_row_index("_r")
    cols = pl.DataFrame({"date": dates}).with_row_index("_c")
    got = table.select("unique_id", "date", column).join(rows, on="unique_id").join(cols, on="date")
    out = np.zeros((ids.len(), dates.len()))
    out[got["_r"].to_numpy(), got["_c"].to_numpy()] = got[column].to_numpy()
    return out


def _halves(
    table: pl.DataFrame, ids: pl.Series, dates: pl.Series, levels: list[int]
) -> tuple[dict[int, npt.NDArray[np.float64]], dict[int, npt.NDArray[np.float64]]]:
    point = _matrix(table, ids, dates, "forecast")
    lo = {p: point - _matrix(table, ids, dates, f"lo_{p}") for p in levels}
    hi = {p: _matrix(table, ids, dates, f"hi_{p}") - point for p in levels}
    return lo, hi


def _day_fit(table: pl.DataFrame, ids: pl.Series, horizon: int, levels: list[int]) -> GrainFit:
    dates = table.get_column("date").unique().sort()
    if dates.len() != horizon:
        raise AssertionError(f"the day fit has {dates.len()} dates, not {horizon}")
    lo, hi = _halves(table, ids, dates, levels)
    models = table.select("unique_id", "model").unique("unique_id", keep="first")
    return GrainFit(_matrix(table, ids, dates, "forecast"), lo, hi, models)


def _coarse_fit(
    history: pl.DataFrame,
    spec: TemporalSpec,
    grain: str,
    ids: pl.Series,
    cfg: ForecastConfig,
    fit: Fit,
) -> GrainFit | None:
    """One coarser grain's fit over the horizon's periods; None when its history is too
    short to forecast (step 1 of the module docstring)."""
    freq: Freq = "week" if grain == "week" else "month"
    summed = grain_history(history, freq)
    if summed.is_empty():
        return None
    last = last_date(summed)
    starts = pl.Series("date", [p.start for p in spec.periods[grain]], dtype=pl.Date)
    ahead = n_periods(last, starts[-1], freq)
    try:
        table = fit(summed, grain_config(cfg, freq, ahead))
    except DataError:
        return None  # e.g. under two years of weeks: the days alone set this grain
    lo, hi = _halves(table, ids, starts, cfg.levels)
    models = table.select("unique_id", "model").unique("unique_id", keep="first")
    return GrainFit(_matrix(table, ids, starts, "forecast"), lo, hi, models)


def grain_history(history: pl.DataFrame, freq: Freq) -> pl.DataFrame:
    """A daily history summed into whole ISO weeks (dated by Monday) or calendar months
    (dated by the 1st), up to the last period that ends on or before its last day."""
    end = last_date(history)
    if freq == "week":
        cut = end - dt.timedelta(days=(end.weekday() - 6) % 7)  # the last Sunday
    else:
        after = end + dt.timedelta(days=1)
        cut = end if after.day == 1 else end.replace(day=1) - dt.timedelta(days=1)
    keys = [c for c in history.columns if c not in ("date", "volume")]
    return (
        history.filter(pl.col("date") <= cut)
        .group_by(*keys, pl.col("date").dt.truncate(_TRUNCATE[freq]))
        .agg(pl.col("volume").sum())
        .sort("date", *keys)
        .select(history.columns)
    )


def _grain_frame(
    series: pl.DataFrame,
    columns: list[str],
    point: npt.NDArray[np.float64],
    half_lo: dict[int, npt.NDArray[np.float64]],
    half_hi: dict[int, npt.NDArray[np.float64]],
    dates: pl.Series,
    cfg: ForecastConfig,
    grain: str = "day",
    models: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Rows of one grain: `series` (unique_id, keys, model) in the rows' order, `columns`
    the output's."""
    n, m = point.shape
    out: dict[str, object] = {
        "unique_id": np.repeat(series["unique_id"].to_numpy(), m),
        "grain": [grain] * (n * m),
        "date": np.tile(dates.to_numpy(), n),
        "forecast": point.ravel(),
    }
    for p in cfg.levels:
        out[f"lo_{p}"] = np.maximum(point - np.maximum(half_lo[p], 0.0), 0.0).ravel()
        out[f"hi_{p}"] = (point + np.maximum(half_hi[p], 0.0)).ravel()
    frame = pl.DataFrame(out).with_columns(pl.col("date").cast(pl.Date))
    keys = series.drop("model")
    labels = series.select("unique_id", "model")
    if models is not None:
        labels = labels.join(models, on="unique_id", how="left", suffix="_g").select(
            "unique_id", pl.coalesce("model_g", "model").alias("model")
        )
    return (
        frame.join(keys, on="unique_id", how="left", maintain_order="left")
        .join(labels, on="unique_id", how="left", maintain_order="left")
        .select(columns)
    )


def _period_frame(
    series: pl.DataFrame,
    columns: list[str],
    spec: TemporalSpec,
    grain: str,
    days: npt.NDArray[np.float64],
    day: GrainFit,
    got: GrainFit | None,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """A week or month grain: sums of the final days, intervals as the docstring's step 4."""
    s = spec.summing(grain)
    point = days @ s.T
    share = np.array([len(p.days) / p.length for p in spec.periods[grain]])
    half_lo, half_hi = {}, {}
    for p in cfg.levels:
        if got is None:
            half_lo[p] = np.sqrt(np.maximum(day.half_lo[p], 0.0) ** 2 @ s.T)
            half_hi[p] = np.sqrt(np.maximum(day.half_hi[p], 0.0) ** 2 @ s.T)
        else:
            half_lo[p], half_hi[p] = got.half_lo[p] * share, got.half_hi[p] * share
    starts = pl.Series("date", [q.start for q in spec.periods[grain]], dtype=pl.Date)
    models = None if got is None else got.models
    return _grain_frame(series, columns, point, half_lo, half_hi, starts, cfg, grain, models)


def grain_summary(table: pl.DataFrame, cfg: ForecastConfig) -> dict[str, object]:
    """Which grains a forecast table holds and why, for the run's summary."""
    if "grain" not in table.columns:
        if long_range_reason(cfg) is None:
            why = f"horizon {cfg.horizon} <= [forecast] long_range_after = {cfg.long_range_after}"
        else:
            why = "the history is not daily, so its own frequency is the only grain"
        return {"written": ["day"] if cfg.freq in ("auto", "day") else [cfg.freq], "why": why}
    held = set(table.get_column("grain").unique().to_list())
    return {
        "written": [g for g in ("day", "week", "month") if g in held],
        "why": long_range_reason(cfg),
    }
