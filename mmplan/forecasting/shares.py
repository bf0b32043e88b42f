"""Lanes shared out of their parent's forecast (`lanes = 'share'`, and `'auto'` where it wins).

Each lane takes its share of its parent's reconciled forecast, with the interval of that
share widened by the lane's own noise around it. The share follows the lane's own
day-of-week profile: a route that does not run on Saturdays gets no Saturday volume, even
though its origin ships every day. The profile is shrunk towards the lane's flat share by
how much of it the window can tell from noise (empirical Bayes), so a low-volume lane whose
weekday shares are mostly sampling noise keeps its flat share.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting.frequency import (
    config_freq,
    future_dates,
    period_range,
    periods_between,
    season,
    shift,
)
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.reconcile import Bands
from mmplan.forecasting.rules import is_closed
from mmplan.forecasting.series import first_date, last_date
from mmplan.tables import LANE_KEYS

__all__ = ["WEEK", "LaneShares", "SharedLanes", "lane_shares", "share_lanes"]

WEEK = 7  # a share's profile has one value per weekday (daily histories with a weekly season)


@dataclass(frozen=True)
class LaneShares:
    """Per lane, in S's column order: what `lane_shares` measured."""

    parent: npt.NDArray[np.int64]  # the row of the lane's parent in the full hierarchy
    share: npt.NDArray[np.float64]  # lanes x 7: the lane's share of its parent per weekday
    noise: npt.NDArray[np.float64]  # variance of the lane around its share (0 when closed)
    closed: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SharedLanes:
    """The lanes' shares of their parents: point forecasts and half-widths (lanes x
    horizon, S's column order) and model labels."""

    bottom: npt.NDArray[np.float64]
    half_lo: dict[int, npt.NDArray[np.float64]]
    half_hi: dict[int, npt.NDArray[np.float64]]
    labels: pl.DataFrame  # unique_id, model ("Share" or "Zero/closed")


def _window_grid(
    rows: pl.DataFrame, per_lane: pl.DataFrame, first: dt.date, end: dt.date, cfg: ForecastConfig
) -> pl.DataFrame:
    """The window's days, zero-filled, for each lane that existed in it, with its parent's
    volume that day and the weekday (0 = Monday)."""
    grid = (
        per_lane.filter(pl.col("start").is_not_null())
        .select(
            "_col",
            "_parent",
            *LANE_KEYS,
            period_range(
                pl.max_horizontal("start", pl.lit(first)), pl.lit(end), config_freq(cfg)
            ).alias("date"),
        )
        .explode("date")
        .join(rows.filter(pl.col("date") >= first), on=[*LANE_KEYS, "date"], how="left")
        .with_columns(pl.col("volume").fill_null(0.0), _dow=pl.col("date").dt.weekday() - 1)
    )
    parent_daily = grid.group_by("_parent", "date").agg(pl.col("volume").sum().alias("parent"))
    return grid.join(parent_daily, on=["_parent", "date"])


def _profiles(grid: pl.DataFrame, flat: pl.DataFrame, weekly: bool) -> pl.DataFrame:
    """_col, _dow, share: each lane's share of its parent per weekday, shrunk to its flat
    share by the weight tau^2 / (tau^2 + sigma^2), where sigma^2 is the sampling variance
    of a weekday's share (its day-to-day variance over the days seen) and tau^2 the spread
    of the weekday shares beyond it. Shares sum to 1 over a parent's lanes each weekday."""
    days = pl.DataFrame({"_dow": list(range(WEEK))}, schema={"_dow": pl.Int8})
    cells = flat.select("_col", "_parent", "flat").join(days, how="cross")
    if not weekly:
        return cells.select("_col", "_dow", share=pl.col("flat"))
    daily_share = pl.when(pl.col("parent") > 0).then(pl.col("volume") / pl.col("parent"))
    by_day = (
        grid.with_columns(pl.col("_dow").cast(pl.Int8), _s=daily_share)
        .group_by("_col", "_dow")
        .agg(
            (pl.col("volume").sum() / pl.col("parent").sum()).alias("raw"),
            (pl.col("_s").var() / pl.col("_s").count()).alias("sampling"),
        )
    )
    cells = cells.join(by_day, on=["_col", "_dow"], how="left").with_columns(
        pl.col("raw").fill_nan(None).fill_null(pl.col("flat")), pl.col("sampling").fill_nan(None)
    )
    noise = pl.col("sampling").mean().over("_col").fill_null(0.0)
    tau2 = (pl.col("raw").var().over("_col").fill_null(0.0) - noise).clip(0.0)
    weight = pl.when(tau2 > 0).then(tau2 / (tau2 + noise)).otherwise(0.0)
    shrunk = weight * pl.col("raw") + (1 - weight) * pl.col("flat")
    total = shrunk.sum().over("_parent", "_dow")
    return cells.select(
        "_col", "_dow", share=pl.when(total > 0).then(shrunk / total).otherwise(pl.col("flat"))
    )


def _weekly(cfg: ForecastConfig) -> bool:
    """Whether shares have a weekday profile: daily histories with a weekly season."""
    return config_freq(cfg) == "day" and season(cfg) == WEEK


