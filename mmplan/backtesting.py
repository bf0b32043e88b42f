"""Rolling-origin backtests of the forecast pipeline, scored by pooled zero-safe metrics.

`backtest(history, config)` picks `[backtest].windows` cutoffs, `step` days apart, the last
one `horizon` days before the history ends. At each cutoff it calls
`mmplan.forecasting.forecast(history.filter(date <= cutoff), ...)`: the very pipeline of
`mmplan forecast` (hierarchy, rules, base models, reconciliation, intervals), fed only the
rows up to the cutoff, so nothing after a cutoff can reach that cutoff's forecasts.

Runs. The pipeline is run once per cutoff for each of: the configured `[forecast].model`
(the *primary* run, the one gates judge), `SeasonalNaive` (the baseline, always computed
so "better than naive" is always visible) and, with `select = true`, every candidate.
A model that plays several roles is run once. Series that the rules give another model
(closed, short, sparse) get it in every run, exactly as in `mmplan forecast`.

Actuals are the history's lane volumes with missing days as zeros, summed to every level
by the forecast's own helpers (`lane_series`, `build_hierarchy`, `aggregate`).

New series. A lane (or a whole origin, region, ...) whose first row is after a cutoff is
not in that cutoff's forecast: the pipeline could not know it. It is still scored, as a
forecast of zero with a zero-width interval and model ``Zero/new``, because a plan built
from that forecast would have carried nothing for it. So every level is scored on the
same volume (a parent's actual is the sum of its children's, new lanes included) and the
points stay coherent; filter ``model != "Zero/new"`` to score known series only.

Metrics, pooled over all points of a group (run x level, per horizon step and overall),
so a large lane weighs more than a small one and zero-volume lanes need no special case:

- WAPE = sum |forecast - actual| / sum actual;
- bias = sum (forecast - actual) / sum actual (positive: over-forecast);
- MASE = sum |error| / sum of the in-sample seasonal-naive MAE of each point's series,
  measured on the training window of its cutoff (the scale statsforecast's MASE uses);
- coverage_<p> = share of points with lo_<p> <= actual <= hi_<p> (nominal: p / 100);
- skill = 1 - WAPE / WAPE of the seasonal-naive run on the same points (0: no better than
  naive; 0.2: a fifth less error; negative: worse).

Every ratio is zero-safe: with a zero denominator it is 0 when the numerator is 0 too (a
forecast of zero for a lane that carried nothing is perfect) and null otherwise (never
NaN or inf, which JSON cannot hold). A gate treats a null measurement as failed.

Champions (`select = true`): per series (or per level, `select_by`), the candidate with
the lowest backtest WAPE. For one series the WAPE denominator is the same for every
candidate, so this is the lowest sum of absolute errors, which is also zero-safe. Ties go
to the candidate listed first. ``Zero/new`` points take no part. The table (unique_id,
level, model, wape) is what `mmplan forecast --champions` reads.

Interval calibration (`calibrate`): per level, rule and interval level p, the factor k by
which the primary run's interval half-widths would have had to be scaled to cover p% of the
backtest's points: the split-conformal quantile of |actual - forecast| / (hi_p - forecast),
the ceil((n + 1) p / 100)-th smallest of the n ratios (the largest when n is too small for
that). Base models' own intervals come from in-sample residuals, which understate what a
peak or a level shift does to the aggregates; these factors are measured on out-of-sample
errors over the backtest's horizon. Rules (regular, short, sparse) get factors of their own
because their intervals differ in kind: a sparse lane's ratios would otherwise set the width
of every regular lane. Rule ``all`` pools the level, for a series whose rule had no points.
The table, which also names the model, lanes mode, reconciliation and horizon it was measured
for, is what `mmplan forecast --calibration` reads.

Gates (`[gate]`): rules keyed by level, checked on the primary run's overall metrics;
see `evaluate_gates`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from mmplan.config import Config, ForecastConfig, GateConfig
from mmplan.errors import ConfigError, DataError
from mmplan.forecasting import aggregate, hierarchy_levels, history_hierarchy, lane_series
from mmplan.tables import CALIBRATION_RULES, check, validate_history

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "backtest",
    "BacktestResult",
    "GateResult",
    "BASELINE_MODEL",
    "NEW_MODEL",
    "cutoffs",
    "actuals",
    "score",
    "compute_metrics",
    "select_champions",
    "calibrate",
    "CALIBRATION_RULES",
    "rule_of_label",
    "check_gate",
    "check_baseline",
    "evaluate_gates",
]

BASELINE_MODEL = "SeasonalNaive"
# Model label of a series that first appears after a cutoff (scored as a zero forecast).
NEW_MODEL = "Zero/new"
METRICS_FORMAT = 1


@dataclass(frozen=True)
class GateResult:
    """One gate rule at one level: what it demands, what was measured, and the verdict.

    `passed` is None when the rule could not be checked (max_regression without a
    baseline); such a rule is reported as skipped and does not fail the gate.
    """

    rule: str
    level: str
    metric: str
    op: str
    threshold: float
    measured: float | None
    passed: bool | None
    detail: str = ""

    @property
    def name(self) -> str:
        return f"{self.rule}[{self.level}]"

    @property
    def status(self) -> str:
        return {True: "pass", False: "FAIL", None: "skipped"}[self.passed]

    def as_record(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "level": self.level,
            "metric": self.metric,
            "op": self.op,
            "threshold": self.threshold,
            "measured": self.measured,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class BacktestResult:
    """What a backtest produced: the tables to write and the gate verdict.

    `metrics_json` is the content of metrics.json (also what a later run reads back
    as its --baseline); `champions` is None unless `[backtest].select` is true;
    `calibration` holds the interval factors of `calibrate`.
    """

    points: pl.DataFrame
    metrics: pl.DataFrame
    metrics_json: dict[str, Any]
    champions: pl.DataFrame | None
    gates: list[GateResult] = field(default_factory=list)
    calibration: pl.DataFrame | None = None

    @property
    def passed(self) -> bool:
        """True when no gate rule failed (skipped rules do not fail)."""
        return all(g.passed is not False for g in self.gates)


# --------------------------------------------------------------------------- windows


def cutoffs(
    start: dt.date, end: dt.date, windows: int, step: int, horizon: int, min_train: int
) -> list[dt.date]:
    """Cutoff dates, oldest first; the last leaves exactly `horizon` days of actuals."""
    last = end - dt.timedelta(days=horizon)
    days = [last - dt.timedelta(days=step * k) for k in reversed(range(windows))]
    first_allowed = start + dt.timedelta(days=min_train - 1)
    if days[0] < first_allowed:
        have = (end - start).days + 1
        need = min_train + horizon + step * (windows - 1)
        raise ConfigError(
            f"[backtest] windows = {windows}, step = {step} and horizon = {horizon} need "
            f"{need} days of history ({min_train} to train on before the first cutoff); the "
            f"history has {have} ({start} .. {end}). Lower windows, step or horizon."
        )
    return days


def _runs(cfg: Config) -> list[str]:
    """Models to run at every cutoff: primary, baseline, candidates; each once."""
    models = [cfg.forecast.model, BASELINE_MODEL]
    if cfg.backtest.select:
        models += cfg.backtest.candidates
    return list(dict.fromkeys(models))


def _horizon(cfg: Config) -> int:
    return cfg.backtest.horizon or cfg.forecast.horizon


def _levels(fcfg: ForecastConfig, columns: list[str]) -> list[str]:
    return [name for name, _ in hierarchy_levels(fcfg, columns)]


# --------------------------------------------------------------------------- actuals


def actuals(history: pl.DataFrame, fcfg: ForecastConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Zero-filled actuals (unique_id, ds, y) at every level, and the series table.

    Built like the forecast builds its training series, over the whole history: each lane
    runs from its first row to the history's end, a missing day being a zero.
    """
    daily, _ = lane_series(history)
    hier = history_hierarchy(history, fcfg)
    return aggregate(daily, hier), hier.series.select("unique_id", "level")


