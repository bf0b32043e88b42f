"""Drift: the tracking signal of each series, over one forecast and across monitoring runs.

The tracking signal of a series is its cumulative error over its mean absolute error,

    TS = sum (forecast - actual) / (sum |forecast - actual| / n) = n x sum e / sum |e|,

over its n scored points. It is bounded by n in absolute value (|sum e| <= sum |e|), is
negative when the forecast runs under the actuals (volume grew) and positive when over,
and is unchanged when every volume is scaled by the same factor. A forecast without bias
keeps it near zero; a sustained shift drives it towards +-n. The classic bound is 4: a
series beyond it has been wrong in one direction for most of its days.

Across runs (`mmplan monitor --append STORE`), the sums of every earlier run in the store
are added to this run's before the ratio is taken, so a lane that is 10% under every day of
every forecast drifts out of bounds even when each single forecast's days are too few to say.
A run already in the store (same forecast file) is replaced by this one, never counted twice.
"""

from __future__ import annotations

import polars as pl

from mmplan.evaluate.metrics import ratio

__all__ = ["SERIES_SUMS", "tracking_signal", "across_runs", "largest_drift"]

# What a run keeps per series for the tracking signal across runs.
SERIES_SUMS = ("points", "sum_error", "sum_abs_error")


def tracking_signal(
    points: str = "points", sum_error: str = "sum_error", sum_abs_error: str = "sum_abs_error"
) -> pl.Expr:
    """n x sum error / sum |error| of the named columns: 0 for a perfect series."""
    return ratio(pl.col(points).cast(pl.Float64) * pl.col(sum_error), pl.col(sum_abs_error))


def across_runs(series: pl.DataFrame, earlier: pl.DataFrame | None) -> pl.DataFrame:
    """Per series (level, unique_id): this run's sums plus the earlier runs' (which must not
    hold this run), as runs, points_all, sum_error_all, sum_abs_error_all and
    tracking_signal_all. `series` and `earlier` have level, unique_id and SERIES_SUMS."""
    keys = ["level", "unique_id"]
    now = series.select(*keys, *SERIES_SUMS).with_columns(pl.lit(1, pl.Int64).alias("runs"))
    frames = [now]
    if earlier is not None and earlier.height:
        frames.append(
            earlier.select(
                *keys,
                pl.col("points").cast(now.schema["points"]),
                pl.col("sum_error").cast(pl.Float64),
                pl.col("sum_abs_error").cast(pl.Float64),
                pl.lit(1, pl.Int64).alias("runs"),
            )
        )
    total = (
        pl.concat(frames)
        .group_by(keys)
        .agg(pl.col("runs").sum(), *[pl.col(c).sum().alias(f"{c}_all") for c in SERIES_SUMS])
    )
    # Only the series this run scores: a lane gone from the forecast drifts no more.
    return (
        series.select(keys)
        .join(total, on=keys, how="left")
        .with_columns(
            tracking_signal("points_all", "sum_error_all", "sum_abs_error_all").alias(
                "tracking_signal_all"
            )
        )
    )


def largest_drift(scores: pl.DataFrame) -> dict[str, tuple[float | None, str]]:
    """Per level: the largest |tracking signal| of its series and which series it is."""
    out: dict[str, tuple[float | None, str]] = {}
    series = scores.filter(pl.col("scope") == "series").with_columns(
        pl.col("tracking_signal_all").abs().alias("_ts")
    )
    for level in series["level"].unique().sort():
        rows = series.filter(pl.col("level") == level).sort(
            "_ts", "unique_id", descending=[True, False], nulls_last=False
        )
        nulls = rows.filter(pl.col("_ts").is_null())
        row = (nulls if nulls.height else rows).row(0, named=True)
        flagged = int(rows["drift"].sum())
        out[level] = (row["_ts"], f"{row['unique_id']}; {flagged} series flagged")
    return out
