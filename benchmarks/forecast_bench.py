"""mmplan forecast against the same work done by hand with statsforecast + hierarchicalforecast.

Generates a network of about 1,000 lanes with 2 years of daily history (`mmplan sample`
defaults), holds back the last 28 days, and runs, one after the other in this benchmark run,
each in a fresh child process so that its peak memory is its own:

- mmplan: read Parquet, `mmplan.forecast` with the default config (rules, validation
  windows, models, reconciliation, non-negativity, calibration), write Parquet with
  provenance; `--model`, `--reconciliation` and `--lanes` override the config;
- by hand: read Parquet, zero-fill, `hierarchicalforecast.utils.aggregate`, one
  `StatsForecast.forecast` with one base model for every series (`--bare-model`, default
  MSTL with weekly and yearly seasons, an ARIMA(1,1,1) trend and mmplan's event regressors),
  and `HierarchicalReconciliation` (`--bare-reconciliation`, default BottomUp): the bare
  MSTL + BottomUp script the speed target is set against.

Prints wall time, the ratio, peak RSS, and pooled WAPE (sum |error| / sum actual) per level
on the 28 held-back days.

    .venv/bin/python benchmarks/forecast_bench.py [--fcs 5 --scs 30 --dss 300]
        [--model M --reconciliation R --lanes L] [--bare-model MSTL --bare-reconciliation BottomUp]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import polars as pl

HOLDOUT = 28


def run_mmplan(history_path: str, out_path: str, overrides: dict):
    from mmplan.config import load_config
    from mmplan.forecasting import forecast
    from mmplan.io import provenance, write_parquet
    from mmplan.io import read_table as load

    cfg = load_config(None, forecast={"horizon": HOLDOUT, **overrides})
    fc = forecast(load(history_path, "history"), cfg)
    write_parquet(fc, out_path, provenance("forecast", cfg.as_record(), {"history": history_path}))
    return fc.filter(pl.col("level").is_in(["total", "lane"])).select(
        "level", "origin", "destination", "date", "forecast"
    )


def run_by_hand(history_path: str, out_path: str, model: str, reconciliation: str, n_jobs: int):
    import warnings

    import pandas as pd
    from hierarchicalforecast import methods
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.utils import aggregate
    from statsforecast import StatsForecast
    from statsforecast import models as sm

    warnings.simplefilter("ignore")
    h = pl.read_parquet(history_path)
    end = h["date"].max()
    # zero-fill each lane from its first day, as a planner's script would
    spans = h.group_by("origin", "destination").agg(
        pl.col("date").min().alias("start"), pl.col("origin_region").first()
    )
    grid = spans.select(
        "origin", "destination", "origin_region", pl.date_ranges("start", pl.lit(end)).alias("ds")
    ).explode("ds")
    df = (
        grid.join(
            h.select(
                "origin", "destination", pl.col("date").alias("ds"), pl.col("volume").alias("y")
            ),
            on=["origin", "destination", "ds"],
            how="left",
        )
        .with_columns(pl.col("y").fill_null(0.0), pl.lit("total").alias("total"))
        .to_pandas()
    )
    spec = [
        ["total"],
        ["total", "origin_region"],
        ["total", "origin_region", "origin"],
        ["total", "origin_region", "origin", "destination"],
    ]
    y_df, s_df, tags = aggregate(df, spec)
    base = {
        "AutoETS": lambda: sm.AutoETS(season_length=7),
        "AutoTheta": lambda: sm.AutoTheta(season_length=7),
        "MSTL": lambda: sm.MSTL(season_length=[7, 365], trend_forecaster=sm.ARIMA(order=(1, 1, 1))),
    }[model]()
    x_future = None
    if model == "MSTL":  # the same event regressors mmplan gives MSTL's ARIMA trend
        from mmplan.config import ForecastConfig
        from mmplan.forecasting import event_features

        events = ForecastConfig().events
        days = pl.Series("ds", sorted(set(y_df["ds"]))).cast(pl.Date)
        past = event_features(days, events)
        active = [c for c in past.columns[1:] if past[c].sum() > 0]
        past = past.select("ds", *active).to_pandas()
        past["ds"] = pd.to_datetime(past["ds"])
        y_df = y_df.merge(past, on="ds")
        future = pl.date_range(
            end + dt.timedelta(days=1), end + dt.timedelta(days=HOLDOUT), eager=True
        )
        ahead = event_features(future, events).select("ds", *active).to_pandas()
        ahead["ds"] = pd.to_datetime(ahead["ds"])
        x_future = pd.DataFrame({"unique_id": y_df["unique_id"].unique()}).merge(ahead, how="cross")
    sf = StatsForecast(models=[base], freq="D", n_jobs=n_jobs)
    y_hat = sf.forecast(df=y_df, h=HOLDOUT, X_df=x_future, level=[80, 95], fitted=True)
    fitted = sf.forecast_fitted_values()
    if reconciliation == "BottomUp":
        rec_method = methods.BottomUp()
    else:
        rec_method = methods.MinTrace(method=reconciliation[len("MinTrace(") : -1])
    rec = HierarchicalReconciliation([rec_method]).reconcile(
        Y_hat_df=y_hat, S_df=s_df, tags=tags, Y_df=fitted, level=[80, 95]
    )
    col = next(
        c for c in rec.columns if c.startswith(model + "/") and "-lo-" not in c and "-hi-" not in c
    )
    out = pl.from_pandas(rec[["unique_id", "ds", col]]).rename({col: "forecast", "ds": "date"})
    out.write_parquet(out_path)
    lanes = out.filter(pl.col("unique_id").str.count_matches("/") == 3).with_columns(
        pl.col("unique_id").str.split("/").list.get(2).alias("origin"),
        pl.col("unique_id").str.split("/").list.get(3).alias("destination"),
        pl.lit("lane").alias("level"),
    )
    total = out.filter(pl.col("unique_id") == "total").with_columns(
        pl.lit(None, pl.String).alias("origin"),
        pl.lit(None, pl.String).alias("destination"),
        pl.lit("total").alias("level"),
    )
    return (
        pl.concat([total, lanes])
        .with_columns(pl.col("date").cast(pl.Date))
        .select("level", "origin", "destination", "date", "forecast")
    )


def _child(fn, args, queue):
    started = time.perf_counter()
    try:
        result = fn(*args)
    except BaseException as exc:  # report, so the parent does not wait forever
        queue.put(exc)
        raise
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, peak_mb, result))


def timed(fn, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if isinstance(out, BaseException):
        raise out
    return out


def wape(fc: pl.DataFrame, actual: pl.DataFrame) -> dict[str, float]:
    lanes = (
        fc.filter(pl.col("level") == "lane")
        .join(actual, on=["origin", "destination", "date"], how="full", coalesce=True)
        .fill_null(0.0)
    )
    total_fc = fc.filter(pl.col("level") == "total").select("date", "forecast")
    total_act = actual.group_by("date").agg(pl.col("actual").sum())
    total = total_fc.join(total_act, on="date", how="full", coalesce=True).fill_null(0.0)

    def pooled(df):
        return (df["forecast"] - df["actual"]).abs().sum() / df["actual"].sum()

    return {"total": pooled(total), "lane": pooled(lanes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fcs", type=int, default=5)
    parser.add_argument("--scs", type=int, default=30)
    parser.add_argument("--dss", type=int, default=300)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--model", help="mmplan's [forecast] model (default: the config's)")
    parser.add_argument("--reconciliation", help="mmplan's reconciliation (default: config's)")
    parser.add_argument("--lanes", choices=["auto", "share", "model"], help="mmplan's lanes")
    parser.add_argument("--bare-model", default="MSTL", choices=["MSTL", "AutoETS", "AutoTheta"])
    parser.add_argument("--bare-reconciliation", default="BottomUp")
    parser.add_argument("--n-jobs", type=int, default=-1)
    args = parser.parse_args()

    from mmplan.config import SampleConfig
    from mmplan.synthetic import sample

    net = sample(SampleConfig(fcs=args.fcs, scs=args.scs, dss=args.dss, days=args.days))
    history = net["history"]
    end = history["date"].max()
    cutoff = end - dt.timedelta(days=HOLDOUT)
    train = history.filter(pl.col("date") <= cutoff)
    actual = history.filter(pl.col("date") > cutoff).select(
        "origin", "destination", "date", pl.col("volume").alias("actual")
    )
    overrides = {
        key: value
        for key, value in (
            ("model", args.model),
            ("reconciliation", args.reconciliation),
            ("lanes", args.lanes),
        )
        if value is not None
    }
    n_lanes = train.select("origin", "destination").unique().height
    print(
        f"network: {n_lanes} lanes, {train['date'].n_unique()} training days "
        f"({train['date'].min()} .. {cutoff}), {HOLDOUT} days held back; mmplan "
        f"{overrides or 'default config'}, by hand {args.bare_model} + "
        f"{args.bare_reconciliation}, n_jobs {args.n_jobs}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "history.parquet")
        train.write_parquet(path)
        m_sec, m_mem, m_fc = timed(
            run_mmplan, path, str(Path(tmp) / "m.parquet"), {**overrides, "n_jobs": args.n_jobs}
        )
        print(f"mmplan     {m_sec:8.1f} s  peak {m_mem:7.0f} MB", flush=True)
        bare = (args.bare_model, args.bare_reconciliation, args.n_jobs)
        h_sec, h_mem, h_fc = timed(run_by_hand, path, str(Path(tmp) / "h.parquet"), *bare)
        print(f"by hand    {h_sec:8.1f} s  peak {h_mem:7.0f} MB", flush=True)
    m_w, h_w = wape(m_fc, actual), wape(h_fc, actual)
    print(f"ratio mmplan / by hand: time {m_sec / h_sec:.2f}x, peak memory {m_mem / h_mem:.2f}x")
    print(
        f"pooled WAPE on held-back {HOLDOUT} days: mmplan total {m_w['total']:.3f} lane "
        f"{m_w['lane']:.3f} | by hand total {h_w['total']:.3f} lane {h_w['lane']:.3f}"
    )
    print(
        f"negative lane forecasts: mmplan {int((m_fc['forecast'] < 0).sum())}, by hand "
        f"{int((h_fc['forecast'] < 0).sum())}"
    )


if __name__ == "__main__":
    main()
