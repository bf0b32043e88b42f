"""Monitoring in production: a forecast scored against the actuals that followed it.

`monitor(setup)` joins a forecast table with a history of actuals exactly as the backtest
joins a cutoff's forecast (mmplan.evaluate.metrics.score): the actuals are summed up the
forecast's own levels (read from its `level` column: `origin_region/origin` is the sum over
those columns), a forecast lane without an actual row that day carried zero, and a lane the
actuals have but the forecast lacks is scored as a zero forecast (`Zero/new`). The origin
is the period before the forecast's first date (the backtest's cutoff). A horizon the
actuals only partly cover is scored on the observed periods, and the result says how many.

Scores, with the backtest's definitions (mmplan.evaluate.metrics), per level overall
(scope `level`), per level and horizon step (`step`) and per series (`series`): pooled WAPE,
bias, MASE, coverage of every interval, and skill against the backtest's per-lane seasonal
naive as of the origin (mmplan.evaluate.naive; null without the season before the origin).

With the backtest's metrics.json (`baseline`), each level's WAPE and coverage are held
against what the backtest measured on the same steps: expected_wape pools the backtest's
sums over steps 1..observed, wape_ratio = WAPE / expected_wape, and the series adding most
error beyond expected_wape x their volume are listed. Drift is each series' tracking signal
(mmplan.evaluate.drift), over this forecast and across the earlier runs of a store. With a
plan, its trucks and facilities are held against the actual volume (mmplan.evaluate.plan_fit).
Alerts are `[monitor]` rules (mmplan.evaluate.alerts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

import polars as pl

from mmplan.config import Config, ForecastConfig
from mmplan.errors import DataError
from mmplan.evaluate.alerts import check_monitor, evaluate_alerts
from mmplan.evaluate.drift import across_runs, largest_drift, tracking_signal
from mmplan.evaluate.expected import expected_scores
from mmplan.evaluate.gates import Baseline, GateResult, gates_passed
from mmplan.evaluate.markets import check_markets, merged_rules
from mmplan.evaluate.metrics import (
    BASELINE_RUN,
    NEW_MODEL,
    actuals,
    compute_metrics,
    finite,
    mase_scale,
    ratio,
    score,
)
from mmplan.evaluate.monitor_markets import market_monitor
from mmplan.evaluate.naive import naive_forecast, naive_start
from mmplan.evaluate.plan_fit import PlanFit, plan_fit
from mmplan.forecasting import history_hierarchy
from mmplan.forecasting.frequency import config_freq, n_periods, resolve, season, shift
from mmplan.forecasting.hierarchy import LANE, TOTAL
from mmplan.tables import LANE_KEYS, day_rows

__all__ = [
    "PRIMARY_RUN",
    "PlanTables",
    "MonitorSetup",
    "MonitorResult",
    "forecast_hierarchy",
    "prepare_monitor",
    "monitor",
]

PRIMARY_RUN = "forecast"  # the run name of the monitored forecast's points


@dataclass(frozen=True)
class PlanTables:
    """A plan folder's trucks and nodes, and optionally the lanes it was made with."""

    trucks: pl.DataFrame
    nodes: pl.DataFrame
    lanes: pl.DataFrame | None = None


@dataclass(frozen=True)
class MonitorSetup:
    """A monitoring run's inputs once `prepare_monitor` checked them.

    `config.forecast` carries the forecast's levels and intervals; `earlier` holds the
    store's per-series rows of other forecasts (for drift across runs); `sources` names the
    forecast and actuals files in messages."""

    forecast: pl.DataFrame
    history: pl.DataFrame
    config: Config
    forecast_sha256: str
    baseline: Baseline | None = None
    plan: PlanTables | None = None
    earlier: pl.DataFrame | None = None
    sources: tuple[str, str] = ("forecast", "actuals")
    prepared: bool = False  # set by prepare_monitor


