"""Rolling-origin backtests of the forecast pipeline, scored by pooled zero-safe metrics.

`backtest(history, config)` picks `[backtest].windows` cutoffs, `step` periods apart, the
last one `horizon` periods before the history ends (periods: the history's days, weeks or
months, mmplan.forecasting.frequency; `freq = "auto"` is read from the whole history). At
each cutoff it calls
`mmplan.forecasting.forecast(history.filter(date <= cutoff), ...)`: the very pipeline of
`mmplan forecast` (hierarchy, rules, base models, reconciliation, intervals), fed only the
rows up to the cutoff, so nothing after a cutoff can reach that cutoff's forecasts.

Runs. The pipeline is run once per cutoff for each of: the configured `[forecast].model`
(the *primary* run, the one gates judge), the baseline ``naive`` and, with `select =
true`, every candidate (a model that is primary and candidate is run once). The baseline
is always computed so "better than naive" is always visible, and it is the naive a
planner would build by hand, whatever `lanes` and `reconciliation` say: every lane its
own SeasonalNaive(season_length), levels summed bottom-up (metrics.json format 2; format
1 shared the naive out like the primary, which flattered skill). Series that the rules
give another model get it in every run, exactly as in `mmplan forecast`: closed (zero)
and short in all runs, sparse in all but the baseline, which takes no model choice.

The points are scored as mmplan.evaluate.metrics says, champions picked as
mmplan.evaluate.champions says, interval factors measured as mmplan.evaluate.calibration
says, and gates judged as mmplan.evaluate.gates says.

`backtest` is `prepare_backtest` (every check on the inputs, before any model is fit) then
`run_backtest`; a caller that must check before something slow of its own (the CLI opens
the engine in between) calls the two itself, so nothing is checked twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from mmplan.config import Config, ForecastConfig
from mmplan.errors import ConfigError
from mmplan.evaluate.calibration import calibrate
from mmplan.evaluate.champions import select_champions
from mmplan.evaluate.gates import (
    Baseline,
    GateResult,
    check_gate,
    checked_baseline,
    evaluate_gates,
    gates_passed,
)
from mmplan.evaluate.markets import (
    check_markets,
    market_gates,
    market_scores,
    markets_record,
    merged_rules,
)
from mmplan.evaluate.metrics import (
    BASELINE_MODEL,
    BASELINE_RUN,
    METRICS_FORMAT,
    NEW_MODEL,
    actuals,
    compute_metrics,
    level_names,
    mase_scale,
    metrics_record,
    score,
)
from mmplan.forecasting.frequency import Freq, config_freq, n_periods, resolve, season, shift
from mmplan.forecasting.hierarchy import hierarchy_levels
from mmplan.tables import check, day_rows, validate_history

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "METRICS_FORMAT",
    "BacktestResult",
    "BacktestSetup",
    "cutoffs",
    "baseline_config",
    "through_cutoff",
    "prepare_backtest",
    "run_backtest",
    "backtest",
]

Progress = Callable[[int, int, str], None]


@dataclass
class BacktestResult:
    """What a backtest produced: the tables to write and the gate verdict.

    `metrics_json` is the content of metrics.json (also what a later run reads back
    as its --baseline); `champions` is None unless `[backtest].select` is true;
    `calibration` holds the interval factors of `calibrate` (always measured).
    """

    points: pl.DataFrame
    metrics: pl.DataFrame
    metrics_json: dict[str, Any]
    champions: pl.DataFrame | None
    calibration: pl.DataFrame
    gates: list[GateResult] = field(default_factory=list)
    markets: pl.DataFrame | None = None  # with [markets] column: run x market x level x step

    @property
    def passed(self) -> bool:
        """True when no gate rule failed (skipped rules do not fail)."""
        return gates_passed(self.gates)


@dataclass(frozen=True)
class BacktestSetup:
    """A backtest's inputs once `prepare_backtest` has checked them."""

    history: pl.DataFrame
    config: Config
    baseline: Baseline | None


def cutoffs(
    start: dt.date,
    end: dt.date,
    windows: int,
    step: int,
    horizon: int,
    min_train: int,
    freq: Freq = "day",
) -> list[dt.date]:
    """Cutoff dates, oldest first; the last leaves exactly `horizon` periods of actuals.
    `step`, `horizon` and `min_train` count periods of `freq`."""
    last = shift(end, -horizon, freq)
    days = [shift(last, -step * k, freq) for k in reversed(range(windows))]
    first_allowed = shift(start, min_train - 1, freq)
    if days[0] < first_allowed:
        have, unit = n_periods(start, end, freq) + 1, f"{freq}s"
        need = min_train + horizon + step * (windows - 1)
        raise ConfigError(
            f"[backtest] windows = {windows}, step = {step} and horizon = {horizon} need "
            f"{need} {unit} of history ({min_train} to train on before the first cutoff); the "
            f"history has {have} ({start} .. {end}). Lower windows, step or horizon."
        )
    return days