def _mase_scale(y: pl.DataFrame, cutoff: dt.date, fcfg: ForecastConfig) -> pl.DataFrame:
    """Per series: mean |y_t - y_(t-m)| over the training window of `cutoff` (MASE's scale)."""
    train = y.filter(pl.col("ds") <= cutoff)
    if fcfg.fit_days is not None:
        train = train.filter(pl.col("ds") > cutoff - dt.timedelta(days=fcfg.fit_days))
    m = fcfg.season_length
    return (
        train.sort("unique_id", "ds")
        .with_columns((pl.col("y") - pl.col("y").shift(m).over("unique_id")).abs().alias("d"))
        .group_by("unique_id")
        .agg(pl.col("d").mean().alias("mase_scale"))
    )


def score(
    fc: pl.DataFrame,
    y: pl.DataFrame,
    series: pl.DataFrame,
    cutoff: dt.date,
    horizon: int,
    scale: pl.DataFrame,
    interval_levels: list[int],
) -> pl.DataFrame:
    """Points of one cutoff's forecast: each forecast row with its actual, plus the series
    that appear only after the cutoff as zero forecasts (module docstring)."""
    interval_cols = [f"{s}_{p}" for p in interval_levels for s in ("lo", "hi")]
    window = y.filter(
        (pl.col("ds") > cutoff) & (pl.col("ds") <= cutoff + dt.timedelta(days=horizon))
    ).rename({"ds": "date", "y": "actual"})
    known = fc.select("unique_id", "level", "date", "forecast", *interval_cols, "model")
    new_ids = (
        window.select("unique_id")
        .unique()
        .join(known.select("unique_id").unique(), on="unique_id", how="anti")
    )
    dates = pl.DataFrame(
        {
            "date": pl.date_range(
                cutoff + dt.timedelta(days=1), cutoff + dt.timedelta(days=horizon), eager=True
            )
        }
    )
    new = (
        new_ids.join(series, on="unique_id")
        .join(dates, how="cross")
        .with_columns(
            pl.lit(0.0).alias("forecast"),
            *[pl.lit(0.0).alias(c) for c in interval_cols],
            pl.lit(NEW_MODEL).alias("model"),
        )
        .select(known.columns)
    )
    return (
        pl.concat([known, new])
        .join(window, on=["unique_id", "date"], how="left")
        .join(scale, on="unique_id", how="left")
        .with_columns(
            pl.col("actual").fill_null(0.0),
            pl.lit(cutoff).alias("cutoff"),
            (pl.col("date") - pl.lit(cutoff)).dt.total_days().cast(pl.Int32).alias("step"),
        )
        .select(
            "unique_id",
            "level",
            "cutoff",
            "date",
            "step",
            "actual",
            "forecast",
            *interval_cols,
            "model",
            "mase_scale",
        )
    )