@dataclass
class MonitorResult:
    """What a monitoring run produced: scores, alerts, the plan check and summary.json."""

    scores: pl.DataFrame
    alerts: pl.DataFrame
    gates: list[GateResult]
    summary: dict[str, Any]
    plan: PlanFit | None = None
    points: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def passed(self) -> bool:
        """True when no alert rule failed (skipped rules do not fail)."""
        return gates_passed(self.gates)


def forecast_hierarchy(fc: pl.DataFrame, source: str = "forecast") -> list[list[str]]:
    """The forecast's levels between total and lane as column sets, coarsest first (a
    level `a/b` is the sum over columns a and b). DataError when a column is missing."""
    counts = fc.group_by("level").agg(pl.col("unique_id").n_unique().alias("n")).sort("n", "level")
    sets = [name.split("/") for name in counts["level"] if name not in (TOTAL, LANE)]
    missing = sorted({c for cols in sets for c in cols if c not in fc.columns})
    if missing:
        raise DataError(
            f"{source}: levels name columns {', '.join(missing)} that the forecast table lacks; "
            "it is not a forecast table written by `mmplan forecast`."
        )
    return sets


def _check_overlap(fc: pl.DataFrame, history: pl.DataFrame, sources: tuple[str, str]) -> None:
    """DataError when the actuals share no lane and no facility with the forecast."""
    lanes = fc.filter(pl.col("level") == LANE).select(LANE_KEYS).unique()
    common = lanes.join(history.select(LANE_KEYS).unique(), on=LANE_KEYS).height
    places = set(lanes["origin"]) | set(lanes["destination"])
    seen = set(history["origin"].unique()) | set(history["destination"].unique())
    if common == 0 and not places & seen:
        raise DataError(
            f"the actuals {sources[1]} share no lane and no facility with the forecast "
            f"{sources[0]} (forecast facilities e.g. {', '.join(sorted(places)[:3])}; actuals "
            f"e.g. {', '.join(sorted(seen)[:3])}): they are of another network. Pass the "
            "history of the network the forecast was made for."
        )


def prepare_monitor(setup: MonitorSetup, source: str = "config") -> MonitorSetup:
    """Check a monitoring run before anything is scored and settle its forecast config:
    the forecast's levels and intervals, the frequency from the actuals. DataError (65) for
    actuals of another network or without the forecast's level columns; ConfigError (78)
    for a [monitor] rule naming a level the forecast lacks."""
    fc, history, (fname, aname) = setup.forecast, setup.history, setup.sources
    sets = forecast_hierarchy(fc, fname)
    lacking = sorted({c for cols in sets for c in cols if c not in history.columns})
    if lacking:
        raise DataError(
            f"the actuals {aname} lack column {', '.join(lacking)}, which the forecast "
            f"{fname}'s levels sum over. Pass a history with those lane attributes."
        )
    _check_overlap(fc, history, setup.sources)
    intervals = sorted(int(c[3:]) for c in fc.columns if c.startswith("lo_") and c[3:].isdigit())
    fcfg = setup.config.forecast.model_copy(update={"hierarchy": sets, "levels": intervals})
    fcfg = resolve(fcfg, history.get_column("date"))
    levels = [TOTAL, *("/".join(s) for s in sets), LANE]
    mcfg = setup.config.monitor
    check_monitor(mcfg, levels, intervals, source)
    check_markets(setup.config, history, mcfg.markets, "monitor", source)
    for rules in mcfg.markets.values():
        check_monitor(merged_rules(mcfg, rules), levels, intervals, source)
    cfg = setup.config.model_copy(update={"forecast": fcfg})
    # A long-range forecast's weeks and months are sums of its days: the days are scored.
    return dataclasses.replace(setup, forecast=day_rows(fc), config=cfg, prepared=True)


@dataclass(frozen=True)
class _Window:
    """Where the forecast starts and how much of it the actuals observe."""

    origin: dt.date
    horizon: int
    observed: int
    end: dt.date  # the last observed period


