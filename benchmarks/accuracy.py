"""Accuracy on real data: mmplan's backtest against the bare libraries, on the same cutoffs.

For each data set (`--sets`, default all):

- `pizza`, `birthdays`: the real daily histories in ../shared/data/real/ (beside the
  checkout; see its README), skipped with a note when the file is missing;
- `sample`: the shipped data/sample/history.parquet;
- `sample-default`: a default-size `mmplan sample` network (about 939 lanes, 730 days),
  generated in memory with `mmplan.synthetic.sample(SampleConfig())`.

Cutoffs are mmplan's own (`mmplan.evaluate.cutoffs`): `--windows` (12) cutoffs `--step` (7)
days apart, the last `--horizon` (28) days before the history ends, at least
2 x season_length days of training before the first, as `mmplan backtest` picks them.
Every pipeline is scored on exactly these cutoffs:

- `mmplan`: `mmplan.evaluate.backtest(history, config)` with the default config, its windows,
  step and horizon set to the above; its primary run's points are scored. Each `--config FILE`
  (repeatable) adds a variant named after the file. Its seconds are the whole backtest's,
  which also runs the SeasonalNaive baseline and measures calibration (mmplan's API has no
  way to run the primary alone).
- bare pipelines, built by hand like a planner would: each lane zero-filled daily from its
  first row to the cutoff, `hierarchicalforecast.utils.aggregate` to total -> origin -> lane,
  one `StatsForecast(models=[m], freq="1d", n_jobs=-1).forecast(h, level=[80, 95],
  fitted=True)` and `HierarchicalReconciliation([r]).reconcile(level=[80, 95],
  intervals_method="normality")`: SeasonalNaive(7) + BottomUp, AutoETS(7) + BottomUp,
  AutoETS(7) + MinTrace(mint_shrink) and MSTL + BottomUp (seasons [7, 365] when the training
  window holds at least 730 days, else [7]). Nothing is clipped; negative values are counted.
  AutoETS is fitted once per cutoff and its fit time counted in both AutoETS pipelines.

Scoring (one function for every pipeline): pooled WAPE = sum |actual - forecast| / sum actual
at the lane and the total level, and the share of points inside the 80% and 95% intervals
at the total, origin and lane levels. Actuals are mmplan's (`mmplan.evaluate.actuals`: a lane
with no row on a date carried 0). Only series that existed at the cutoff are scored: mmplan
scores a lane first seen after a cutoff as a zero forecast (model "Zero/new"); the bare
pipelines cannot forecast it either, so those points are dropped for every pipeline (the
count and their volume are printed). Upper levels keep their full actuals, new lanes
included, the same for every pipeline.

Bare results are cached per (set, windows, step, horizon, data) under `--cache`
(out/accuracy-cache/), so a new `--config` variant costs only its mmplan run.

    .venv/bin/python benchmarks/accuracy.py [--sets pizza,birthdays,sample,sample-default]
        [--windows 12] [--step 7] [--horizon 28] [--config FILE ...] [--skip-default]
        [--points SET=DIR ...] [--json PATH] [--cache DIR] [--no-cache]

`--points SET=DIR` scores a backtest already written by `mmplan backtest HISTORY -o DIR
--windows W` (same step and horizon) on SET, as `mmplan[DIR's name]`, without running it
again (a 925-lane backtest takes a quarter of an hour).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from mmplan.config import Config, ForecastConfig, SampleConfig, load_config
from mmplan.evaluate import NEW_MODEL, actuals, backtest, cutoffs
from mmplan.forecasting.frequency import season

REPO = Path(__file__).resolve().parents[1]
# The real histories, laid beside the checkout (not shipped with mmplan).
REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SETS = ["pizza", "birthdays", "sample", "sample-default"]
LEVELS = ["total", "origin", "lane"]
INTERVALS = [80, 95]
BARE = [
    "SeasonalNaive+BottomUp",
    "AutoETS+BottomUp",
    "AutoETS+MinTrace(mint_shrink)",
    "MSTL+BottomUp",
]
# Bump when the bare pipelines or their points change, so old caches are not read.
CACHE_VERSION = 1
POINT_COLS = [
    "level",
    "unique_id",
    "cutoff",
    "date",
    "forecast",
    *[f"{s}_{p}" for p in INTERVALS for s in ("lo", "hi")],
]


@dataclass
class PipelineRun:
    """One pipeline's forecasts on every cutoff of a set, and what it cost."""

    name: str
    points: pl.DataFrame  # POINT_COLS
    seconds: float
    negatives: dict[str, int] = field(default_factory=dict)