# --------------------------------------------------------------------------- metrics


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, zero-safe: 0 when both are 0, null when only the denominator is."""
    return (
        pl.when(den > 0)
        .then(num / den)
        .when(num.abs() == 0)
        .then(pl.lit(0.0))
        .otherwise(pl.lit(None, pl.Float64))
    )


def compute_metrics(
    points: pl.DataFrame, interval_levels: list[int], baseline_run: str = BASELINE_MODEL
) -> pl.DataFrame:
    """Pooled metrics per run x level, per step and overall (step null), from points."""
    err = pl.col("forecast") - pl.col("actual")
    sums = [
        pl.len().alias("points"),
        pl.col("actual").sum().alias("sum_actual"),
        err.sum().alias("sum_error"),
        err.abs().sum().alias("sum_abs_error"),
        err.abs().filter(pl.col("mase_scale").is_not_null()).sum().alias("_mase_num"),
        pl.col("mase_scale").sum().alias("_mase_den"),
        *[
            pl.col("actual")
            .is_between(pl.col(f"lo_{p}"), pl.col(f"hi_{p}"))
            .mean()
            .alias(f"coverage_{p}")
            for p in interval_levels
        ],
    ]
    by_step = points.group_by("run", "level", "step").agg(sums)
    overall = (
        points.group_by("run", "level").agg(sums).with_columns(pl.lit(None, pl.Int32).alias("step"))
    )
    table = pl.concat([by_step, overall.select(by_step.columns)])
    naive = table.filter(pl.col("run") == baseline_run).select(
        "level", "step", pl.col("sum_abs_error").alias("_naive")
    )
    table = table.join(naive, on=["level", "step"], how="left", nulls_equal=True)
    return (
        table.with_columns(
            _ratio(pl.col("sum_abs_error"), pl.col("sum_actual")).alias("wape"),
            _ratio(pl.col("sum_error"), pl.col("sum_actual")).alias("bias"),
            _ratio(pl.col("_mase_num"), pl.col("_mase_den")).alias("mase"),
            # Two perfect forecasts are equally good: skill 0, not 1.
            pl.when(pl.col("_naive") > 0)
            .then(1.0 - pl.col("sum_abs_error") / pl.col("_naive"))
            .when(pl.col("sum_abs_error") == 0)
            .then(pl.lit(0.0))
            .otherwise(pl.lit(None, pl.Float64))
            .alias("skill"),
        )
        .select(
            "run",
            "level",
            "step",
            "points",
            "sum_actual",
            "sum_error",
            "sum_abs_error",
            "wape",
            "bias",
            "mase",
            "skill",
            *[f"coverage_{p}" for p in interval_levels],
        )
        .sort("run", "level", "step", nulls_last=True)
    )


def _finite(value: Any) -> Any:
    """JSON-safe number: NaN/inf (which should not occur) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metrics_record(
    metrics: pl.DataFrame, levels: list[str], interval_levels: list[int]
) -> dict[str, Any]:
    """metrics.json's "metrics": run -> level -> overall values and "by_step"."""
    keys = ["wape", "bias", "mase", "skill", *[f"coverage_{p}" for p in interval_levels]]
    keys += ["points", "sum_actual", "sum_abs_error", "sum_error"]
    out: dict[str, Any] = {}
    for row in metrics.iter_rows(named=True):
        level = out.setdefault(row["run"], {}).setdefault(row["level"], {"by_step": {}})
        values = {k: _finite(row[k]) for k in keys}
        if row["step"] is None:
            level.update(values)
        else:
            level["by_step"][str(row["step"])] = values
    # levels in hierarchy order (total first), as the planner reads them
    return {
        run: {lv: by_level[lv] for lv in levels if lv in by_level} for run, by_level in out.items()
    }