def _runs(cfg: Config) -> dict[str, ForecastConfig]:
    """The forecast config of each run at every cutoff, by run name: primary, baseline,
    candidates (a model both primary and candidate is run once)."""
    fcfg, horizon = cfg.forecast, _horizon(cfg)
    models = [fcfg.model]
    if cfg.backtest.select:
        models += cfg.backtest.candidates
    runs = {m: fcfg.model_copy(update={"model": m, "horizon": horizon}) for m in models}
    runs[BASELINE_RUN] = baseline_config(fcfg, horizon)
    return runs


def baseline_config(fcfg: ForecastConfig, horizon: int) -> ForecastConfig:
    """The forecast config of the baseline run: every lane its own SeasonalNaive, summed
    bottom-up, no validation windows (what `mmplan monitor` rebuilds its skill from)."""
    naive: dict[str, object] = dict.fromkeys(
        ["model", "sparse_model", "short_model"], BASELINE_MODEL
    )
    naive |= {"lanes": "model", "reconciliation": "BottomUp", "intervals": "model"}
    naive["validation_windows"] = 0  # a hand-built naive has no validation windows
    return fcfg.model_copy(update={**naive, "horizon": horizon})


def _horizon(cfg: Config) -> int:
    return cfg.backtest.horizon or cfg.forecast.horizon


def prepare_backtest(
    history: pl.DataFrame,
    config: Config | None = None,
    baseline: dict[str, Any] | Baseline | None = None,
    *,
    source: str = "config",
) -> BacktestSetup:
    """Check a backtest's inputs before any model is fit.

    DataError (65) for a history that breaks its contract or a baseline that is not a
    metrics.json (a `Baseline` from `read_baseline` is already checked); ConfigError (78)
    for a gate the forecast cannot be checked on, naming `source` (the config file).
    """
    cfg = config or Config()
    fcfg = cfg.forecast
    check(validate_history(history, fcfg.max_history_gap_days, fcfg.freq), "history", "history")
    # One frequency for every cutoff: read from the whole history, not from each slice.
    cfg = cfg.model_copy(update={"forecast": resolve(fcfg, history.get_column("date"))})
    check_gate(cfg.gate, cfg.forecast, history.columns, source)
    check_markets(cfg, history, cfg.gate.markets, "gate", source)
    for rules in cfg.gate.markets.values():
        check_gate(merged_rules(cfg.gate, rules), cfg.forecast, history.columns, source)
    prior = None if baseline is None else checked_baseline(baseline)
    return BacktestSetup(history, cfg, prior)


def _points(
    setup: BacktestSetup,
    cuts: list[dt.date],
    runs: dict[str, ForecastConfig],
    progress: Progress | None,
    engine: Engine | None,
) -> pl.DataFrame:
    """Every run's forecast at every cutoff, scored: the points table."""
    from mmplan.forecasting import forecast

    history, fcfg, horizon = setup.history, setup.config.forecast, _horizon(setup.config)
    y, series = actuals(history, fcfg)
    parts, done, total = [], 0, len(cuts) * len(runs)
    for cutoff in cuts:
        train = through_cutoff(history.filter(pl.col("date") <= cutoff), cutoff)
        scale = mase_scale(y, cutoff, fcfg)
        for run, run_cfg in runs.items():
            if progress is not None:
                progress(done, total, f"cutoff {cutoff}: {run}")
            # A long-range run's weeks and months are sums of its days: the days are scored.
            fc = day_rows(forecast(train, run_cfg, engine=engine))
            pts = score(fc, y, series, cutoff, horizon, scale, fcfg.levels, config_freq(fcfg))
            parts.append(pts.with_columns(pl.lit(run).alias("run")))
            done += 1
    if progress is not None:
        progress(done, total, "scoring")
    return (
        pl.concat(parts)
        .select("run", pl.exclude("run"))
        .sort("run", "level", "unique_id", "cutoff", "date")
    )


