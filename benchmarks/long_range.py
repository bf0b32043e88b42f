"""Long-range accuracy: the temporal hierarchy against daily models run long and against
models fitted to the monthly totals, 12 to 16 months ahead.

Data sets (`--sets`, default both):

- `birthdays`: ../shared/data/real/birthdays_long.parquet (US births per day and state,
  1979-1988, 51 lanes; skipped with a note when missing), 16 months ahead, fitted on the
  last `--fit-years` (4) years before each cutoff to keep the run to minutes;
- `sample`: an `mmplan sample` network of 1 region, 1 FC, 2 SCs and 4 DSs over 1,300 days
  (three years and the three months that give four cutoffs two years of training each),
  made in memory, 12 months ahead (1,300 days: at 1,200 the earliest cutoff holds 695 days
  and MSTL's yearly intervals need 731).

Cutoffs: `--cutoffs` (4) month ends, one `--step` (3 for births, 1 for the sample) months
apart, the last leaving exactly the horizon's months of actuals. Every cutoff's horizon is
whole calendar months, so every month scored is a whole month.

Methods, all mmplan's pipeline with `long_range_model` (MSTL) and no validation windows, so
they differ in their grains only:

- `temporal`: `mmplan.forecast` with the long-range defaults (day, week and month fits,
  reconciled: mmplan.forecasting.temporal); its month rows are scored;
- `daily`: the same daily model run the whole horizon (`long_range_after` past it), its days
  summed into months; a month's 80% interval is the root sum of squares of its days'
  half-widths (independent days), as the temporal path does for a grain it cannot fit;
- `monthly`: the pipeline on the history summed into calendar months, forecast directly,
  with the config the temporal path gives its own month fit
  (mmplan.forecasting.temporal.grain_config): every count in months (`min_history_days`
  25, two years and a month; `closed_after_days` 1; ...), no events. With the daily
  counts (`min_history_days` 56, read as 56 *months* on a monthly history) every series
  was "short" and this method was SeasonalNaive, not MSTL.

Every method's lane and total rows are counted by their `model` column (printed per set),
and a method whose total is not `long_range_model` stops the run: the total has the whole
history, so it is a regular series, and any other label (but `<model>/failed`: the model
raised on it and the fallback forecast it, counted) means the method did not fit the model
it is named for.

Scores, pooled over cutoffs, per month ahead (1 = the first month after the cutoff):
WAPE = sum |actual - forecast| / sum actual at the total and the lane level, and the share
of lane-months inside the 80% interval. Then the overall WAPE and coverage per method and
the ratios against `temporal`.

    .venv/bin/python benchmarks/long_range.py [--sets birthdays,sample] [--cutoffs 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mmplan.config import ForecastConfig
from mmplan.forecasting import forecast
from mmplan.forecasting.temporal import grain_config, grain_history
from mmplan.tables import day_rows

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
METHODS = ("temporal", "daily", "monthly")
MODEL = "MSTL"  # every method's long_range_model


def month_end(day: dt.date) -> dt.date:
    """The last day of `day`'s month."""
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def add_months(day: dt.date, n: int) -> dt.date:
    """The last day of the month `n` months after `day`'s."""
    year, month = divmod(day.month - 1 + n, 12)
    return month_end(dt.date(day.year + year, month + 1, 1))


def cutoffs(history: pl.DataFrame, months: int, n: int, step: int) -> list[dt.date]:
    """`n` month ends `step` months apart, the last `months` whole months before the end."""
    end = history.get_column("date").max()
    assert isinstance(end, dt.date)
    last = month_end(end) if month_end(end) == end else add_months(end, -1)
    final = add_months(last, -months)
    return [add_months(final, -step * k) for k in reversed(range(n))]


def config(horizon: int, **extra: object) -> ForecastConfig:
    """One method's config: MSTL everywhere, no validation windows."""
    return ForecastConfig(
        horizon=horizon,
        model=MODEL,
        long_range_model=MODEL,
        validation_windows=0,
        reconciliation="MinTrace(wls_struct)",
        **extra,  # type: ignore[arg-type]
    )


