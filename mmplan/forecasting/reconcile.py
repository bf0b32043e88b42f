"""Reconciliation of the base forecasts, so that every level adds up to its lanes.

BottomUp and MinTrace go through `mmplan.forecasting.mint` (sparse S, no n x n matrix,
scales to 100k lanes); TopDown and MiddleOut through hierarchicalforecast. Both return
the same long table (unique_id, ds, mean, lo_<p>, hi_<p>) over the open series, which
`Bands.fill` turns into the (series x horizon) means and half-widths the pipeline uses.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.errors import ConfigError
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.mint import METHODS, Floats
from mmplan.forecasting.mint import reconcile as reconcile_arrays

__all__ = [
    "NO_RECONCILED_INTERVALS",
    "Bands",
    "upper_reconciliation",
    "reconciler",
    "reconcile",
    "reconcile_sparse",
    "reconcile_with_hierarchicalforecast",
]

# hierarchicalforecast 1.5 gives no intervals for forecast-proportion top-down methods.
NO_RECONCILED_INTERVALS = {"TopDown(forecast_proportions)", "MiddleOut"}


@dataclass(frozen=True)
class Bands:
    """Reconciled means and interval half-widths per series and step (series x horizon).

    Rows are those of the full hierarchy's `series`; `half_lo[p]` and `half_hi[p]` are
    the distances from the mean to the lower and upper bound of interval `p`.
    """

    mean: npt.NDArray[np.float64]
    half_lo: dict[int, npt.NDArray[np.float64]]
    half_hi: dict[int, npt.NDArray[np.float64]]

    @classmethod
    def zeros(cls, n_series: int, horizon: int, levels: list[int]) -> Bands:
        """All zero: what a closed series keeps."""
        return cls(
            np.zeros((n_series, horizon)),
            {p: np.zeros((n_series, horizon)) for p in levels},
            {p: np.zeros((n_series, horizon)) for p in levels},
        )

    def fill(
        self, rec: pl.DataFrame, series: pl.DataFrame, end: dt.date, levels: list[int]
    ) -> None:
        """Write a reconciled table's rows in place; half-widths are clipped at zero."""
        full, half_lo, half_hi = self.mean, self.half_lo, self.half_hi
        order = series.select("unique_id").with_row_index("_row")
        rec = rec.join(order, on="unique_id").with_columns(
            pl.col("ds").rank("dense").cast(pl.Int64).alias("_step")  # 1..horizon, any freq
        )
        rows, steps = rec["_row"].to_numpy(), rec["_step"].to_numpy() - 1
        full[rows, steps] = rec["mean"].to_numpy()
        for p in levels:
            half_lo[p][rows, steps] = np.maximum(full[rows, steps] - rec[f"lo_{p}"].to_numpy(), 0)
            half_hi[p][rows, steps] = np.maximum(rec[f"hi_{p}"].to_numpy() - full[rows, steps], 0)


def upper_reconciliation(cfg: ForecastConfig, fit_hier: Hierarchy) -> ForecastConfig:
    """The config that reconciles `fit_hier`: with shared-out lanes, the levels above them.

    MiddleOut at the lanes' parent (its default middle level, "the level just above lane")
    is bottom-up from the parents: they keep their forecasts and the lanes take shares of
    them. A lone total has nothing to reconcile either way.
    """
    if cfg.lanes != "share":
        return cfg
    parent = fit_hier.levels[-1][0]
    lone_total = len(fit_hier.levels) == 1
    at_parent = cfg.reconciliation == "MiddleOut" and cfg.middle_level in (None, parent)
    if lone_total or at_parent:
        return cfg.model_copy(update={"reconciliation": "BottomUp"})
    return cfg


def reconciler(cfg: ForecastConfig, hier: Hierarchy) -> Any:
    """The hierarchicalforecast reconciler of `[forecast].reconciliation` (untyped library)."""
    from hierarchicalforecast import methods

    name = cfg.reconciliation
    if name.startswith(("TopDown", "MiddleOut")) and not hier.is_nested():
        raise ConfigError(
            f"[forecast].reconciliation = {name!r} needs a strictly nested hierarchy, and "
            f"{cfg.hierarchy} is grouped (a level does not split the one above it). Use "
            "BottomUp or a MinTrace method, or nest the levels."
        )
    if name == "BottomUp":
        return methods.BottomUp()
    if name.startswith("TopDown"):
        return methods.TopDown(method=name[len("TopDown(") : -1])
    if name.startswith("MinTrace"):
        return methods.MinTrace(method=name[len("MinTrace(") : -1])
    middle = cfg.middle_level or hier.levels[-2][0]
    if middle not in (n for n, _ in hier.levels[1:-1]):
        raise ConfigError(
            f"[forecast].middle_level = {middle!r} is not a level between total and lane; "
            f"levels are {', '.join(n for n, _ in hier.levels)}."
        )
    return methods.MiddleOut(middle_level=middle, top_down_method="forecast_proportions")


