"""`model = "LightGBM"`: one gradient-boosted model across all its series, forecast recursively.

A global model learns from every series at once what a per-series model learns from one:
how volume a week and four weeks back, recent means, the weekday, the day of the year and
the calendar events move the next day. It is the approach of the M5 competition's winners,
and on real lane histories it beat a per-series AutoETS where the series share their
dynamics (births per state: lane WAPE 0.056 against 0.068; README "The default model, by
measurement"), at a tenth of the fitting time.

- **Units**: each series is divided by its mean over its own days, so lanes of 5 and 5,000
  packages a day share one model; forecasts are scaled back. With `[forecast]
  gbm_level_days` = N > 0, targets and lag features are also divided by the series' mean
  over the N periods before the one predicted (floored at LEVEL_FLOOR): trees cannot
  predict above the targets they saw, so a growing network is otherwise forecast flat
  (the sample: 5.8% under at every level; README has the measurements behind default 0).
- **Features** for period t: the value 1, 7, 14 and 28 periods back; the means of the 7
  and 28 periods ending 7 and 28 periods back; the weekday (daily series); the day of year
  and month once the history holds a year plus the horizon; the configured calendar
  events; and the series and its level as categories.
  Before a series' first row its values are missing (LightGBM routes them), never zeros.
- **Closed days**: a day on which every series is zero (the whole network shut, or no row
  at all) is fitted as the same day a week earlier, so a holiday closure does not drag the
  lags of the week after it; the day's own actuals are untouched elsewhere.
- **Recursive**: step 1 is predicted from the history, step 2 also from step 1's forecast,
  and so on; a forecast below a thousandth of the series' mean is fed back as zero.
- **Loss and size**: L1 (a median forecast minimises absolute error, which WAPE counts),
  and leaves of at least 20 rows or 1/200 of the rows, so that a few dozen short series
  are not memorised.
- **Intervals**: z x sigma_t, where sigma_t is the series' relative in-sample error (residual
  over fitted level, the level floored at FLOOR of the mean) times step t's forecast: a
  Sunday forecast at a third of a weekday's volume gets a third of its width, so wide
  weekday errors no longer swamp the quiet days (sample 80% coverage at the total 64% ->
  70%, with the same constant-width calibration factors). They are a shape, not a promise:
  the validation windows' factors (mmplan.forecasting.choice) calibrate each level's width
  to what the model really does 28 days ahead.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting.frequency import Freq, config_freq, future_dates, period_range, season
from mmplan.forecasting.series import event_features

__all__ = ["GBM_MODEL", "gbm_forecasts"]

GBM_MODEL = "LightGBM"
LAGS = (1, 7, 14, 28)
MEANS = ((7, 7), (7, 28), (28, 7), (28, 28))  # (periods back, window): mean of the window
TREES = 300
LEARNING_RATE = 0.05
SEED = 0
SCALED_DECIMALS = 10
ZERO = 1e-3  # in units of the series' mean
SEASON_OF_YEAR = {"day": 365, "week": 52, "month": 12}
LEVEL_FLOOR = 0.05  # a local level below this (in units of the series' mean) is floored


@dataclass(frozen=True)
class _Panel:
    """Series x periods, scaled: history (NaN before a series starts) then the horizon."""

    ids: list[str]
    levels: npt.NDArray[np.int64]  # each series' level, as a category code
    scale: npt.NDArray[np.float64]
    z: npt.NDArray[np.float64]  # n x (T + h)
    dates: pl.Series  # T + h period dates
    n_hist: int
    calendar: npt.NDArray[np.float64]  # (T + h) x calendar features
    level_periods: int  # [forecast] gbm_level_days (0: no local level)


# The level (in units of the series' mean) below which a width stops shrinking with it: a
# day forecast near zero still gets a quarter of a mean day's relative error.
FLOOR = 0.25


def gbm_forecasts(
    data: pl.DataFrame, end: dt.date, cfg: ForecastConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Forecasts (unique_id, ds, base, base-lo/hi-<p>) and in-sample fitted values
    (unique_id, ds, y, base) of one global model over the series in `data` (unique_id, ds,
    y), which run to `end`."""
    import lightgbm as lgb
    from scipy.stats import norm

    panel = _panel(data, end, cfg)
    rows = _training_rows(panel)
    model = lgb.LGBMRegressor(
        objective="l1",
        n_estimators=TREES,
        learning_rate=LEARNING_RATE,
        num_leaves=31,
        min_child_samples=max(20, rows.y.size // 200),
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=SEED,
        deterministic=True,
        force_row_wise=True,
        num_threads=_threads(cfg.n_jobs),
        verbose=-1,
    )
    categorical = [rows.x.shape[1] - 2, rows.x.shape[1] - 1]  # the series, its level
    model.fit(rows.x, rows.y / rows.level, categorical_feature=categorical)
    predicted = np.asarray(model.predict(rows.x), dtype=float) * rows.level
    fitted = _fitted(panel, rows, predicted)
    z = panel.z.copy()
    for t in range(panel.n_hist, z.shape[1]):
        step = np.asarray(model.predict(_features(panel, z, t)), dtype=float) * _level(
            z, t, panel.level_periods
        )
        # Below a thousandth of the series' mean is a zero: boosting only approaches a
        # zero it saw, and a near-zero fed back as a lag lands on the non-zero side of
        # the trees' zero splits (a lane idle on Mondays got a quarter of a day's volume
        # on the second Monday ahead).
        z[:, t] = np.where(step < ZERO, 0.0, step)
    point = z[:, panel.n_hist :] * panel.scale[:, None]
    n = len(panel.ids)
    counts = np.maximum(np.bincount(rows.series, minlength=n), 1)
    # Widths in proportion to the level (module docstring): the relative in-sample error
    # per series, times the forecast of each step.
    level = np.maximum(predicted, FLOOR)
    rel = np.bincount(rows.series, ((rows.y - predicted) / level) ** 2, n) / counts
    sigma_t = np.sqrt(rel)[:, None] * np.maximum(z[:, panel.n_hist :], FLOOR) * panel.scale[:, None]
    out: dict[str, object] = {
        "unique_id": np.repeat(panel.ids, cfg.horizon),
        "ds": np.tile(panel.dates[panel.n_hist :].to_numpy(), len(panel.ids)),
        "base": point.ravel(),
    }
    for p in cfg.levels:
        half = (norm.ppf(0.5 + p / 200) * sigma_t).ravel()
        out[f"base-lo-{p}"] = point.ravel() - half
        out[f"base-hi-{p}"] = point.ravel() + half
    forecasts = pl.DataFrame(out).with_columns(pl.col("ds").cast(data.schema["ds"]))
    return forecasts, fitted


def _threads(n_jobs: int) -> int:
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


def _panel(data: pl.DataFrame, end: dt.date, cfg: ForecastConfig) -> _Panel:
    """The scaled series x periods matrix, closed days filled from a week earlier."""
    freq = config_freq(cfg)
    first = data.get_column("ds").cast(pl.Date).min()
    hist = pl.select(period_range(first, end, freq).explode()).to_series()  # type: ignore[arg-type]
    dates = pl.concat([hist, future_dates(end, cfg.horizon, freq)]).cast(pl.Date)
    ids = data.get_column("unique_id").unique().sort().to_list()
    frame = data.with_columns(pl.col("ds").cast(pl.Date))
    col = frame.join(
        pl.DataFrame({"ds": dates}).with_row_index("_t"), on="ds", how="inner"
    ).with_columns(pl.col("unique_id").cast(pl.Enum(ids)).to_physical().alias("_s"))
    z = np.full((len(ids), dates.len()), np.nan)
    z[col["_s"].to_numpy(), col["_t"].to_numpy()] = col["y"].to_numpy()
    n_hist = hist.len()
    z[:, n_hist:] = np.nan
    mean = np.nanmean(np.where(np.isnan(z[:, :n_hist]), np.nan, np.abs(z[:, :n_hist])), axis=1)
    scale = np.where(np.isfinite(mean) & (mean > 0), mean, 1.0)
    # Rounded so that the same history in other units is the same input bit for bit: a
    # last-bit difference moves a split and the trees with it (as in models.fit_chunk).
    z = np.round(z / scale[:, None], SCALED_DECIMALS)
    if freq == "day" and season(cfg) == 7:
        _fill_closed_days(z, n_hist)
    # A series id is "<level>:<key>" ("lane:FC01/DS07", "origin:FC01"), or "total".
    level_col = pl.Series(ids).str.split(":").list.first()
    names = level_col.unique().sort().to_list()
    level_codes = level_col.cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64)
    calendar = _calendar(dates, n_hist, cfg, freq)
    return _Panel(ids, level_codes, scale, z, dates, n_hist, calendar, cfg.gbm_level_days)


