"""Lanes shared out of their parent's forecast (`[forecast].lanes = 'share'`).

Only the levels above the lanes are fitted and reconciled; each lane then takes its share
of its parent's reconciled forecast, with the interval of that share widened by the
lane's own noise around it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.reconcile import Bands
from mmplan.forecasting.rules import is_closed
from mmplan.forecasting.series import first_date, last_date
from mmplan.tables import LANE_KEYS

__all__ = ["LaneShares", "SharedLanes", "lane_shares", "share_lanes"]


@dataclass(frozen=True)
class LaneShares:
    """Per lane, in S's column order: what `lane_shares` measured."""

    parent: npt.NDArray[np.int64]  # the row of the lane's parent in the full hierarchy
    share: npt.NDArray[np.float64]  # the lane's share of its parent
    noise: npt.NDArray[np.float64]  # variance of the lane around its share (0 when closed)
    closed: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SharedLanes:
    """The lanes' point forecasts (lanes x horizon, S's column order) and model labels."""

    bottom: npt.NDArray[np.float64]
    labels: pl.DataFrame  # unique_id, model ("Share" or "Zero/closed")


def lane_shares(
    history: pl.DataFrame, hier: Hierarchy, upper: Hierarchy, cfg: ForecastConfig
) -> LaneShares:
    """Per lane, in S's column order: parent row, share of the parent, noise variance, closed.

    A lane's share is its mean daily volume over the last `share_days` days (over the days
    it existed, so a lane opened last week is not diluted), over the sum of those means for
    its parent's lanes. Closed lanes (no volume in `closed_after_days`) get no share. A parent
    with no volume in the window falls back to the lanes' means over the fit window (all the
    history unless `fit_days` is set). The noise variance is
    the mean square of volume - share x parent volume over the window: what the lane does
    that its parent's forecast cannot tell.
    """
    rows = history.select(*LANE_KEYS, "date", pl.col("volume").cast(pl.Float64))
    end = last_date(history)
    fit_first = first_date(history)
    if cfg.fit_days is not None:
        fit_first = max(fit_first, end - dt.timedelta(days=cfg.fit_days - 1))
    parent_of_lane = hier.S[upper.bottom_rows].T.tocsr().indices
    lanes = hier.lanes.select(LANE_KEYS).with_columns(
        _col=pl.int_range(hier.lanes.height, dtype=pl.Int64), _parent=pl.Series(parent_of_lane)
    )
    first = end - dt.timedelta(days=cfg.share_days - 1)
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
        return (pl.lit(end) - since).dt.total_days() + 1

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
            share=pl.when(pl.col("rate").sum().over("_parent") > 0)
            .then(pl.col("rate") / pl.col("rate").sum().over("_parent"))
            .when(pl.col("rate_all").sum().over("_parent") > 0)
            .then(pl.col("rate_all") / pl.col("rate_all").sum().over("_parent"))
            .otherwise(0.0)
        )
    )
    # The window's days, zero-filled, for each lane that existed in it.
    grid = (
        per_lane.filter(pl.col("start").is_not_null())
        .select(
            "_col",
            "_parent",
            *LANE_KEYS,
            pl.date_ranges(pl.max_horizontal("start", pl.lit(first)), pl.lit(end)).alias("date"),
        )
        .explode("date")
        .join(rows.filter(recent), on=[*LANE_KEYS, "date"], how="left")
        .with_columns(pl.col("volume").fill_null(0.0))
    )
    parent_daily = grid.group_by("_parent", "date").agg(pl.col("volume").sum().alias("parent"))
    noise = (
        grid.join(parent_daily, on=["_parent", "date"])
        .join(per_lane.select("_col", "share"), on="_col")
        .group_by("_col")
        .agg(((pl.col("volume") - pl.col("share") * pl.col("parent")) ** 2).mean().alias("noise"))
    )
    per_lane = per_lane.join(noise, on="_col", how="left").sort("_col")
    closed_lanes = per_lane.get_column("closed").to_numpy()
    return LaneShares(
        parent=upper.bottom_rows[parent_of_lane],
        share=per_lane.get_column("share").to_numpy(),
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
    """Each lane's share of its parent's reconciled forecast; sets the lanes' half-widths.

    `bands` holds the reconciled parents (rows of hier.series); the lanes' rows of its
    half-widths are written in place.
    """
    from scipy.stats import norm

    shares = lane_shares(history, hier, upper, cfg)
    parent, share = shares.parent, shares.share
    bottom = bands.mean[parent] * share[:, None]
    # The lane's error is its share of the parent's error plus its own noise around
    # that share, taken as independent: half-width = sqrt((share x parent's)^2 + z^2 var).
    for p in cfg.levels:
        z2 = norm.ppf(0.5 + p / 200) ** 2 * shares.noise[:, None]
        for half in (bands.half_lo[p], bands.half_hi[p]):
            half[hier.bottom_rows] = np.sqrt((share[:, None] * half[parent]) ** 2 + z2)
    labels = pl.DataFrame(
        {
            "unique_id": hier.series.get_column("unique_id").gather(hier.bottom_rows),
            "model": np.where(shares.closed, "Zero/closed", "Share"),
        }
    )
    return SharedLanes(bottom, labels)