# --------------------------------------------------------------------------- calibration


def calibrate(
    points: pl.DataFrame, run: str, levels: list[str], fcfg: ForecastConfig, horizon: int
) -> pl.DataFrame:
    """Interval scale factors per (level, rule, interval) from one run's backtest points.

    A point takes part when its series was known at the cutoff and its interval has width
    (closed series forecast zero with no interval: no factor can widen that). A level with
    no such point keeps factor 1 under rule ``all``; a rule without points gets no row.
    """
    pts = points.filter(
        (pl.col("run") == run) & (pl.col("model") != NEW_MODEL) & pl.col("level").is_in(levels)
    ).with_columns(rule_of_label(pl.col("model")).alias("rule"))
    rows = []
    for p in fcfg.levels:
        half = pl.col(f"hi_{p}") - pl.col("forecast")
        usable = pts.filter(half > 1e-9 * pl.max_horizontal(pl.col("forecast").abs(), 1.0))
        usable = usable.with_columns(
            ((pl.col("actual") - pl.col("forecast")).abs() / half).alias("ratio"),
            (
                (pl.col(f"lo_{p}") <= pl.col("actual")) & (pl.col("actual") <= pl.col(f"hi_{p}"))
            ).alias("inside"),
        )
        groups = pl.concat(
            [usable.with_columns(pl.lit("all").alias("rule")), usable], how="vertical_relaxed"
        )
        stats = groups.group_by("level", "rule").agg(
            pl.col("ratio").sort().alias("ratios"), pl.col("inside").mean().alias("coverage")
        )
        found = {(r["level"], r["rule"]): r for r in stats.iter_rows(named=True)}
        for level in levels:
            for rule in CALIBRATION_RULES:
                r = found.get((level, rule))
                if r is None and rule != "all":
                    continue
                n = len(r["ratios"]) if r else 0
                # Split-conformal rank; with too few points for it, the largest ratio.
                rank = min(math.ceil((n + 1) * p / 100), n)
                rows.append(
                    {
                        "level": level,
                        "rule": rule,
                        "interval": p,
                        "factor": float(r["ratios"][rank - 1]) if n else 1.0,
                        "points": n,
                        "coverage": r["coverage"] if r else None,
                    }
                )
    return pl.DataFrame(
        rows,
        schema={
            "level": pl.String,
            "rule": pl.String,
            "interval": pl.Int64,
            "factor": pl.Float64,
            "points": pl.Int64,
            "coverage": pl.Float64,
        },
    ).with_columns(
        model=pl.lit(fcfg.model),
        lanes=pl.lit(fcfg.lanes),
        reconciliation=pl.lit(fcfg.reconciliation),
        horizon=pl.lit(horizon, pl.Int64),
    )


