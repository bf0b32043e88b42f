"""Evaluating forecasts: rolling-origin backtests, their metrics, champions, calibration, gates,
and monitoring in production.

metrics.py      actuals, scoring, and the one definition of WAPE, bias, MASE, coverage, skill
gates.py        [gate] rules, their verdicts, and the --baseline metrics.json they compare with
champions.py    the candidate model with the lowest backtest WAPE per series (or level)
calibration.py  interval scale factors measured on the backtest's out-of-sample errors
backtest.py     cutoffs, the runs at each cutoff, and `backtest` itself
monitor.py      `monitor`: a forecast scored against the actuals that followed it
naive.py        the backtest's seasonal-naive baseline, rebuilt from actuals as of an origin
drift.py        tracking signals, per run and across a monitoring store's runs
plan_fit.py     a plan's trucks and facilities against actual volume: overflow, idle
alerts.py       [monitor] rules, the default rules and their verdicts
expected.py     what the backtest measured per step, as monitoring's expectation
markets.py      markets: the per-market scoreboard, merged rules, per-market gates
monitor_markets.py  monitoring per market: scores, expectations, drift and alerts
"""

from __future__ import annotations

from mmplan.evaluate.backtest import (
    BacktestResult,
    BacktestSetup,
    backtest,
    cutoffs,
    prepare_backtest,
    run_backtest,
)
from mmplan.evaluate.calibration import calibrate, rule_of_label
from mmplan.evaluate.champions import select_champions
from mmplan.evaluate.gates import (
    RULES,
    Baseline,
    GateResult,
    check_baseline,
    check_gate,
    checked_baseline,
    evaluate_gates,
    gates_passed,
    read_baseline,
)
from mmplan.evaluate.metrics import (
    BASELINE_MODEL,
    BASELINE_RUN,
    METRICS_FORMAT,
    NEW_MODEL,
    Actuals,
    actuals,
    compute_metrics,
    score,
)
from mmplan.evaluate.monitor import MonitorResult, MonitorSetup, monitor, prepare_monitor
from mmplan.tables import CALIBRATION_RULES

__all__ = [
    "backtest",
    "prepare_backtest",
    "run_backtest",
    "BacktestResult",
    "BacktestSetup",
    "GateResult",
    "Baseline",
    "BASELINE_MODEL",
    "BASELINE_RUN",
    "NEW_MODEL",
    "METRICS_FORMAT",
    "CALIBRATION_RULES",
    "RULES",
    "Actuals",
    "cutoffs",
    "actuals",
    "score",
    "compute_metrics",
    "select_champions",
    "calibrate",
    "rule_of_label",
    "check_gate",
    "check_baseline",
    "checked_baseline",
    "read_baseline",
    "evaluate_gates",
    "gates_passed",
    "monitor",
    "prepare_monitor",
    "MonitorSetup",
    "MonitorResult",
]
