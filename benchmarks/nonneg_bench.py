"""Non-negative reconciliation: mmplan's clip-and-resum against MinTrace(nonnegative=True).

hierarchicalforecast's non-negative MinTrace solves a quadratic program per horizon step
(clarabel) and can be slow or hang (its issue #178). mmplan reconciles unconstrained, clips
lane forecasts at zero and re-sums the levels (S @ max(b, 0)). This script fits the base
models once on a history with the last 28 days held back, then times both ways of making
the reconciled forecast non-negative and scores them by pooled WAPE on the held-back days.

    .venv/bin/python benchmarks/nonneg_bench.py [HISTORY] [--method wls_var]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.errors import ConfigError
from mmplan.forecasting import (
    aggregate,
    assign_models,
    base_forecasts,
    history_hierarchy,
    lane_series,
    no_progress,
)
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.reconcile import reconcile, reconcile_with_hierarchicalforecast


def reconcile_nonnegative(
    base: pl.DataFrame,
    fitted: pl.DataFrame,
    hier: Hierarchy,
    open_ids: pl.Series,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """`reconcile` through hierarchicalforecast's QP-based non-negative MinTrace.

    mmplan does not use it (see mmplan.forecasting.pipeline: it clips and re-sums instead);
    this benchmark measures it.
    """
    from hierarchicalforecast import methods

    if cfg.reconciliation == "MinTrace(block_shrink)":
        raise ConfigError(
            f"[forecast].reconciliation = {cfg.reconciliation!r} has no non-negative "
            "hierarchicalforecast counterpart; use it without nonnegative."
        )
    method = methods.MinTrace(method=cfg.reconciliation[len("MinTrace(") : -1], nonnegative=True)
    return reconcile_with_hierarchicalforecast(base, fitted, hier, open_ids, cfg, method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", nargs="?", default="data/sample/history.parquet")
    parser.add_argument("--method", default="wls_var")
    parser.add_argument("--model", default="MSTL")
    args = parser.parse_args()
    cfg = ForecastConfig(model=args.model, reconciliation=f"MinTrace({args.method})", horizon=28)
    full = pl.read_parquet(args.history)
    cutoff = full["date"].max() - dt.timedelta(days=cfg.horizon)
    history = full.filter(pl.col("date") <= cutoff)
    daily, end = lane_series(history)
    hier = history_hierarchy(history, cfg)
    y = aggregate(daily, hier)
    plan = assign_models(y, end, cfg)
    open_ids = plan.filter(pl.col("rule") != "closed")["unique_id"]
    started = time.perf_counter()
    base, fitted, _ = base_forecasts(y, plan, end, cfg, no_progress)
    print(
        f"{args.history}: {hier.lanes.height} lanes, {hier.series.height} series; base "
        f"models fitted in {time.perf_counter() - started:.1f} s"
    )

    actual_daily, _ = lane_series(full)
    actual = aggregate(actual_daily, hier).filter(pl.col("ds") > end)
    lane_ids = hier.series["unique_id"].gather(hier.bottom_rows)  # in S's column order

    def lane_matrix(rec: pl.DataFrame) -> np.ndarray:
        """(lanes x horizon) reconciled means in S's column order; closed lanes are 0."""
        wide = rec.sort("ds").pivot(on="ds", index="unique_id", values="mean")
        rows = lane_ids.to_frame().join(wide, on="unique_id", how="left").fill_null(0.0)
        return rows.drop("unique_id").to_numpy()

    def score(bottom: np.ndarray) -> tuple[float, float]:
        point = np.asarray(hier.S @ np.nan_to_num(bottom))
        fc = pl.DataFrame(
            {
                "unique_id": np.repeat(hier.series["unique_id"].to_numpy(), cfg.horizon),
                "step": np.tile(np.arange(cfg.horizon), hier.series.height),
                "forecast": point.ravel(),
            }
        )
        act = actual.with_columns(((pl.col("ds") - pl.lit(end)).dt.total_days() - 1).alias("step"))
        joined = act.join(fc, on=["unique_id", "step"]).join(
            hier.series.select("unique_id", "level"), on="unique_id"
        )
        out = joined.group_by("level").agg(
            ((pl.col("forecast") - pl.col("y")).abs().sum() / pl.col("y").sum()).alias("w")
        )
        w = dict(out.iter_rows())
        return w["total"], w["lane"]

    started = time.perf_counter()
    rec = reconcile(base, fitted, hier, open_ids, cfg)
    clipped = np.maximum(lane_matrix(rec), 0.0)
    ours = time.perf_counter() - started
    negatives = int((lane_matrix(rec) < 0).sum())
    started = time.perf_counter()
    try:
        rec_qp = reconcile_nonnegative(base, fitted, hier, open_ids, cfg)
    except Exception as exc:  # hierarchicalforecast raises a bare Exception when the QP fails
        rec_qp, failure = None, str(exc).splitlines()[0]
    qp = time.perf_counter() - started
    print(f"unconstrained MinTrace({args.method}) gave {negatives} negative lane-days")
    t, lane = score(clipped)
    print(f"clip and re-sum (mmplan)        {ours:7.2f} s   WAPE total {t:.4f} lane {lane:.4f}")
    if rec_qp is None:
        print(f"MinTrace(nonnegative=True) QP   {qp:7.2f} s   failed: {failure}")
        return
    t, lane = score(lane_matrix(rec_qp))
    print(f"MinTrace(nonnegative=True) QP   {qp:7.2f} s   WAPE total {t:.4f} lane {lane:.4f}")
    print(f"ratio QP / clip: {qp / ours:.1f}x")


if __name__ == "__main__":
    main()