def monthly_rows(fc: pl.DataFrame) -> pl.DataFrame:
    """unique_id, level, date (the month's 1st), forecast, lo_80, hi_80, model of a daily
    forecast summed into months; the interval from independent days' half-widths."""
    return (
        fc.group_by(
            "unique_id", "level", "origin", "destination", pl.col("date").dt.truncate("1mo")
        )
        .agg(
            pl.col("forecast").sum(),
            ((pl.col("forecast") - pl.col("lo_80")) ** 2).sum().sqrt().alias("half_lo"),
            ((pl.col("hi_80") - pl.col("forecast")) ** 2).sum().sqrt().alias("half_hi"),
            pl.col("model").first(),
        )
        .with_columns(
            (pl.col("forecast") - pl.col("half_lo")).clip(lower_bound=0).alias("lo_80"),
            (pl.col("forecast") + pl.col("half_hi")).alias("hi_80"),
        )
        .drop("half_lo", "half_hi")
    )


def run(method: str, train: pl.DataFrame, cutoff: dt.date, months: int) -> pl.DataFrame:
    """One method's monthly forecast after `cutoff`: unique_id, level, date, forecast,
    lo/hi_80 and model."""
    days = (add_months(cutoff, months) - cutoff).days
    cols = [
        *("unique_id", "level", "origin", "destination", "date"),
        *("forecast", "lo_80", "hi_80", "model"),
    ]
    if method == "temporal":
        fc = forecast(train, config(days))
        return fc.filter(pl.col("grain") == "month").select(cols)
    if method == "daily":
        fc = day_rows(forecast(train, config(days, long_range_after=days)))
        return monthly_rows(fc).select(cols)
    # The month grain's own config: counts in months, as the temporal path fits its months.
    summed = grain_history(train, "month")
    fc = forecast(summed, grain_config(config(days), "month", months))
    return fc.select(cols)


def models(method: str, fc: pl.DataFrame) -> pl.DataFrame:
    """method, level, model, series: how many total and lane series each label covers.
    Stops the run when the total (a regular series with the whole history) is not MODEL."""
    counts = (
        fc.filter(pl.col("level").is_in(["total", "lane"]))
        .unique("unique_id")
        .group_by("level", "model")
        .agg(pl.len().alias("series"))
        .select(pl.lit(method).alias("method"), "level", "model", "series")
    )
    total = counts.filter(pl.col("level") == "total").get_column("model").to_list()
    # `<model>/failed` is MODEL raising on the series, labelled as such (counted, not fatal).
    if total != [MODEL] and not all(t.endswith("/failed") for t in total):
        raise SystemExit(f"{method}: the total's model is {total}, not {MODEL}: mislabelled")
    return counts


def score(history: pl.DataFrame, fc: pl.DataFrame, cutoff: dt.date) -> pl.DataFrame:
    """level, ahead, abs_err, actual, inside for the total and lane rows of one forecast."""
    monthly = grain_history(history, "month")
    lane = (
        fc.filter(pl.col("level") == "lane")
        .join(
            monthly.select("origin", "destination", "date", pl.col("volume").alias("actual")),
            on=["origin", "destination", "date"],
            how="left",
        )
        .with_columns(pl.col("actual").fill_null(0.0))
    )
    total = fc.filter(pl.col("level") == "total").join(
        monthly.group_by("date").agg(pl.col("volume").sum().alias("actual")), on="date"
    )
    start = cutoff + dt.timedelta(days=1)
    both = pl.concat([lane.select(total.columns), total], how="vertical_relaxed")
    return both.select(
        "level",
        ((pl.col("date").dt.year() - start.year) * 12 + pl.col("date").dt.month() - start.month + 1)
        .cast(pl.Int64)
        .alias("ahead"),
        (pl.col("actual") - pl.col("forecast")).abs().alias("abs_err"),
        pl.col("actual").cast(pl.Float64),
        ((pl.col("actual") >= pl.col("lo_80")) & (pl.col("actual") <= pl.col("hi_80"))).alias(
            "inside"
        ),
    )


@dataclass(frozen=True)
class Evaluation:
    """One set's scores (level, ahead, abs_err, actual, inside, method, seconds) and model
    labels (method, level, model, series: summed over cutoffs)."""

    scores: pl.DataFrame
    models: pl.DataFrame