def _fill_closed_days(z: npt.NDArray[np.float64], n_hist: int) -> None:
    """Days where every started series is zero take the values of a week earlier."""
    hist = z[:, :n_hist]
    started = ~np.isnan(hist)
    closed = (started.any(axis=0)) & (np.nansum(np.abs(hist), axis=0) == 0)
    for t in np.flatnonzero(closed):
        if t >= 7:
            z[:, t] = np.where(started[:, t], z[:, t - 7], z[:, t])


def _calendar(
    dates: pl.Series, n_hist: int, cfg: ForecastConfig, freq: Freq
) -> npt.NDArray[np.float64]:
    """Per period: the weekday (daily series); day of year and month (daily) or month
    (weekly, monthly) when the history holds a year and the horizon; the 0/1 event columns."""
    cols = [dates.dt.weekday()] if freq == "day" else []
    if n_hist >= SEASON_OF_YEAR[freq] + cfg.horizon:
        # The season of the year only once the history has seen every day of year the
        # horizon holds: on less, the horizon's days of year fall in the last leaf of a
        # split that memorised the history's own weeks (pizza, 358 days, lost 2% with it).
        cols += [dates.dt.ordinal_day()] if freq == "day" else []
        cols.append(dates.dt.month())
    if not cols:
        cols.append(pl.Series([0.0] * dates.len()))
    cal = np.column_stack([c.cast(pl.Float64).to_numpy() for c in cols])
    if cfg.events:
        events = event_features(dates, cfg.events, freq).drop("ds")
        cal = np.column_stack([cal, events.to_numpy()])
    return cal