def through_cutoff(train: pl.DataFrame, cutoff: dt.date) -> pl.DataFrame:
    """The training window, ending on the cutoff even when no lane has a row that day.

    A forecast starts after the history's last date; a cutoff on a day without rows (a shop
    closed on a holiday) would start it a day early, score a day less and shift every step.
    A zero row on the cutoff (missing days are zeros in the contract anyway) keeps the
    window's end where the backtest put it."""
    if train.is_empty() or train.get_column("date").max() == cutoff:
        return train
    last = train.filter(pl.col("date") == pl.col("date").max()).head(1)
    zero = last.with_columns(
        pl.lit(cutoff).alias("date"), pl.lit(0).cast(last["volume"].dtype).alias("volume")
    )
    return pl.concat([train, zero])


def _metrics_json(
    setup: BacktestSetup,
    cuts: list[dt.date],
    runs: dict[str, ForecastConfig],
    levels: list[str],
    result: BacktestResult,
) -> dict[str, Any]:
    """metrics.json: how the backtest was run, its metrics, pooled factors and gate verdict
    (`result` without its metrics_json yet)."""
    fcfg, bcfg = setup.config.forecast, setup.config.backtest
    primary, calibration = fcfg.model, result.calibration
    record: dict[str, Any] = {
        "format": METRICS_FORMAT,
        "primary": primary,
        "baseline": BASELINE_RUN,
        "baseline_method": f"{BASELINE_MODEL}({season(fcfg)}) per lane, BottomUp",
        "runs": list(runs),
        "reconciliation": fcfg.reconciliation,
        "cutoffs": [str(c) for c in cuts],
        "windows": bcfg.windows,
        "step": bcfg.step,
        "horizon": _horizon(setup.config),
        "interval_levels": fcfg.levels,
        "levels": levels,
        "new_series_points": result.points.filter(
            (pl.col("run") == primary) & (pl.col("model") == NEW_MODEL)
        ).height,
        "metrics": metrics_record(result.metrics, levels, fcfg.levels),
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
            "passed": result.passed,
            "rules": [g.as_record() for g in result.gates],
        },
    }
    if result.markets is not None:
        record["markets"] = markets_record(result.markets, setup.config, setup.history.columns)
    if result.champions is not None:
        record["champions"] = {
            "select_by": bcfg.select_by,
            "candidates": bcfg.candidates,
            "counts": dict(result.champions.group_by("model").len().sort("model").iter_rows()),
        }
    return record


def run_backtest(
    setup: BacktestSetup,
    *,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> BacktestResult:
    """The backtest of inputs `prepare_backtest` checked: points, metrics, champions,
    calibration and gates (see `backtest`)."""
    cfg = setup.config
    fcfg, bcfg = cfg.forecast, cfg.backtest
    horizon = _horizon(cfg)
    dates = setup.history.get_column("date")
    # A valid history has a date column of dates and at least one row.
    start, end = cast(dt.date, dates.min()), cast(dt.date, dates.max())
    cuts = cutoffs(
        start, end, bcfg.windows, bcfg.step, horizon, 2 * season(fcfg), config_freq(fcfg)
    )
    runs = _runs(cfg)
    points = _points(setup, cuts, runs, progress, engine)
    metrics = compute_metrics(points, fcfg.levels)
    champions = None
    if bcfg.select:
        # Shared-out lanes have no model of their own to choose.
        fitted = points.filter(pl.col("level") != "lane") if fcfg.lanes == "share" else points
        champions = select_champions(fitted, bcfg.candidates, bcfg.select_by)
    primary = fcfg.model
    gates = evaluate_gates(metrics, cfg.gate, fcfg, primary, setup.baseline)
    levels = level_names(fcfg, setup.history.columns)
    calibration = calibrate(points, primary, levels, fcfg, horizon)
    markets = None
    if cfg.markets.column is not None:
        hier = hierarchy_levels(fcfg, setup.history.columns)
        markets = market_scores(points, setup.history, cfg.markets.column, hier, fcfg.levels)
        gates += market_gates(markets, cfg.gate, cfg, primary, setup.baseline)
    result = BacktestResult(points, metrics, {}, champions, calibration, gates, markets)
    result.metrics_json = _metrics_json(setup, cuts, runs, levels, result)
    return result


def backtest(
    history: pl.DataFrame,
    config: Config | None = None,
    baseline: dict[str, Any] | Baseline | None = None,
    *,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of the forecast pipeline, with metrics, champions and gates.

    `baseline` is the parsed metrics.json of an earlier run (for `max_regression`).
    `progress(done, total, label)` is called before each forecast, for a progress bar.
    Every cutoff's base models are fit on `engine` (mmplan.engine; default: this machine).
    """
    setup = prepare_backtest(history, config, baseline)
    return run_backtest(setup, progress=progress, engine=engine)