def rule_of_label(label: pl.Expr) -> pl.Expr:
    """The rule in a forecast's model label: ``<model>/<rule>``, else regular."""
    return (
        pl.when(label.str.contains("/"))
        .then(label.str.split("/").list.last())
        .otherwise(pl.lit("regular"))
    )


# --------------------------------------------------------------------------- champions


def select_champions(
    points: pl.DataFrame, candidates: list[str], select_by: str = "series"
) -> pl.DataFrame:
    """The candidate with the lowest backtest WAPE per series (or per level); see module doc."""
    rank = pl.DataFrame({"run": candidates, "_rank": list(range(len(candidates)))})
    scored = points.filter(
        pl.col("run").is_in(candidates) & (pl.col("model") != NEW_MODEL)
    ).with_columns((pl.col("forecast") - pl.col("actual")).abs().alias("_abs"))
    key = "unique_id" if select_by == "series" else "level"
    per = (
        scored.group_by(key, "run")
        .agg(pl.col("_abs").sum(), pl.col("actual").sum().alias("_act"))
        .join(rank, on="run")
        .sort(key, "_abs", "_rank")
    )
    best = (
        per.group_by(key, maintain_order=True)
        .first()
        .with_columns(_ratio(pl.col("_abs"), pl.col("_act")).alias("wape"))
    )
    series = scored.select("unique_id", "level").unique()
    if select_by == "series":
        chosen = best.join(series, on="unique_id")
    else:
        chosen = series.join(best.drop("unique_id", strict=False), on="level")
    return chosen.select("unique_id", "level", pl.col("run").alias("model"), "wape").sort(
        "level", "unique_id"
    )


# --------------------------------------------------------------------------- gates

# rule -> (metric it checks, comparison); the threshold is the configured value.
RULES = {
    "max_wape": ("wape", "<="),
    "max_abs_bias": ("abs_bias", "<="),
    "min_coverage": ("coverage", ">="),
    "beat_naive_by": ("skill", ">="),
    "max_regression": ("wape_increase", "<="),
}


def _coverage_interval(gate: GateConfig, fcfg: ForecastConfig) -> int | None:
    if gate.coverage_interval is not None:
        return gate.coverage_interval
    return min(fcfg.levels) if fcfg.levels else None