def _features(panel: _Panel, z: npt.NDArray[np.float64], t: int) -> npt.NDArray[np.float64]:
    """Every series' features for period t, from the values before t."""
    n = z.shape[0]
    lags = [z[:, t - k] if t - k >= 0 else np.full(n, np.nan) for k in LAGS]
    means = []
    for back, window in MEANS:
        lo, hi = t - back - window + 1, t - back + 1
        if lo < 0:
            means.append(np.full(n, np.nan))
        else:
            block = z[:, lo:hi]
            if np.isnan(block).any():
                # A series younger than the window: the mean of the days it has (NaN,
                # silently, when it has none).
                seen = (~np.isnan(block)).sum(axis=1)
                total = np.nansum(block, axis=1)
                means.append(np.where(seen > 0, total / np.maximum(seen, 1), np.nan))
            else:
                means.append(block.mean(axis=1))
    calendar = np.broadcast_to(panel.calendar[t], (n, panel.calendar.shape[1]))
    series = np.arange(n, dtype=float)
    if panel.level_periods:
        level = _level(z, t, panel.level_periods)
        lags = [v / level for v in lags]
        means = [v / level for v in means]
    return np.column_stack([*lags, *means, calendar, series, panel.levels.astype(float)])


def _level(z: npt.NDArray[np.float64], t: int, periods: int) -> npt.NDArray[np.float64]:
    """Each series' mean over the `periods` before t (floored; 1 before it has any, and
    for every series when `periods` is 0)."""
    if not periods:
        return np.ones(z.shape[0])
    block = z[:, max(t - periods, 0) : t]
    seen = (~np.isnan(block)).sum(axis=1)
    mean = np.nansum(block, axis=1) / np.maximum(seen, 1)
    return np.where(seen > 0, np.maximum(mean, LEVEL_FLOOR), 1.0)


class _Rows(NamedTuple):
    """The training rows: features, targets, the local level the model's target is relative
    to, and each row's series and period."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    level: npt.NDArray[np.float64]
    series: npt.NDArray[np.int64]
    period: npt.NDArray[np.int64]


def _training_rows(panel: _Panel) -> _Rows:
    """Features and targets of every observed period after a series' first."""
    xs, ys, ls, ss, ts = [], [], [], [], []
    for t in range(1, panel.n_hist):
        y = panel.z[:, t]
        keep = np.flatnonzero(~np.isnan(y) & ~np.isnan(panel.z[:, t - 1]))
        if keep.size:
            xs.append(_features(panel, panel.z, t)[keep])
            ys.append(y[keep])
            ls.append(_level(panel.z, t, panel.level_periods)[keep])
            ss.append(keep)
            ts.append(np.full(keep.size, t))
    return _Rows(
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(ls),
        np.concatenate(ss),
        np.concatenate(ts),
    )


def _fitted(panel: _Panel, rows: _Rows, predicted: npt.NDArray[np.float64]) -> pl.DataFrame:
    """unique_id, ds, y, base: in-sample one-step predictions in the series' units (closed
    days as fitted, from a week earlier)."""
    scale = panel.scale[rows.series]
    return pl.DataFrame(
        {
            "unique_id": np.asarray(panel.ids)[rows.series],
            "ds": panel.dates.to_numpy()[rows.period],
            "y": rows.y * scale,
            "base": predicted * scale,
        }
    ).sort("unique_id", "ds")