def evaluate(
    name: str, history: pl.DataFrame, months: int, cuts: list[dt.date], fit_years: int | None
) -> Evaluation:
    """Every method's scores and model labels at every cutoff, with its seconds. With
    `fit_years`, each cutoff trains on that many whole years of months before it only."""
    rows, labels = [], []
    # An untimed run first, so that no method's seconds hold the libraries' imports.
    run("monthly", history.filter(pl.col("date") <= cuts[0]), cuts[0], months)
    for cutoff in cuts:
        train = history.filter(pl.col("date") <= cutoff)
        if fit_years is not None:
            first = add_months(cutoff, -12 * fit_years)  # a month end: whole months after
            train = train.filter(pl.col("date") > first)
        for method in METHODS:
            started = time.perf_counter()
            fc = run(method, train, cutoff, months)
            seconds = time.perf_counter() - started
            print(f"  {name} {cutoff} {method}: {seconds:.1f} s", file=sys.stderr)
            labels.append(models(method, fc))
            rows.append(
                score(history, fc, cutoff).with_columns(
                    pl.lit(method).alias("method"), pl.lit(seconds).alias("seconds")
                )
            )
    got = pl.concat(labels).group_by("method", "level", "model").agg(pl.col("series").sum())
    return Evaluation(pl.concat(rows), got.sort("method", "level", "model"))


def report(name: str, result: Evaluation) -> None:
    """Model labels per method, WAPE per month ahead (total, lane), lane 80% coverage,
    overall and ratios."""
    print(f"\n## {name}")
    print("series per model label (total and lane rows, summed over cutoffs)")
    print(result.models)
    scores = result.scores
    per = scores.group_by("method", "level", "ahead").agg(
        (pl.col("abs_err").sum() / pl.col("actual").sum()).alias("wape"),
        pl.col("inside").mean().alias("coverage80"),
    )
    for level in ("total", "lane"):
        table = (
            per.filter(pl.col("level") == level)
            .pivot(on="method", index="ahead", values="wape")
            .sort("ahead")
            .select("ahead", *METHODS)
        )
        print(f"WAPE per month ahead, {level} level")
        print(table)
    cover = (
        per.filter(pl.col("level") == "lane")
        .pivot(on="method", index="ahead", values="coverage80")
        .sort("ahead")
        .select("ahead", *METHODS)
    )
    print("lane 80% coverage per month ahead")
    print(cover)
    overall = (
        scores.group_by("method", "level")
        .agg(
            (pl.col("abs_err").sum() / pl.col("actual").sum()).alias("wape"),
            pl.col("inside").mean().alias("coverage80"),
        )
        .sort("level", "method")
    )
    seconds = scores.group_by("method").agg(pl.col("seconds").unique().sum())
    base = overall.filter(pl.col("method") == "temporal").select(
        "level", pl.col("wape").alias("temporal_wape")
    )
    overall = (
        overall.join(base, on="level")
        .with_columns((pl.col("wape") / pl.col("temporal_wape")).alias("wape_vs_temporal"))
        .drop("temporal_wape")
        .join(seconds, on="method")
    )
    print("overall (pooled over months ahead and cutoffs); wape_vs_temporal > 1: temporal wins")
    print(overall)


def birthdays() -> pl.DataFrame | None:
    path = REAL / "birthdays_long.parquet"
    if not path.exists():
        print(f"note: {path} is missing; birthdays skipped", file=sys.stderr)
        return None
    return pl.read_parquet(path)


def sample() -> pl.DataFrame:
    from mmplan.synthetic import SampleConfig
    from mmplan.synthetic import sample as make_sample

    cfg = SampleConfig(
        seed=11, regions=1, fcs=1, scs=2, dss=4, days=1300, start=dt.date(2023, 1, 1)
    )
    return make_sample(cfg)["history"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="birthdays,sample")
    parser.add_argument("--cutoffs", type=int, default=4)
    parser.add_argument("--fit-years", type=int, default=4)
    args = parser.parse_args()
    pl.Config.set_tbl_rows(30)
    pl.Config.set_float_precision(3)
    for name in args.sets.split(","):
        if name == "birthdays":
            history, months, step, years = birthdays(), 16, 3, args.fit_years
        else:
            history, months, step, years = sample(), 12, 1, None
        if history is None:
            continue
        cuts = cutoffs(history, months, args.cutoffs, step)
        lanes = history.select("origin", "destination").unique().height
        print(f"{name}: {lanes} lanes, cutoffs {', '.join(map(str, cuts))}", file=sys.stderr)
        result = evaluate(name, history, months, cuts, years)
        report(f"{name}: {months} months ahead, {len(cuts)} cutoffs", result)


if __name__ == "__main__":
    main()