def _window(fc: pl.DataFrame, history: pl.DataFrame, fcfg: ForecastConfig, aname: str) -> _Window:
    freq = config_freq(fcfg)
    first, last = cast(dt.date, fc["date"].min()), cast(dt.date, fc["date"].max())
    origin = shift(first, -1, freq)
    seen = cast(dt.date, history["date"].max())
    if seen < first:
        raise DataError(
            f"the actuals {aname} end on {seen}, before the forecast's first date {first}: "
            "there is nothing to score yet. Run the monitor once actuals have arrived."
        )
    end = min(seen, last)
    return _Window(origin, n_periods(origin, last, freq), n_periods(origin, end, freq), end)


def _points(setup: MonitorSetup, win: _Window, notes: list[str]) -> pl.DataFrame:
    """The forecast's points and, when the actuals allow it, the naive's: run, unique_id,
    level, cutoff, date, step, actual, forecast, lo/hi, model, mase_scale."""
    fcfg, history = setup.config.forecast, setup.history
    y, series = actuals(history, fcfg)
    scale = mase_scale(y, win.origin, fcfg)
    freq = config_freq(fcfg)
    fc = setup.forecast.filter(pl.col("date") <= win.end)
    pts = score(fc, y, series, win.origin, win.observed, scale, fcfg.levels, freq)
    parts = [pts.with_columns(pl.lit(PRIMARY_RUN).alias("run"))]
    need, start = naive_start(win.origin, fcfg), cast(dt.date, history["date"].min())
    if start <= need:
        hier = history_hierarchy(history, fcfg)
        naive = naive_forecast(history, win.origin, win.observed, fcfg, hier)
        npts = score(naive, y, series, win.origin, win.observed, scale, fcfg.levels, freq)
        parts.append(npts.with_columns(pl.lit(BASELINE_RUN).alias("run")))
    else:
        notes.append(
            f"skill is null: the seasonal naive as of the origin {win.origin} needs the season "
            f"before it ({season(fcfg)} periods, from {need}) in --actuals, which start on "
            f"{start}. Pass a history reaching back to {need}."
        )
    return pl.concat(parts).select("run", pl.exclude("run"))


def _scores(
    points: pl.DataFrame, setup: MonitorSetup, win: _Window, expected: pl.DataFrame | None
) -> pl.DataFrame:
    """The scores table: per level (scope level), level x step (step), series (series)."""
    fcfg, mcfg = setup.config.forecast, setup.config.monitor
    cov = [f"coverage_{p}" for p in fcfg.levels]
    levels = compute_metrics(points, fcfg.levels).filter(pl.col("run") == PRIMARY_RUN)
    levels = levels.with_columns(
        pl.when(pl.col("step").is_null())
        .then(pl.lit("level"))
        .otherwise(pl.lit("step"))
        .alias("scope"),
        pl.lit(None, pl.String).alias("unique_id"),
    )
    if expected is not None:
        levels = levels.join(expected, on=["level", "step"], how="left", nulls_equal=True)
    series = compute_metrics(points, fcfg.levels, by=("level", "unique_id")).filter(
        (pl.col("run") == PRIMARY_RUN) & pl.col("step").is_null()
    )
    drift = across_runs(series, setup.earlier)
    bound = pl.col("level").replace_strict(
        mcfg.max_abs_tracking_signal, default=mcfg.drift_bound, return_dtype=pl.Float64
    )
    series = (
        series.with_columns(
            pl.lit("series").alias("scope"), tracking_signal().alias("tracking_signal")
        )
        .join(drift, on=["level", "unique_id"], how="left")
        .with_columns((pl.col("tracking_signal_all").abs() > bound).alias("drift"))
    )
    table = pl.concat([levels, series], how="diagonal_relaxed")
    if "expected_wape" in table.columns:
        table = table.with_columns(
            ratio(pl.col("wape"), pl.col("expected_wape")).alias("wape_ratio")
        )
    order = ["scope", "level", "step", "unique_id", "points", "sum_actual", "sum_error"]
    order += ["sum_abs_error", "wape", "bias", "mase", "skill", *cov]
    return (
        table.with_columns(
            pl.lit(setup.forecast_sha256).alias("forecast_sha256"),
            pl.lit(win.origin).alias("forecast_date"),
            pl.lit(win.observed, pl.Int32).alias("observed"),
            pl.lit(win.horizon, pl.Int32).alias("horizon"),
        )
        .select(*order, pl.exclude(*order, "run"))
        .sort("scope", "level", "step", "unique_id", nulls_last=True)
    )