def check_gate(
    gate: GateConfig, fcfg: ForecastConfig, columns: list[str], source: str = "config"
) -> None:
    """ConfigError (78) when a rule names a level the hierarchy does not produce, or a
    coverage interval the forecast does not make. Called before any model is fit."""
    levels = _levels(fcfg, columns)
    for rule in RULES:
        unknown = [lv for lv in getattr(gate, rule) if lv not in levels]
        if unknown:
            raise ConfigError(
                f"{source}: [gate].{rule} names level {', '.join(map(repr, unknown))}, which "
                f"the hierarchy does not produce; levels are {', '.join(levels)} (from "
                "[forecast].hierarchy)."
            )
    if gate.min_coverage or gate.coverage_interval is not None:
        p = _coverage_interval(gate, fcfg)
        if p is None or p not in fcfg.levels:
            raise ConfigError(
                f"{source}: [gate] checks coverage of the {p}% interval (metric "
                f"coverage_{p}), which the forecast does not make; [forecast].levels = "
                f"{fcfg.levels}. Set [gate].coverage_interval to one of them."
            )


def check_baseline(baseline: Any, source: str = "the baseline") -> None:
    """DataError (65) unless `baseline` looks like a metrics.json from `mmplan backtest`."""
    ok = (
        isinstance(baseline, dict)
        and isinstance(baseline.get("primary"), str)
        and isinstance(baseline.get("metrics"), dict)
        and isinstance(baseline["metrics"].get(baseline["primary"]), dict)
    )
    if not ok:
        raise DataError(
            f"{source} is not a metrics.json written by `mmplan backtest`: it needs 'primary' "
            "(the model) and 'metrics' with that model's WAPE per level. Pass the metrics.json "
            "of an earlier run."
        )


def _baseline_wape(baseline: dict[str, Any], level: str) -> float | None:
    """The primary run's overall WAPE at `level` in an earlier metrics.json (None if absent)."""
    try:
        run = baseline["primary"]
        by_level = baseline["metrics"][run]
    except (KeyError, TypeError):
        raise DataError(
            "the --baseline file is not a metrics.json written by `mmplan backtest` (it needs "
            "keys 'primary' and 'metrics'). Pass the metrics.json of an earlier run."
        ) from None
    value = (by_level.get(level) or {}).get("wape") if isinstance(by_level, dict) else None
    return float(value) if isinstance(value, int | float) else None


def evaluate_gates(
    metrics: pl.DataFrame,
    gate: GateConfig,
    fcfg: ForecastConfig,
    primary: str,
    baseline: dict[str, Any] | None = None,
) -> list[GateResult]:
    """Check every configured rule on the primary run's overall metrics, in config order.

    max_wape: WAPE <= t. max_abs_bias: |bias| <= t. min_coverage: coverage of the
    coverage_interval interval >= t. beat_naive_by: skill (1 - WAPE / naive WAPE) >= t.
    max_regression: WAPE - baseline WAPE <= t (skipped without a baseline; failed when the
    baseline has no WAPE for the level). A null measurement fails its rule.
    """
    overall = metrics.filter((pl.col("run") == primary) & pl.col("step").is_null())
    by_level = {row["level"]: row for row in overall.iter_rows(named=True)}
    p = _coverage_interval(gate, fcfg)
    results = []
    for rule, (metric, op) in RULES.items():
        for level, threshold in getattr(gate, rule).items():
            row = by_level.get(level, {})
            detail = ""
            if rule == "max_wape":
                measured = row.get("wape")
            elif rule == "max_abs_bias":
                bias = row.get("bias")
                measured = None if bias is None else abs(bias)
            elif rule == "min_coverage":
                metric = f"coverage_{p}"
                measured = row.get(metric)
            elif rule == "beat_naive_by":
                measured = row.get("skill")
            else:
                if baseline is None:
                    results.append(
                        GateResult(
                            rule,
                            level,
                            metric,
                            op,
                            threshold,
                            None,
                            None,
                            "no --baseline metrics.json given",
                        )
                    )
                    continue
                before, now = _baseline_wape(baseline, level), row.get("wape")
                measured = None if before is None or now is None else now - before
                detail = (
                    f"baseline WAPE {before:.4f}, now {now:.4f}"
                    if measured is not None
                    else "the baseline has no WAPE for this level"
                )
            measured = _finite(measured)
            if measured is None:
                passed = False
                detail = detail or "undefined (zero actual volume with a non-zero error)"
            else:
                passed = measured <= threshold if op == "<=" else measured >= threshold
            results.append(GateResult(rule, level, metric, op, threshold, measured, passed, detail))
    return results