def reconcile(
    base: pl.DataFrame,
    fitted: pl.DataFrame,
    hier: Hierarchy,
    open_ids: pl.Series,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """Reconciled (unique_id, ds, mean, lo/hi) over the open part of the hierarchy.

    BottomUp and MinTrace go through mmplan.forecasting.mint (sparse S, no n x n matrix),
    the top-down methods through hierarchicalforecast. Both see every series divided by
    one common scale (the mean absolute fitted volume), so their absolute floors (MinTrace's
    variance ridge of 2e-8) mean the same whatever the volume's unit; a common scale keeps
    the levels adding up and the weights in proportion.
    """
    values = [c for c in base.columns if c.startswith("base")]
    y = fitted.get_column("y").abs()
    scale = float(y.mean() or 0.0) if y.len() else 0.0  # type: ignore[arg-type]
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    base = base.with_columns(pl.col(c) / scale for c in values)
    fitted = fitted.with_columns(pl.col("y") / scale, pl.col("base") / scale)
    if cfg.reconciliation in METHODS:
        rec = reconcile_sparse(base, fitted, hier, open_ids, cfg)
    else:
        rec = reconcile_with_hierarchicalforecast(
            base, fitted, hier, open_ids, cfg, reconciler(cfg, hier)
        )
    return rec.with_columns(pl.exclude("unique_id", "ds") * scale)


def reconcile_with_hierarchicalforecast(
    base: pl.DataFrame,
    fitted: pl.DataFrame,
    hier: Hierarchy,
    open_ids: pl.Series,
    cfg: ForecastConfig,
    method: Any,
) -> pl.DataFrame:
    """`reconcile` through hierarchicalforecast with the reconciler `method` (dense S)."""
    from hierarchicalforecast.core import HierarchicalReconciliation

    keep_rows = hier.series.get_column("unique_id").is_in(open_ids.implode()).to_numpy()
    lane_ids = hier.series.get_column("unique_id").gather(hier.bottom_rows)  # S's columns
    keep_cols = lane_ids.is_in(open_ids.implode()).to_numpy()
    S = hier.S[keep_rows][:, keep_cols].toarray()
    sub_series = hier.series.filter(pl.Series(keep_rows))
    S_df = pl.DataFrame(S, schema=lane_ids.filter(pl.Series(keep_cols)).to_list()).insert_column(
        0, sub_series.get_column("unique_id")
    )
    tags = {
        name: sub_series.filter(pl.col("level") == name).get_column("unique_id").to_numpy()
        for name, _ in hier.levels
        if (sub_series.get_column("level") == name).any()
    }
    # MinTrace's variance estimates need the residuals; a NaN fitted value (the first
    # season of a seasonal naive) is no residual at all, so those days are dropped.
    y_df = fitted.filter(pl.col("base").is_not_nan())
    hrec = HierarchicalReconciliation(reconcilers=[method])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_intervals = cfg.reconciliation not in NO_RECONCILED_INTERVALS
        rec = hrec.reconcile(
            Y_hat_df=base,
            tags=tags,
            S_df=S_df,
            Y_df=y_df,
            level=cfg.levels if with_intervals else None,
            intervals_method="normality",
        )
    method_col = next(
        c for c in rec.columns if c.startswith("base/") and "-lo-" not in c and "-hi-" not in c
    )
    rename = {method_col: "mean"}
    if not with_intervals:
        # Each series keeps its base model's interval widths around the reconciled mean.
        widths = base.select(
            "unique_id",
            "ds",
            *[
                (pl.col(f"base-{side}-{p}") - pl.col("base")).alias(f"{side}_{p}")
                for p in cfg.levels
                for side in ("lo", "hi")
            ],
        )
        rec = rec.join(widths, on=["unique_id", "ds"]).with_columns(
            pl.col(f"{side}_{p}") + pl.col(method_col) for p in cfg.levels for side in ("lo", "hi")
        )
        return rec.rename(rename).select(
            "unique_id", "ds", "mean", *[f"{s}_{p}" for p in cfg.levels for s in ("lo", "hi")]
        )
    for p in cfg.levels:
        rename[f"{method_col}-lo-{p}"] = f"lo_{p}"
        rename[f"{method_col}-hi-{p}"] = f"hi_{p}"
    return rec.select(["unique_id", "ds", *rename]).rename(rename)


def reconcile_sparse(
    base: pl.DataFrame,
    fitted: pl.DataFrame,
    hier: Hierarchy,
    open_ids: pl.Series,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """`reconcile` through mmplan.forecasting.mint on the CSR summing matrix of the open series."""
    from scipy.stats import norm

    keep_rows = hier.series.get_column("unique_id").is_in(open_ids.implode()).to_numpy()
    keep_cols = keep_rows[hier.bottom_rows]  # a lane is open when its own row is
    S = hier.S[keep_rows][:, keep_cols]
    position = np.cumsum(keep_rows) - 1  # row in the open sub-hierarchy
    bottom_rows = position[hier.bottom_rows[keep_cols]]
    sub = hier.series.filter(pl.Series(keep_rows)).select("unique_id", "level")
    level_index = {name: k for k, (name, _) in enumerate(hier.levels)}
    level_of_row = np.array([level_index[v] for v in sub.get_column("level")], dtype=np.int64)
    ids = sub.select("unique_id").with_row_index("_row")
    n, horizon = sub.height, cfg.horizon

    def matrix(frame: pl.DataFrame, value: pl.Expr, width: int, col: str) -> Floats:
        """(series x width) array from long rows keyed by unique_id and column index `col`."""
        out = np.full((n, width), np.nan)
        rows = frame.select("unique_id", col, value.alias("_v")).join(ids, on="unique_id")
        out[rows["_row"].to_numpy(), rows[col].to_numpy()] = rows["_v"].to_numpy()
        return out

    dates = base.get_column("ds").unique().sort()  # the horizon's, at any frequency
    base = base.with_columns((pl.col("ds").rank("dense").cast(pl.Int64) - 1).alias("_step"))
    y_hat = matrix(base, pl.col("base"), horizon, "_step")
    # Base standard deviation per step, from each interval's half-width over z, averaged
    # over the levels (hierarchicalforecast's normality does the same).
    sigma_expr = pl.mean_horizontal(
        (pl.col(f"base-hi-{p}") - pl.col(f"base-lo-{p}")) / (2 * norm.ppf(0.5 + p / 200))
        for p in cfg.levels
    ).clip(lower_bound=0.0)
    sigma = np.nan_to_num(matrix(base, sigma_expr, horizon, "_step"))
    residuals = None
    if cfg.reconciliation.endswith(("wls_var)", "shrink)")):
        # A NaN fitted value (the first season of a seasonal naive) is no residual; the
        # columns are the days on which some series has one, as hierarchicalforecast pivots.
        res = fitted.filter(pl.col("base").is_not_nan()).with_columns(
            (pl.col("y") - pl.col("base")).alias("_res")
        )
        days = res.get_column("ds").unique().sort()
        res = res.join(
            days.to_frame().with_row_index("_day").with_columns(pl.col("_day").cast(pl.Int64)),
            on="ds",
        )
        residuals = matrix(res, pl.col("_res"), days.len(), "_day")
    rec = reconcile_arrays(
        S,
        bottom_rows,
        y_hat,
        cfg.reconciliation,
        residuals=residuals,
        sigma=sigma,
        level_of_row=level_of_row,
    )
    assert rec.var is not None  # sigma was given
    sd = np.sqrt(rec.var)
    out = {
        "unique_id": np.repeat(sub.get_column("unique_id").to_numpy(), horizon),
        "_step": np.tile(np.arange(horizon), n),
        "mean": rec.mean.ravel(),
    }
    for p in cfg.levels:
        z = norm.ppf(0.5 + p / 200)
        out[f"lo_{p}"] = (rec.mean - z * sd).ravel()
        out[f"hi_{p}"] = (rec.mean + z * sd).ravel()
    frame = pl.DataFrame(out).with_columns(ds=dates.gather(out["_step"]))
    return frame.select("unique_id", "ds", *[c for c in out if c not in ("unique_id", "_step")])