@dataclass
class Score:
    """A pipeline's pooled metrics on a set's common points."""

    pipeline: str
    lane_wape: float | None
    total_wape: float | None
    origin_wape: float | None
    coverage: dict[str, dict[str, float | None]]  # level -> "80"/"95" -> share
    points: int
    seconds: float
    negatives: dict[str, int]
    lane_ratio: float | None = None
    total_ratio: float | None = None


# ---------------------------------------------------------------------------- data sets


def load_set(name: str) -> pl.DataFrame | None:
    """The history of a data set, or None (with a note) when its file is missing."""
    if name == "sample-default":
        from mmplan.synthetic import sample

        return sample(SampleConfig())["history"]
    path = REPO / "data" / "sample" / "history.parquet" if name == "sample" else None
    if name in ("pizza", "birthdays"):
        path = REAL_DIR / f"{name}.parquet"
    if path is None:
        raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    if not path.is_file():
        print(f"note: {name}: {path} not found, skipped")
        return None
    return pl.read_parquet(path)


def set_cutoffs(history: pl.DataFrame, windows: int, step: int, horizon: int) -> list[dt.date]:
    """mmplan's rolling-origin cutoffs, with the minimum training window mmplan uses."""
    dates = history.get_column("date")
    start, end = cast(dt.date, dates.min()), cast(dt.date, dates.max())
    min_train = 2 * season(ForecastConfig())  # as mmplan.evaluate.run_backtest (daily sets)
    return cutoffs(start, end, windows, step, horizon, min_train)


def fingerprint(history: pl.DataFrame) -> str:
    """A cheap content key for the cache (rows hashed, summed with wrap-around)."""
    hashed = history.sort("origin", "destination", "date").hash_rows(seed=0).to_numpy()
    return f"{history.height}-{int(hashed.sum(dtype=np.uint64)):016x}"


# ---------------------------------------------------------------------------- common points


def truth(history: pl.DataFrame) -> pl.DataFrame:
    """Actuals (unique_id, level, date, actual) at total/origin/lane, mmplan's ids."""
    y, series = actuals(history, ForecastConfig(hierarchy=[["origin"]]))
    return y.rename({"ds": "date", "y": "actual"}).join(series, on="unique_id")


