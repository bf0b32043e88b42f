"""Which base model and reconciliation should be mmplan's default? Measured, not guessed.

Holds back the last 28 days of a history (default: the shipped sample), forecasts them
with each candidate model through the full mmplan pipeline (rules and reconciliation
included; lanes as shares of their origin, the default), and prints pooled WAPE per level
and the fit time. Also runs the default with a model per lane (lanes = "model"). Also compares
reconciliation methods for the chosen model. The README quotes this script's output.

    .venv/bin/python benchmarks/model_choice.py [HISTORY] [--cutoffs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting import aggregate, forecast, history_hierarchy, lane_series
from mmplan.tables import LANE_KEYS


def actuals(history: pl.DataFrame, cfg: ForecastConfig, start: dt.date) -> pl.DataFrame:
    """Actual volume per series and date on and after `start`, zero-filled like the forecast."""
    daily, _ = lane_series(history)
    y = aggregate(daily, history_hierarchy(history, cfg))
    return y.filter(pl.col("ds") >= start).rename({"ds": "date", "y": "actual"})


def pooled_wape(fc: pl.DataFrame, act: pl.DataFrame) -> dict[str, float]:
    """sum |error| / sum actual per level (a new lane missing from the forecast counts as 0)."""
    joined = act.join(
        fc.select("unique_id", "level", "date", "forecast"), on=["unique_id", "date"], how="inner"
    )
    per_level = joined.group_by("level").agg(
        ((pl.col("forecast") - pl.col("actual")).abs().sum() / pl.col("actual").sum()).alias("w")
    )
    return dict(per_level.iter_rows())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", nargs="?", default="data/sample/history.parquet")
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--cutoffs", type=int, default=2, help="origins 28 days apart")
    parser.add_argument("--models", default="AutoETS,AutoTheta,MSTL,SeasonalNaive")
    parser.add_argument(
        "--reconciliation",
        default="MinTrace(wls_var)",
        help="reconciliation used when comparing base models",
    )
    parser.add_argument(
        "--mstl-trends",
        default="ARIMA,AutoETS",
        help="MSTL trend models to compare (AutoARIMA is ~7x slower)",
    )
    parser.add_argument(
        "--reconcilers",
        default="BottomUp,MinTrace(ols),MinTrace(wls_struct),"
        "MinTrace(wls_var),MinTrace(mint_shrink),TopDown(forecast_proportions)",
    )
    parser.add_argument(
        "--per-lane",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the default with a model per lane (lanes = model) beside the shares",
    )
    args = parser.parse_args()
    history = pl.read_parquet(args.history)
    end = history["date"].max()
    cutoffs = [end - dt.timedelta(days=args.horizon * k) for k in range(args.cutoffs, 0, -1)]

    def score(cfg: ForecastConfig) -> tuple[dict[str, float], float]:
        totals: dict[str, list[float]] = {}
        seconds = 0.0
        for cutoff in cutoffs:
            train = history.filter(pl.col("date") <= cutoff)
            test_end = cutoff + dt.timedelta(days=cfg.horizon)
            started = time.perf_counter()
            fc = forecast(train, cfg)
            seconds += time.perf_counter() - started
            act = actuals(
                history.filter(pl.col("date") <= test_end), cfg, cutoff + dt.timedelta(days=1)
            )
            for level, w in pooled_wape(fc, act).items():
                totals.setdefault(level, []).append(w)
        return {k: sum(v) / len(v) for k, v in totals.items()}, seconds

    print(
        f"history {args.history}: {history.select(LANE_KEYS).unique().height} lanes, "
        f"cutoffs {', '.join(map(str, cutoffs))}, horizon {args.horizon}"
    )
    print(
        f"{'model':<16}{'reconciliation':<32}{'total':>8}{'region':>8}{'origin':>8}"
        f"{'lane':>8}{'seconds':>9}"
    )
    order = ["total", "origin_region", "origin", "lane"]
    runs = [(m, "ARIMA") for m in args.models.split(",") if m != "MSTL"]
    if "MSTL" in args.models.split(","):
        runs += [("MSTL", trend) for trend in args.mstl_trends.split(",")]
    for model, trend in runs:
        cfg = ForecastConfig(
            model=model, horizon=args.horizon, mstl_trend=trend, reconciliation=args.reconciliation
        )
        w, s = score(cfg)
        label = model if model != "MSTL" else f"MSTL/{trend}"
        print(
            f"{label:<16}{cfg.reconciliation:<32}"
            + "".join(f"{w[k]:8.3f}" for k in order)
            + f"{s:9.1f}",
            flush=True,
        )
    if args.per_lane:
        # The same default with a model per lane (lanes = "model") instead of shares.
        cfg = ForecastConfig(horizon=args.horizon, lanes="model")
        w, s = score(cfg)
        print(
            f"{'MSTL, per lane':<16}{cfg.reconciliation:<32}"
            + "".join(f"{w[k]:8.3f}" for k in order)
            + f"{s:9.1f}",
            flush=True,
        )
    best = args.models.split(",")[0]
    for rec in filter(None, args.reconcilers.split(",")):
        cfg = ForecastConfig(
            model=best,
            horizon=args.horizon,
            reconciliation=rec,
            mstl_trend=args.mstl_trends.split(",")[0],
        )
        w, s = score(cfg)
        print(
            f"{best:<16}{rec:<32}" + "".join(f"{w[k]:8.3f}" for k in order) + f"{s:9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
