"""Benchmark: do backtest-calibrated intervals cover what they promise on days not yet seen?

Runs one `mmplan.backtest` of the default forecast with many cutoffs on the shipped sample,
then replays what a planner does: at each test cutoff, calibrate (`mmplan.evaluate.
calibrate`, what `mmplan backtest` writes to calibration.parquet) on the earlier cutoffs
whose scored days all ended by then, scale that cutoff's intervals by the factors (what
`mmplan forecast --calibration` does), and score them. No actual after a test cutoff
reaches its factors. Prints, per level and interval, the coverage of the model's own
intervals and of the calibrated ones on the same test points, and how much wider the
calibrated intervals are.

    .venv/bin/python benchmarks/calibration_bench.py [--windows 8] [--step 7] [--horizon 28]
        [--history data/sample/history.parquet]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from mmplan.config import load_config
from mmplan.evaluate import NEW_MODEL, backtest, calibrate, rule_of_label

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--step", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--history", type=Path, default=ROOT / "data/sample/history.parquet")
    args = parser.parse_args()

    cfg = load_config(
        None, backtest={"windows": args.windows, "step": args.step, "horizon": args.horizon}
    )
    history = pl.read_parquet(args.history)
    started = time.perf_counter()
    result = backtest(history, cfg)
    print(
        f"backtest: {args.windows} cutoffs, horizon {args.horizon}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    primary, intervals, horizon = cfg.forecast.model, cfg.forecast.levels, args.horizon
    points = result.points.filter((pl.col("run") == primary) & (pl.col("model") != NEW_MODEL))
    levels = points["level"].unique(maintain_order=True).to_list()
    cuts = sorted(points["cutoff"].unique().to_list())
    scored, tested = [], 0
    for cut in cuts:
        # Calibrate only on cutoffs whose whole scored window ended by this cutoff.
        seen = [c for c in cuts if (cut - c).days >= args.horizon]
        if not seen:
            continue
        tested += 1
        cal = calibrate(
            points.filter(pl.col("cutoff").is_in(seen)), primary, levels, cfg.forecast, horizon
        )
        # Each point takes its level's factor for its rule, or the pooled one (as forecast does).
        test = points.filter(pl.col("cutoff") == cut).with_columns(
            rule_of_label(pl.col("model")).alias("rule")
        )
        for p in intervals:
            k = cal.filter(pl.col("interval") == p)
            pooled = k.filter(pl.col("rule") == "all").select("level", pl.col("factor").alias("k0"))
            by_rule = k.select("level", "rule", pl.col("factor").alias("k1"))
            half = pl.col(f"hi_{p}") - pl.col("forecast")
            scored.append(
                test.join(pooled, on="level")
                .join(by_rule, on=["level", "rule"], how="left")
                .with_columns(pl.coalesce("k1", "k0").alias("k"))
                .select(
                    "level",
                    pl.lit(p).alias("interval"),
                    (
                        (pl.col(f"lo_{p}") <= pl.col("actual"))
                        & (pl.col("actual") <= pl.col(f"hi_{p}"))
                    ).alias("raw"),
                    (
                        (pl.col("actual") - pl.col("forecast")).abs() <= pl.col("k") * half + 1e-9
                    ).alias("calibrated"),
                    half.alias("raw_half"),
                    (pl.col("k") * half).alias("cal_half"),
                )
            )
    if not scored:
        raise SystemExit("no test cutoff has an earlier calibration window: raise --windows")
    table = (
        pl.concat(scored)
        .group_by("interval", "level", maintain_order=True)
        .agg(
            pl.len().alias("points"),
            pl.col("raw").mean().alias("raw coverage"),
            pl.col("calibrated").mean().alias("calibrated coverage"),
            (pl.col("cal_half").sum() / pl.col("raw_half").sum()).alias("width x"),
        )
    )
    print(f"test cutoffs: {tested} of {len(cuts)}, each calibrated on the cutoffs before it")
    with pl.Config(tbl_rows=50, float_precision=3, tbl_hide_dataframe_shape=True):
        print(table)


if __name__ == "__main__":
    main()