# --------------------------------------------------------------------------- backtest


def backtest(
    history: pl.DataFrame,
    config: Config | None = None,
    baseline: dict[str, Any] | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    engine: Engine | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of the forecast pipeline, with metrics, champions and gates.

    `baseline` is the parsed metrics.json of an earlier run (for `max_regression`).
    `progress(done, total, label)` is called before each forecast, for a progress bar.
    Every cutoff's base models are fit on `engine` (mmplan.engine; default: this machine).
    """
    from mmplan.forecasting import forecast

    cfg = config or Config()
    fcfg, bcfg = cfg.forecast, cfg.backtest
    check(validate_history(history), "history", "history")
    check_gate(cfg.gate, fcfg, history.columns)
    if baseline is not None:
        check_baseline(baseline)
    horizon = _horizon(cfg)
    dates = history.get_column("date")
    cuts = cutoffs(
        dates.min(), dates.max(), bcfg.windows, bcfg.step, horizon, 2 * fcfg.season_length
    )
    runs = _runs(cfg)
    y, series = actuals(history, fcfg)
    run_cfgs = {m: fcfg.model_copy(update={"model": m, "horizon": horizon}) for m in runs}
    parts, done, total = [], 0, len(cuts) * len(runs)
    for cutoff in cuts:
        train = history.filter(pl.col("date") <= cutoff)
        scale = _mase_scale(y, cutoff, fcfg)
        for model in runs:
            if progress is not None:
                progress(done, total, f"cutoff {cutoff}: {model}")
            fc = forecast(train, run_cfgs[model], engine=engine)
            pts = score(fc, y, series, cutoff, horizon, scale, fcfg.levels)
            parts.append(pts.with_columns(pl.lit(model).alias("run")))
            done += 1
    if progress is not None:
        progress(done, total, "scoring")
    points = (
        pl.concat(parts)
        .select("run", pl.exclude("run"))
        .sort("run", "level", "unique_id", "cutoff", "date")
    )
    metrics = compute_metrics(points, fcfg.levels)
    champions = None
    if bcfg.select:
        # Shared-out lanes have no model of their own to choose.
        fitted = points.filter(pl.col("level") != "lane") if fcfg.lanes == "share" else points
        champions = select_champions(fitted, bcfg.candidates, bcfg.select_by)
    primary = fcfg.model
    gates = evaluate_gates(metrics, cfg.gate, fcfg, primary, baseline)
    levels = _levels(fcfg, history.columns)
    calibration = calibrate(points, primary, levels, fcfg, horizon)
    record: dict[str, Any] = {
        "format": METRICS_FORMAT,
        "primary": primary,
        "baseline": BASELINE_MODEL,
        "runs": runs,
        "reconciliation": fcfg.reconciliation,
        "cutoffs": [str(c) for c in cuts],
        "windows": bcfg.windows,
        "step": bcfg.step,
        "horizon": horizon,
        "interval_levels": fcfg.levels,
        "levels": levels,
        "new_series_points": points.filter(
            (pl.col("run") == primary) & (pl.col("model") == NEW_MODEL)
        ).height,
        "metrics": _metrics_record(metrics, levels, fcfg.levels),
        "calibration": {
            level: {
                str(p): f
                for lv, rule, p, f in calibration.select(
                    "level", "rule", "interval", "factor"
                ).iter_rows()
                if lv == level and rule == "all"
            }
            for level in levels
        },
        "gate": {
            "passed": all(g.passed is not False for g in gates),
            "rules": [g.as_record() for g in gates],
        },
    }
    if champions is not None:
        record["champions"] = {
            "select_by": bcfg.select_by,
            "candidates": bcfg.candidates,
            "counts": dict(champions.group_by("model").len().sort("model").iter_rows()),
        }
    return BacktestResult(points, metrics, record, champions, gates, calibration)
