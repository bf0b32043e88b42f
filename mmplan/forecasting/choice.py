"""Validation inside the training window: share or own model per lane, and interval factors.

With `validation_windows` = K > 0, the forecast is run again at K cutoffs inside the
history (the last `horizon` days before its end, the `horizon` days before those, ...),
each fed only the rows up to its cutoff, and held against the days that followed:

- **The lane rule** (`lanes = "auto"`): each lane takes its share of its parent's forecast
  or its own model's reconciled forecast, whichever had the lower absolute error summed over
  the K windows. A lane too young to be in any window takes its share. Real lanes differ:
  a lane that follows its origin is best as a share (its own series is mostly noise), a lane
  with its own trend or season is best on its own.
- **Interval factors**: per level and interval, the split-conformal factor by which the
  windows' half-widths would have had to grow (or shrink) to cover p% of their days
  (mmplan.forecasting.calibration.conformal_factor), measured on the lanes as chosen, and
  widened on the side the windows' errors lean to (calibration.side_factors). The
  models' own intervals come from one-step in-sample residuals, which understate what 28
  days ahead does, above all at the aggregates; these factors are what makes a plain
  forecast's intervals cover.

Each window costs one more fit of the same models, so the default K = 2 triples the
fitting time (README "Prediction intervals": a third window brings the sample's 95%
aggregates 1-2 points nearer nominal for a third more time; the real sets do not need it).
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
from mmplan.forecasting.calibration import side_factors
from mmplan.forecasting.frequency import config_freq, future_dates, n_periods, season, shift
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.reconcile import Bands
from mmplan.forecasting.series import first_date, last_date
from mmplan.forecasting.shares import SharedLanes
from mmplan.tables import LANE_KEYS

__all__ = ["Parts", "LaneForecast", "Validation", "compose", "validate"]


@dataclass(frozen=True)
class Parts:
    """One forecast's pieces before the lanes are chosen: the hierarchy, the models' plan,
    the reconciled bands (lanes from their own models when they were fitted) and the lanes'
    shares of their parents (None with `lanes = "model"`)."""

    hier: Hierarchy
    plan: pl.DataFrame
    bands: Bands
    shared: SharedLanes | None
    end: dt.date


@dataclass(frozen=True)
class LaneForecast:
    """The lanes as chosen (lanes x horizon, S's column order) and their model labels
    where they are shared (None when no lane is)."""

    bottom: npt.NDArray[np.float64]
    half_lo: dict[int, npt.NDArray[np.float64]]
    half_hi: dict[int, npt.NDArray[np.float64]]
    labels: pl.DataFrame | None


@dataclass(frozen=True)
class Validation:
    """What the windows inside the history measured."""

    use_share: npt.NDArray[np.bool_]  # per lane of the final hierarchy: take the share
    factors: pl.DataFrame  # level, rule ("all"), interval, factor, lower, upper, points
    cutoffs: list[dt.date]
    lane_error: float  # absolute error summed over the windows' lanes, as chosen


def compose(parts: Parts, use_share: npt.NDArray[np.bool_]) -> LaneForecast:
    """Each lane's share where `use_share`, else its own reconciled forecast."""
    hier, bands, shared = parts.hier, parts.bands, parts.shared
    rows = hier.bottom_rows
    if shared is None:
        return LaneForecast(
            bands.mean[rows],
            {p: h[rows] for p, h in bands.half_lo.items()},
            {p: h[rows] for p, h in bands.half_hi.items()},
            None,
        )
    pick = use_share[:, None]
    labels = shared.labels.filter(pl.Series(use_share))
    return LaneForecast(
        np.where(pick, shared.bottom, bands.mean[rows]),
        {p: np.where(pick, h, bands.half_lo[p][rows]) for p, h in shared.half_lo.items()},
        {p: np.where(pick, h, bands.half_hi[p][rows]) for p, h in shared.half_hi.items()},
        labels,
    )


def _window_cutoffs(history: pl.DataFrame, cfg: ForecastConfig) -> list[dt.date]:
    """The windows' cutoffs, latest first, each leaving two seasons to train on."""
    start, end, freq = first_date(history), last_date(history), config_freq(cfg)
    cuts = [shift(end, -cfg.horizon * (k + 1), freq) for k in range(cfg.validation_windows)]
    return [c for c in cuts if n_periods(start, c, freq) + 1 >= 2 * season(cfg)]


def _lane_actuals(
    history: pl.DataFrame, hier: Hierarchy, cutoff: dt.date, cfg: ForecastConfig
) -> npt.NDArray[np.float64]:
    """Lanes x horizon: each lane's volume in the periods after `cutoff` (missing: zero)."""
    horizon = cfg.horizon
    dates = future_dates(cutoff, horizon, config_freq(cfg))
    days = pl.DataFrame({"date": dates}).with_row_index("_step")
    lanes = hier.lanes.select(LANE_KEYS).with_row_index("_col")
    rows = (
        history.select(*LANE_KEYS, "date", pl.col("volume").cast(pl.Float64))
        .join(days, on="date")
        .join(lanes, on=LANE_KEYS)
    )
    out = np.zeros((hier.lanes.height, horizon))
    np.add.at(out, (rows["_col"].to_numpy(), rows["_step"].to_numpy()), rows["volume"].to_numpy())
    return out


def _lane_index(inner: Hierarchy, outer: Hierarchy) -> npt.NDArray[np.int64]:
    """For each lane of `inner`, its column in `outer` (every inner lane is in outer)."""
    at = outer.lanes.select(LANE_KEYS).with_row_index("_outer")
    joined = inner.lanes.select(LANE_KEYS).join(at, on=LANE_KEYS, how="left", maintain_order="left")
    return joined["_outer"].to_numpy().astype(np.int64)


@dataclass(frozen=True)
class _Window:
    parts: Parts
    actual: npt.NDArray[np.float64]  # lanes of parts.hier x horizon
    lanes: npt.NDArray[np.int64]  # their columns in the final hierarchy


def validate(
    history: pl.DataFrame,
    hier: Hierarchy,
    cfg: ForecastConfig,
    run: Callable[[pl.DataFrame], Parts],
) -> Validation | None:
    """The lane rule and interval factors from `cfg.validation_windows` windows (module
    docstring); `run(train)` forecasts a training window as the final forecast will. None
    when the history is too short for any window."""
    windows = []
    # A window's training rows are a copy: of the columns the forecast reads only, and one
    # window at a time (at 100k lanes a full copy of the history is gigabytes).
    used = [*LANE_KEYS, *(c for _, cols in hier.levels for c in cols), "date", "volume"]
    slim = history.select(list(dict.fromkeys(used)))
    for cutoff in _window_cutoffs(history, cfg):
        train = slim.filter(pl.col("date") <= cutoff)
        if train.is_empty() or train.get_column("volume").sum() == 0:
            continue
        try:
            parts = run(train)
        except DataError:
            # A window the pipeline cannot forecast (e.g. a lane too young for MinTrace's
            # covariance there) is left out: the final forecast is checked on its own.
            continue
        finally:
            del train  # before the next window's copy is made, not after
        actual = _lane_actuals(history, parts.hier, cutoff, cfg)
        windows.append(_Window(parts, actual, _lane_index(parts.hier, hier)))
    if not windows:
        return None
    n_lanes = hier.lanes.height
    err_model, err_share = np.zeros(n_lanes), np.zeros(n_lanes)
    seen = np.zeros(n_lanes, dtype=bool)
    for w in windows:
        seen[w.lanes] = True
        model = np.maximum(w.parts.bands.mean[w.parts.hier.bottom_rows], 0.0)
        np.add.at(err_model, w.lanes, np.abs(w.actual - model).sum(axis=1))
        if w.parts.shared is not None:
            share = np.maximum(w.parts.shared.bottom, 0.0)
            np.add.at(err_share, w.lanes, np.abs(w.actual - share).sum(axis=1))
    has_share = windows[0].parts.shared is not None
    use_share = (err_share < err_model) | ~seen if has_share else np.zeros(n_lanes, dtype=bool)
    factors = _factors(windows, use_share, cfg.levels)
    error = float(np.where(use_share, err_share, err_model)[seen].sum())
    return Validation(use_share, factors, [w.parts.end for w in windows], error)


def _factors(
    windows: list[_Window], use_share: npt.NDArray[np.bool_], levels: list[int]
) -> pl.DataFrame:
    """level, rule, interval, factor, lower, upper, points: the conformal factor of every
    level's half-widths over the windows (symmetric, and per side as side_factors says),
    the lanes taken as `use_share` says."""
    ratios: dict[tuple[str, int], list[npt.NDArray[np.float64]]] = {}
    for w in windows:
        hier = w.parts.hier
        lanes = compose(w.parts, use_share[w.lanes])
        point = np.asarray(hier.S @ np.maximum(lanes.bottom, 0.0))
        actual = np.asarray(hier.S @ w.actual)
        names = hier.series.get_column("level").to_numpy()
        for p in levels:
            lo, hi = w.parts.bands.half_lo[p].copy(), w.parts.bands.half_hi[p].copy()
            lo[hier.bottom_rows], hi[hier.bottom_rows] = lanes.half_lo[p], lanes.half_hi[p]
            above = actual >= point
            half = np.where(above, hi, lo)
            usable = (half > 0) & (half > 1e-9 * np.abs(point))  # unit-free
            r = (actual - point) / np.where(usable, half, 1.0)  # signed: the side matters
            for name in dict.fromkeys(names):
                at = (names == name)[:, None] & usable
                ratios.setdefault((name, p), []).append(r[at])
    rows = []
    for (name, p), parts in ratios.items():
        r = np.concatenate(parts)
        sides = side_factors(r, p)
        rows.append(
            {
                "level": name,
                "rule": "all",
                "interval": p,
                "factor": sides.symmetric,
                "lower": sides.lower,
                "upper": sides.upper,
                "points": int(r.size),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "level": pl.String,
            "rule": pl.String,
            "interval": pl.Int64,
            "factor": pl.Float64,
            "lower": pl.Float64,
            "upper": pl.Float64,
            "points": pl.Int64,
        },
    )
