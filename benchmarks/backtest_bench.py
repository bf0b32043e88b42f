"""Benchmark: does a W-window backtest cost about W forecasts?

Times, in one process, one `mmplan.forecast` of the whole history and one `mmplan.backtest`
of W windows on the same history and config, after a warm-up forecast so that imports and
first-call setup are paid by neither. Prints both times and the ratio backtest / (W x forecast).
A ratio near 1 means the backtest adds little beyond the forecasts it must make: the
seasonal-naive baseline run, scoring and metrics. Earlier cutoffs train on less history,
so the ratio can be a little below 1.

    .venv/bin/python benchmarks/backtest_bench.py [--windows 3] [--horizon 14]
        [--model MSTL] [--history data/sample/history.parquet] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from mmplan.config import load_config
from mmplan.evaluate import backtest
from mmplan.forecasting import forecast

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--step", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=14)
    parser.add_argument(
        "--model", default=None, help="[forecast].model (default: the config default, MSTL)"
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="[forecast].n_jobs")
    parser.add_argument("--history", type=Path, default=ROOT / "data/sample/history.parquet")
    args = parser.parse_args()

    fc_keys = {"horizon": args.horizon, "model": args.model, "n_jobs": args.n_jobs}
    cfg = load_config(
        forecast=fc_keys,
        backtest={"windows": args.windows, "step": args.step, "horizon": args.horizon},
    )
    history = pl.read_parquet(args.history)
    lanes = history.select("origin", "destination").unique().height
    days = history["date"].n_unique()
    print(
        f"history {args.history.name}: {lanes} lanes, {days} days; model "
        f"{cfg.forecast.model}, reconciliation {cfg.forecast.reconciliation}, "
        f"horizon {args.horizon}, n_jobs {cfg.forecast.n_jobs}"
    )

    # Warm-up on a small slice: compiles the models once, for both timings below.
    first = history["date"].min()
    forecast(history.filter(pl.col("date") < first + pl.duration(days=120)), cfg)
    forecast(
        history.filter(pl.col("date") < first + pl.duration(days=120)),
        cfg.forecast.model_copy(update={"model": "SeasonalNaive"}),
    )

    started = time.perf_counter()
    forecast(history, cfg)
    one = time.perf_counter() - started
    print(f"one forecast:           {one:8.2f} s")

    started = time.perf_counter()
    result = backtest(history, cfg)
    whole = time.perf_counter() - started
    w = args.windows
    runs = ", ".join(result.metrics_json["runs"])
    print(f"backtest of {w} windows:  {whole:8.2f} s  (runs per cutoff: {runs})")
    print(f"ratio backtest / ({w} x forecast) = {whole / (w * one):.2f}")
    lane = result.metrics_json["metrics"][result.metrics_json["primary"]]["lane"]
    print(f"lane WAPE {lane['wape']:.3f}, skill vs seasonal naive {lane['skill']:.3f}")


if __name__ == "__main__":
    main()