def lane_shares(
    history: pl.DataFrame, hier: Hierarchy, upper: Hierarchy, cfg: ForecastConfig
) -> LaneShares:
    """Per lane, in S's column order: parent row, share of the parent per weekday, noise
    variance, closed.

    A lane's flat share is its mean daily volume over the last `share_days` days (over the
    days it existed, so a lane opened last week is not diluted), over the sum of those means
    for its parent's lanes; its weekday shares are those of its volume on each weekday,
    shrunk towards the flat share (`_profiles`). With a season other than a week (or a
    weekly or monthly history), the share is flat. Closed lanes (no volume in
    `closed_after_days`) get no share. A parent with no volume in the window falls back to
    the lanes' means over the fit window (all the
    history unless `fit_days` is set). The noise variance is the mean square of volume -
    share x parent volume over the window: what the lane does that its parent's forecast
    cannot tell.
    """
    rows = history.select(*LANE_KEYS, "date", pl.col("volume").cast(pl.Float64))
    end = last_date(history)
    fit_first = first_date(history)
    if cfg.fit_days is not None:
        fit_first = max(fit_first, shift(end, -(cfg.fit_days - 1), config_freq(cfg)))
    parent_of_lane = hier.S[upper.bottom_rows].T.tocsr().indices
    lanes = hier.lanes.select(LANE_KEYS).with_columns(
        _col=pl.int_range(hier.lanes.height, dtype=pl.Int64), _parent=pl.Series(parent_of_lane)
    )
    first = shift(end, -(cfg.share_days - 1), config_freq(cfg))
    recent = pl.col("date") >= first
    per_lane = (
        rows.lazy()
        .group_by(LANE_KEYS)
        .agg(
            # A lane exists from its first row in the whole history, clipped to the fit
            # window: a missing day is a zero, not "not yet open".
            pl.max_horizontal(pl.col("date").min(), pl.lit(fit_first)).alias("start"),
            pl.col("volume").filter(pl.col("date") >= fit_first).sum().alias("volume_all"),
            pl.col("volume").filter(recent).sum().alias("volume_recent"),
            pl.col("date").filter(pl.col("volume") > 0).max().alias("last_volume"),
        )
        .collect(engine="streaming")
    )

    def days(since: pl.Expr) -> pl.Expr:
        return periods_between(since, pl.lit(end), config_freq(cfg)) + 1

    per_lane = (
        lanes.join(per_lane, on=LANE_KEYS, how="left")
        .with_columns(
            closed=is_closed(end, cfg).fill_null(True),
            rate=pl.col("volume_recent") / days(pl.max_horizontal("start", pl.lit(first))),
            rate_all=pl.col("volume_all") / days(pl.col("start")),
        )
        .with_columns(
            pl.when(pl.col("closed")).then(0.0).otherwise(pl.col(c)).fill_null(0.0).alias(c)
            for c in ("rate", "rate_all")
        )
        .with_columns(
            flat=pl.when(pl.col("rate").sum().over("_parent") > 0)
            .then(pl.col("rate") / pl.col("rate").sum().over("_parent"))
            .when(pl.col("rate_all").sum().over("_parent") > 0)
            .then(pl.col("rate_all") / pl.col("rate_all").sum().over("_parent"))
            .otherwise(0.0)
        )
    )
    grid = _window_grid(rows, per_lane, first, end, cfg)
    # Closed lanes and parents without volume in the window keep their flat share.
    profiled = per_lane.filter(~pl.col("closed") & (pl.col("rate").sum().over("_parent") > 0))
    profile = _profiles(grid.join(profiled.select("_col"), on="_col"), profiled, _weekly(cfg))
    share = (
        per_lane.select("_col", "flat")
        .join(pl.DataFrame({"_dow": list(range(WEEK))}, schema={"_dow": pl.Int8}), how="cross")
        .join(profile, on=["_col", "_dow"], how="left")
        .select("_col", "_dow", pl.col("share").fill_null(pl.col("flat")))
        .sort("_col", "_dow")
    )
    share_matrix = share.get_column("share").to_numpy().reshape(hier.lanes.height, WEEK)
    noise = (
        grid.with_columns(pl.col("_dow").cast(pl.Int8))
        .join(share, on=["_col", "_dow"])
        .group_by("_col")
        .agg(((pl.col("volume") - pl.col("share") * pl.col("parent")) ** 2).mean().alias("noise"))
    )
    per_lane = per_lane.join(noise, on="_col", how="left").sort("_col")
    closed_lanes = per_lane.get_column("closed").to_numpy()
    return LaneShares(
        parent=upper.bottom_rows[parent_of_lane],
        share=np.where(closed_lanes[:, None], 0.0, share_matrix),
        noise=np.where(closed_lanes, 0.0, per_lane.get_column("noise").fill_null(0.0).to_numpy()),
        closed=closed_lanes,
    )


def share_lanes(
    history: pl.DataFrame,
    hier: Hierarchy,
    upper: Hierarchy,
    cfg: ForecastConfig,
    bands: Bands,
) -> SharedLanes:
    """Each lane's share of its parent's reconciled forecast in `bands` (rows of
    hier.series), and the half-widths of that share."""
    from scipy.stats import norm

    shares = lane_shares(history, hier, upper, cfg)
    parent = shares.parent
    end = last_date(history)
    weekdays = [d.weekday() for d in future_dates(end, cfg.horizon, config_freq(cfg)).to_list()]
    share = shares.share[:, weekdays]  # lanes x horizon
    bottom = bands.mean[parent] * share
    # The lane's error is its share of the parent's error plus its own noise around
    # that share, taken as independent: half-width = sqrt((share x parent's)^2 + z^2 var).
    half_lo, half_hi = {}, {}
    for p in cfg.levels:
        z2 = norm.ppf(0.5 + p / 200) ** 2 * shares.noise[:, None]
        half_lo[p] = np.sqrt((share * bands.half_lo[p][parent]) ** 2 + z2)
        half_hi[p] = np.sqrt((share * bands.half_hi[p][parent]) ** 2 + z2)
    labels = pl.DataFrame(
        {
            "unique_id": hier.series.get_column("unique_id").gather(hier.bottom_rows),
            "model": np.where(shares.closed, "Zero/closed", "Share"),
        }
    )
    return SharedLanes(bottom, half_lo, half_hi, labels)