def known_keys(
    history: pl.DataFrame, truth_df: pl.DataFrame, cuts: list[dt.date], horizon: int
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every (unique_id, level, cutoff, date) to score: the series that existed at each
    cutoff, over its horizon; and what dropping the others (new after the cutoff) costs."""
    starts = history.group_by("origin", "destination").agg(pl.col("date").min().alias("start"))
    lane_start = starts.select(
        pl.concat_str([pl.lit("lane:"), "origin", pl.lit("/"), "destination"]).alias("unique_id"),
        "start",
    )
    origin_start = starts.group_by("origin").agg(pl.col("start").min())
    origin_start = origin_start.select(
        pl.concat_str([pl.lit("origin:"), "origin"]).alias("unique_id"), "start"
    )
    total_start = pl.DataFrame({"unique_id": ["total"], "start": [starts["start"].min()]})
    start_of = pl.concat([lane_start, origin_start, total_start])
    parts = []
    for cutoff in cuts:
        last = cutoff + dt.timedelta(days=horizon)
        window = truth_df.filter((pl.col("date") > cutoff) & (pl.col("date") <= last))
        parts.append(window.with_columns(pl.lit(cutoff).alias("cutoff")))
    keyed = pl.concat(parts).join(start_of, on="unique_id")
    new = keyed.filter(pl.col("start") > pl.col("cutoff"))
    lane_all = keyed.filter(pl.col("level") == "lane")
    dropped = {
        "points": new.height,
        "lane_points": lane_all.height,
        "actual": float(new["actual"].sum()),
        "lane_actual": float(lane_all["actual"].sum()),
    }
    keys = keyed.filter(pl.col("start") <= pl.col("cutoff")).drop("start")
    return keys, dropped


def common_keys(keys: pl.DataFrame, runs: list[PipelineRun]) -> tuple[pl.DataFrame, dict[str, int]]:
    """The points every pipeline forecast, and per pipeline how many of `keys` it lacked.

    mmplan forecasts from the last date of the rows up to a cutoff, so when the cutoff day
    itself has no rows (pizza: the shop closed) its forecast starts on the cutoff and ends a
    day short; those points are dropped for every pipeline rather than scored as zeros."""
    on = ["unique_id", "cutoff", "date"]
    lacked = {}
    common = keys
    for r in runs:
        have = r.points.select(on)
        lacked[r.name] = keys.height - keys.join(have, on=on, how="semi").height
        common = common.join(have, on=on, how="semi")
    return common, {k: v for k, v in lacked.items() if v}


def score(name: str, run: PipelineRun, keys: pl.DataFrame) -> Score:
    """Pooled WAPE and coverage of one pipeline on the common points `keys`."""
    pts = keys.join(run.points.drop("level"), on=["unique_id", "cutoff", "date"], how="left")
    missing = pts.filter(pl.col("forecast").is_null()).height
    if missing:
        print(f"warning: {name}: {missing} of {pts.height} points have no forecast (scored as 0)")
    pts = pts.with_columns(pl.exclude("unique_id", "level", "cutoff", "date").fill_null(0.0))
    err = (pl.col("forecast") - pl.col("actual")).abs()
    per = pts.group_by("level").agg(
        (err.sum() / pl.col("actual").sum()).alias("wape"),
        *[
            pl.col("actual").is_between(pl.col(f"lo_{p}"), pl.col(f"hi_{p}")).mean().alias(str(p))
            for p in INTERVALS
        ],
    )
    rows = {r["level"]: r for r in per.iter_rows(named=True)}

    def wape(level: str) -> float | None:
        return rows[level]["wape"] if level in rows else None

    coverage = {
        lv: {str(p): rows[lv][str(p)] if lv in rows else None for p in INTERVALS} for lv in LEVELS
    }
    return Score(
        run.name,
        wape("lane"),
        wape("total"),
        wape("origin"),
        coverage,
        pts.height,
        run.seconds,
        run.negatives,
    )


# ---------------------------------------------------------------------------- bare pipelines


def training_frame(history: pl.DataFrame, cutoff: dt.date) -> Any:
    """A planner's training frame: each lane zero-filled daily from its first row to the
    cutoff, with the total and origin columns `aggregate` needs (pandas)."""
    train = history.filter(pl.col("date") <= cutoff)
    spans = train.group_by("origin", "destination").agg(pl.col("date").min().alias("start"))
    grid = spans.select(
        "origin", "destination", pl.date_ranges("start", pl.lit(cutoff)).alias("ds")
    ).explode("ds")
    daily = (
        grid.join(
            train.select(
                "origin", "destination", pl.col("date").alias("ds"), pl.col("volume").alias("y")
            ),
            on=["origin", "destination", "ds"],
            how="left",
        )
        .with_columns(pl.col("y").cast(pl.Float64).fill_null(0.0), pl.lit("total").alias("total"))
        .sort("origin", "destination", "ds")
    )
    return daily.to_pandas()


def mmplan_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """hierarchicalforecast's ids (total, total/O, total/O/D) as mmplan's, with the level."""
    parts = pl.col("unique_id").str.splitn("/", 3)
    n = pl.col("unique_id").str.count_matches("/")
    return frame.with_columns(
        pl.when(n == 0)
        .then(pl.lit("total"))
        .when(n == 1)
        .then(pl.lit("origin"))
        .otherwise(pl.lit("lane"))
        .alias("level"),
        pl.when(n == 0)
        .then(pl.lit("total"))
        .when(n == 1)
        .then(pl.concat_str([pl.lit("origin:"), parts.struct.field("field_1")]))
        .otherwise(
            pl.concat_str(
                [
                    pl.lit("lane:"),
                    parts.struct.field("field_1"),
                    pl.lit("/"),
                    parts.struct.field("field_2"),
                ]
            )
        )
        .alias("unique_id"),
    )


def base_models(train_days: int) -> dict[str, Any]:
    """The statsforecast models the bare pipelines fit, by name."""
    from statsforecast import models as sm

    seasons = [7, 365] if train_days >= 730 else [7]
    return {
        "SeasonalNaive": sm.SeasonalNaive(season_length=7),
        "AutoETS": sm.AutoETS(season_length=7),
        "MSTL": sm.MSTL(season_length=seasons),
    }


def reconciled_points(
    rec: Any, model: str, method: str, cutoff: dt.date
) -> tuple[pl.DataFrame, dict[str, int]]:
    """One reconciled forecast as points (POINT_COLS), and its negative values counted."""
    frame = pl.from_pandas(rec.reset_index() if "unique_id" not in rec.columns else rec)
    col = next(
        c
        for c in frame.columns
        if c.startswith(f"{model}/{method}") and "-lo-" not in c and "-hi-" not in c
    )
    out = frame.select(
        "unique_id",
        pl.col("ds").cast(pl.Date).alias("date"),
        pl.col(col).alias("forecast"),
        *[pl.col(f"{col}-{s}-{p}").alias(f"{s}_{p}") for p in INTERVALS for s in ("lo", "hi")],
    )
    out = mmplan_ids(out).with_columns(pl.lit(cutoff).alias("cutoff")).select(POINT_COLS)
    negatives = {c: int((out[c] < 0).sum()) for c in ("forecast", *[f"lo_{p}" for p in INTERVALS])}
    return out, negatives


def bare_cutoff(
    history: pl.DataFrame, cutoff: dt.date, horizon: int, start: dt.date
) -> dict[str, tuple[pl.DataFrame, float, dict[str, int]]]:
    """Every bare pipeline at one cutoff: points, seconds, negative counts by pipeline."""
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import BottomUp, MinTrace
    from hierarchicalforecast.utils import aggregate
    from statsforecast import StatsForecast

    t0 = time.perf_counter()
    df = training_frame(history, cutoff)
    y_df, s_df, tags = aggregate(
        df, [["total"], ["total", "origin"], ["total", "origin", "destination"]]
    )
    prep = time.perf_counter() - t0
    models = base_models((cutoff - start).days + 1)
    out: dict[str, tuple[pl.DataFrame, float, dict[str, int]]] = {}
    for pipeline in BARE:
        name, method = pipeline.split("+")
        t0 = time.perf_counter()
        sf = StatsForecast(models=[models[name]], freq="1d", n_jobs=-1)
        y_hat = sf.forecast(df=y_df, h=horizon, level=INTERVALS, fitted=True)
        fitted = sf.forecast_fitted_values()
        fit_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        reconciler = BottomUp() if method == "BottomUp" else MinTrace(method="mint_shrink")
        rec = HierarchicalReconciliation([reconciler]).reconcile(
            Y_hat_df=y_hat,
            S_df=s_df,
            tags=tags,
            Y_df=fitted,
            level=INTERVALS,
            intervals_method="normality",
        )
        label = "BottomUp" if method == "BottomUp" else "MinTrace"
        pts, neg = reconciled_points(rec, name, label, cutoff)
        out[pipeline] = (pts, prep + fit_time + time.perf_counter() - t0, neg)
    return out


def run_bare(history: pl.DataFrame, cuts: list[dt.date], horizon: int) -> list[PipelineRun]:
    """The bare pipelines on every cutoff."""
    warnings.simplefilter("ignore")
    start = cast(dt.date, history.get_column("date").min())
    parts: dict[str, list[pl.DataFrame]] = {p: [] for p in BARE}
    seconds = dict.fromkeys(BARE, 0.0)
    negatives: dict[str, dict[str, int]] = {p: {} for p in BARE}
    for k, cutoff in enumerate(cuts):
        print(f"  bare: cutoff {k + 1}/{len(cuts)} {cutoff}", file=sys.stderr, flush=True)
        for pipeline, (pts, sec, neg) in bare_cutoff(history, cutoff, horizon, start).items():
            parts[pipeline].append(pts)
            seconds[pipeline] += sec
            for c, n in neg.items():
                negatives[pipeline][c] = negatives[pipeline].get(c, 0) + n
    return [PipelineRun(p, pl.concat(parts[p]), seconds[p], negatives[p]) for p in BARE]


def cached_bare(
    history: pl.DataFrame, key: str, cuts: list[dt.date], horizon: int, cache: Path | None
) -> list[PipelineRun]:
    """`run_bare`, read from / written to the cache directory when one is given."""
    stem = cache / f"{key}-{fingerprint(history)}-v{CACHE_VERSION}" if cache else None
    if stem is not None and stem.with_suffix(".json").is_file():
        meta: dict[str, Any] = json.loads(stem.with_suffix(".json").read_text())
        points = pl.read_parquet(stem.with_suffix(".parquet"))
        print(f"  bare: from cache {stem}", file=sys.stderr)
        return [
            PipelineRun(
                p,
                points.filter(pl.col("pipeline") == p).drop("pipeline"),
                meta[p]["seconds"],
                meta[p]["negatives"],
            )
            for p in BARE
        ]
    runs = run_bare(history, cuts, horizon)
    if stem is not None:
        stem.parent.mkdir(parents=True, exist_ok=True)
        pl.concat(
            [r.points.with_columns(pl.lit(r.name).alias("pipeline")) for r in runs]
        ).write_parquet(stem.with_suffix(".parquet"))
        meta = {r.name: {"seconds": r.seconds, "negatives": r.negatives} for r in runs}
        meta["cutoffs"] = [str(c) for c in cuts]
        stem.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return runs


# ---------------------------------------------------------------------------- mmplan


def run_mmplan(
    name: str, cfg: Config, history: pl.DataFrame, cuts: list[dt.date], horizon: int
) -> tuple[PipelineRun, dict[str, Any]]:
    """mmplan's backtest on the same cutoffs; its primary run's points, and a check that
    its cutoffs and actuals are the benchmark's."""
    cfg = cfg.model_copy(
        update={
            "backtest": cfg.backtest.model_copy(
                update={"windows": len(cuts), "step": _step(cuts), "horizon": horizon}
            )
        }
    )
    print(f"  {name}: backtest", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    result = backtest(history, cfg)
    seconds = time.perf_counter() - t0
    got = result.metrics_json["cutoffs"]
    if got != [str(c) for c in cuts]:
        raise SystemExit(f"{name}: mmplan's cutoffs {got} are not the benchmark's {cuts}")
    primary = result.points.filter(pl.col("run") == cfg.forecast.model)
    new_points = primary.filter(pl.col("model") == NEW_MODEL).height
    pts = primary.filter(pl.col("level").is_in(LEVELS) & (pl.col("model") != NEW_MODEL))
    negatives = {c: int((pts[c] < 0).sum()) for c in ("forecast", *[f"lo_{p}" for p in INTERVALS])}
    info = {
        "new_series_points": new_points,
        "actual": pts.select("unique_id", "cutoff", "date", "actual"),
    }
    return PipelineRun(name, pts.select(POINT_COLS), seconds, negatives), info


def backtest_points(folder: Path, cuts: list[dt.date]) -> tuple[PipelineRun, dict[str, Any]]:
    """The primary run of a backtest already written by `mmplan backtest ... --windows W`
    (`--points SET=DIR`), as run_mmplan would give it: the same scoring without the hours
    of a second backtest. Its cutoffs must be the benchmark's."""
    if not (folder / "metrics.json").is_file() or not (folder / "points.parquet").is_file():
        raise SystemExit(f"{folder}: not a backtest folder (no metrics.json and points.parquet)")
    record = json.loads((folder / "metrics.json").read_text())
    if record["cutoffs"] != [str(c) for c in cuts]:
        raise SystemExit(f"{folder}: cutoffs {record['cutoffs']} are not the benchmark's {cuts}")
    points = pl.read_parquet(folder / "points.parquet")
    primary = points.filter(pl.col("run") == record["primary"])
    pts = primary.filter(pl.col("level").is_in(LEVELS) & (pl.col("model") != NEW_MODEL))
    negatives = {c: int((pts[c] < 0).sum()) for c in ("forecast", *[f"lo_{p}" for p in INTERVALS])}
    info = {
        "new_series_points": primary.filter(pl.col("model") == NEW_MODEL).height,
        "actual": pts.select("unique_id", "cutoff", "date", "actual"),
    }
    return PipelineRun(points_name(folder), pts.select(POINT_COLS), math.nan, negatives), info


def points_name(folder: Path) -> str:
    """The table's name for a `--points` backtest folder."""
    return f"mmplan[{folder.name}]"


def points_arg(value: str) -> tuple[str, Path]:
    """`--points SET=DIR`, refused with a usage error (not a traceback) otherwise."""
    name, sep, folder = value.partition("=")
    if not sep or name not in SETS or not folder:
        raise argparse.ArgumentTypeError(f"{value!r}: expected SET=DIR, SET one of {SETS}")
    return name, Path(folder)


def _step(cuts: list[dt.date]) -> int:
    return (cuts[1] - cuts[0]).days if len(cuts) > 1 else 7


def check_actuals(name: str, mm_actual: pl.DataFrame, keys: pl.DataFrame) -> float:
    """Largest difference between mmplan's actuals and the benchmark's on common points."""
    both = keys.join(mm_actual, on=["unique_id", "cutoff", "date"], suffix="_mm")
    diff = cast(float, (both["actual"] - both["actual_mm"]).abs().max() or 0.0)
    if diff > 1e-6:
        print(f"warning: {name}: mmplan's actuals differ from the benchmark's by up to {diff}")
    return diff


# ---------------------------------------------------------------------------- report


def with_ratios(scores: list[Score]) -> list[Score]:
    """Each mmplan run's lane and total WAPE over the best bare pipeline's (by that level)."""
    bare = [s for s in scores if s.pipeline in BARE]
    best_lane = min((s.lane_wape for s in bare if s.lane_wape is not None), default=None)
    best_total = min((s.total_wape for s in bare if s.total_wape is not None), default=None)
    for s in scores:
        if s.pipeline in BARE:
            continue
        if best_lane and s.lane_wape is not None:
            s.lane_ratio = s.lane_wape / best_lane
        if best_total and s.total_wape is not None:
            s.total_ratio = s.total_wape / best_total
    return scores


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def table(name: str, lanes: int, days: int, scores: list[Score], dropped: dict[str, Any]) -> str:
    """The markdown table of one set."""
    cov = [f"cov{p} {lv}" for p in INTERVALS for lv in LEVELS]
    head = ["pipeline", "lane WAPE", "total WAPE", *cov, "seconds", "ratio lane / total"]
    lines = [
        f"### {name}: {lanes} lanes, {days} days",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for s in scores:
        covs = [_pct(s.coverage[lv][str(p)]) for p in INTERVALS for lv in LEVELS]
        ratio = "" if s.lane_ratio is None else f"{s.lane_ratio:.3f} / {_f(s.total_ratio)}"
        neg = " (neg)" if s.negatives.get("forecast") else ""
        cells = [s.pipeline + neg, _f(s.lane_wape), _f(s.total_wape), *covs]
        secs = f"{s.seconds:.1f}" if math.isfinite(s.seconds) else "(--points)"
        lines.append("| " + " | ".join([*cells, secs, ratio]) + " |")
    lines.append("")
    lines.append(
        f"Dropped (series new after a cutoff): {dropped['points']} points, "
        f"{dropped['actual']:,.0f} of {dropped['lane_actual']:,.0f} lane volume; "
        "(neg): some point forecasts < 0."
    )
    if dropped["unforecast"]:
        lines.append(
            f"Dropped (not forecast by every pipeline): {dropped['unforecast']} points "
            "missing by pipeline; each pipeline is scored on the points all of them have."
        )
    return "\n".join(lines)


def bench_set(name: str, args: argparse.Namespace, variants: dict[str, Config]) -> dict[str, Any]:
    """Every pipeline on one set: the scores, the table and what the JSON keeps."""
    history = load_set(name)
    if history is None:
        return {}
    cuts = set_cutoffs(history, args.windows, args.step, args.horizon)
    truth_df = truth(history)
    keys, dropped = known_keys(history, truth_df, cuts, args.horizon)
    key = f"{name}-w{args.windows}-s{args.step}-h{args.horizon}"
    runs = cached_bare(history, key, cuts, args.horizon, None if args.no_cache else args.cache)
    checks: dict[str, Any] = {}
    given = [backtest_points(d, cuts) for n, d in args.points if n == name]
    ran = (run_mmplan(vname, cfg, history, cuts, args.horizon) for vname, cfg in variants.items())
    for run, info in [*given, *ran]:
        vname = run.name
        checks[vname] = {
            "new_series_points": info["new_series_points"],
            "max_actual_diff": check_actuals(vname, info["actual"], keys),
        }
        runs.insert(len(checks) - 1, run)
    keys, dropped["unforecast"] = common_keys(keys, runs)
    scores = with_ratios([score(name, r, keys) for r in runs])
    lanes = history.select("origin", "destination").n_unique()
    days = history.get_column("date").n_unique()
    text = table(name, lanes, days, scores, dropped)
    print(text + "\n", flush=True)
    return {
        "lanes": lanes,
        "days": days,
        "cutoffs": [str(c) for c in cuts],
        "dropped": dropped,
        "mmplan_checks": checks,
        "scores": [asdict(s) for s in scores],
        "table": text,
    }


def summary(results: dict[str, dict[str, Any]], variants: list[str]) -> list[str]:
    """Per mmplan variant: the mean over sets of its lane WAPE / the best bare lane WAPE."""
    lines = []
    for v in variants:
        ratios = [
            s["lane_ratio"]
            for r in results.values()
            for s in r["scores"]
            if s["pipeline"] == v and s["lane_ratio"] is not None
        ]
        if ratios:
            mean = sum(ratios) / len(ratios)
            lines.append(
                f"summary: {v}: mean over {len(ratios)} sets of lane WAPE / best bare lane "
                f"WAPE = {mean:.3f} (target <= 0.97)"
            )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS)
    )
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--step", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        help="an mmplan config to compare (repeatable; named after the file)",
    )
    parser.add_argument("--skip-default", action="store_true", help="no default-config run")
    parser.add_argument(
        "--points",
        type=points_arg,
        action="append",
        default=[],
        metavar="SET=DIR",
        help="also score the backtest folder DIR (its points.parquet) on SET",
    )
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--cache", type=Path, default=REPO / "out" / "accuracy-cache")
    parser.add_argument("--no-cache", action="store_true")
    return parser.parse_args(argv)


def variants_of(args: argparse.Namespace) -> dict[str, Config]:
    """The mmplan configs to run, by the name the table shows."""
    variants: dict[str, Config] = {} if args.skip_default else {"mmplan": Config()}
    for path in args.config:
        variants[f"mmplan[{path.stem}]"] = load_config(path)
    return variants


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    variants = variants_of(args)
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        result = bench_set(name, args, variants)
        if result:
            results[name] = result
    named = [points_name(d) for _, d in args.points]
    lines = summary(results, [*variants, *named])
    wall = time.perf_counter() - t0
    print("\n".join([*lines, f"wall time of the whole run: {wall:.0f} s"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "windows": args.windows,
            "step": args.step,
            "horizon": args.horizon,
            "variants": {v: c.as_record()["forecast"] for v, c in variants.items()},
            "sets": results,
            "summary": lines,
            "wall_seconds": wall,
        }
        args.json.write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