def _excess(scores: pl.DataFrame, level: str, wape: float | None, top: int) -> list[dict[str, Any]]:
    """The series of `level` adding most error beyond `wape` x their volume."""
    if wape is None:
        return []
    rows = (
        scores.filter((pl.col("scope") == "series") & (pl.col("level") == level))
        .with_columns((pl.col("sum_abs_error") - wape * pl.col("sum_actual")).alias("excess"))
        .filter(pl.col("excess") > 0)
        .sort("excess", "unique_id", descending=[True, False])
    )
    total = float(rows["excess"].sum()) if rows.height else 0.0
    return [
        {
            "unique_id": r["unique_id"],
            "excess_error": finite(r["excess"]),
            "share_of_excess": finite(r["excess"] / total) if total else None,
            "wape": finite(r["wape"]),
        }
        for r in rows.head(top).iter_rows(named=True)
    ]


def _plan(setup: MonitorSetup, win: _Window) -> PlanFit | None:
    """The plan's trucks and facilities against the observed lane volumes."""
    if setup.plan is None:
        return None
    from mmplan.forecasting.frequency import future_dates

    dates = future_dates(win.origin, win.observed, config_freq(setup.config.forecast)).to_list()
    lanes = setup.history.select(*LANE_KEYS, "date", pl.col("volume").cast(pl.Float64))
    return plan_fit(setup.plan.trucks, setup.plan.nodes, lanes, dates, setup.plan.lanes)


def _plan_record(fit: PlanFit | None, top: int) -> dict[str, Any] | None:
    """summary.json's "plan": network totals, the worst lanes and facilities."""
    if fit is None:
        return None
    worst = fit.by_lane.sort("overflow_share", "overflow", descending=True, nulls_last=False)
    first = worst.row(0, named=True) if worst.height else None
    over = fit.facilities.filter(pl.col("over") > 0).sort("over", descending=True)
    return fit.network | {
        "worst_lane": f"{first['origin']}->{first['destination']}" if first else None,
        "worst_lane_share": finite(first["overflow_share"]) if first else 0.0,
        "top_overflow_lanes": [
            {k: finite(v) for k, v in r.items()}
            for r in fit.by_lane.filter(pl.col("overflow") > 0).head(top).iter_rows(named=True)
        ],
        "facilities_over_capacity": [
            {
                "node": r["node"],
                "date": str(r["date"]),
                "actual": r["actual"],
                "capacity": r["capacity"],
            }
            for r in over.head(top).iter_rows(named=True)
        ],
    }


def _summary(
    setup: MonitorSetup,
    win: _Window,
    scores: pl.DataFrame,
    notes: list[str],
    drifting: dict[str, tuple[float | None, str]],
) -> dict[str, Any]:
    """summary.json without the alerts: the window, per level scores and excess error."""
    fcfg, top = setup.config.forecast, setup.config.monitor.top_series
    overall = scores.filter(pl.col("scope") == "level")
    keep = [c for c in overall.columns if c.startswith(("wape", "bias", "mase", "skill"))]
    keep += [c for c in overall.columns if "coverage" in c or c == "expected_wape"]
    keep += ["points", "sum_actual", "sum_abs_error"]
    order = [TOTAL, *("/".join(c) for c in fcfg.hierarchy), LANE]
    levels = {}
    for row in sorted(overall.iter_rows(named=True), key=lambda r: order.index(r["level"])):
        entry = {k: finite(row[k]) for k in dict.fromkeys(keep)}
        ts, which = drifting.get(row["level"], (None, ""))
        entry |= {"max_abs_tracking_signal": finite(ts), "drift": which}
        if row.get("expected_wape") is not None:
            entry["top_excess"] = _excess(scores, row["level"], row["expected_wape"], top)
        levels[row["level"]] = entry
    primary = scores.filter(pl.col("scope") == "series")
    return {
        "forecast_sha256": setup.forecast_sha256,
        "forecast_date": str(win.origin),
        "first_date": str(shift(win.origin, 1, config_freq(fcfg))),
        "last_observed": str(win.end),
        "horizon": win.horizon,
        "observed": win.observed,
        "observed_share": f"{win.observed}/{win.horizon}",
        "partial": win.observed < win.horizon,
        "freq": config_freq(fcfg),
        "interval_levels": fcfg.levels,
        "levels": levels,
        "series": primary.height,
        "drifting_series": int(primary["drift"].sum()) if primary.height else 0,
        "notes": notes,
    }


def monitor(setup: MonitorSetup) -> MonitorResult:
    """Score a forecast against its actuals, check drift and the plan, and raise alerts.

    `setup` is a `MonitorSetup` (call `prepare_monitor` on it first to check it, or this
    does); see the module docstring for what is measured."""
    if not setup.prepared:
        setup = prepare_monitor(setup)
    fcfg, history = setup.config.forecast, setup.history
    win = _window(setup.forecast, history, fcfg, setup.sources[1])
    notes: list[str] = []
    if win.observed < win.horizon:
        notes.append(
            f"partial horizon: the actuals end on {win.end}, so {win.observed} of the "
            f"forecast's {win.horizon} periods are scored"
        )
    points = _points(setup, win, notes)
    new = points.filter((pl.col("run") == PRIMARY_RUN) & (pl.col("model") == NEW_MODEL))
    if new.height:
        ids = new["unique_id"].unique().sort()
        notes.append(
            f"{ids.len()} series in the actuals are not in the forecast, scored as zero "
            f"forecasts ({NEW_MODEL}), e.g. {', '.join(ids.head(3).to_list())}"
        )
    levels = [TOTAL, *("/".join(s) for s in fcfg.hierarchy), LANE]
    expected, why = expected_scores(setup.baseline, levels, win.observed, fcfg.levels)
    if why and setup.baseline is not None:
        notes.append(why)
    scores = _scores(points, setup, win, expected)
    drifting = largest_drift(scores)
    fit = _plan(setup, win)
    plan = _plan_record(fit, setup.config.monitor.top_series)
    summary = _summary(setup, win, scores, notes, drifting)
    by_level = {
        lv: v | ({} if setup.baseline else {"baseline_note": why})
        for lv, v in summary["levels"].items()
    }
    gates = evaluate_alerts(setup.config.monitor, by_level, drifting, fcfg.levels, plan)
    if setup.config.markets.column is not None:
        mk = market_monitor(
            points, setup.config, history, win.observed, setup.baseline, PRIMARY_RUN
        )
        gates += mk.gates
        same = ("forecast_sha256", "forecast_date", "observed", "horizon")
        extra = mk.scores.with_columns(
            [pl.lit(scores[c][0], scores.schema[c]).alias(c) for c in same]
        )
        scores = pl.concat([scores, extra], how="diagonal_relaxed")
        summary["markets"] = mk.record
    alerts = pl.DataFrame(
        [g.as_record() for g in gates],
        schema={
            "rule": pl.String,
            "level": pl.String,
            "metric": pl.String,
            "op": pl.String,
            "threshold": pl.Float64,
            "measured": pl.Float64,
            "status": pl.String,
            "detail": pl.String,
        },
    ).with_columns(pl.lit(setup.forecast_sha256).alias("forecast_sha256"))
    summary |= {
        "plan": plan,
        "gate": {"passed": gates_passed(gates), "rules": [g.as_record() for g in gates]},
    }
    return MonitorResult(scores, alerts, gates, summary, fit, points)
