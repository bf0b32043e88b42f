"""CI gates (`[gate]`): rules keyed by level, checked on the primary run's overall metrics.

`check_gate` refuses a gate that could never be checked (an unknown level, an interval the
forecast does not make) before any model is fit; `evaluate_gates` gives each rule its
verdict as a `GateResult`. `max_regression` compares with an earlier run's metrics.json,
read and checked once by `read_baseline` (or `checked_baseline` for an already parsed one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import polars as pl

from mmplan.config import ForecastConfig, GateConfig
from mmplan.errors import ConfigError, DataError, InputFileError
from mmplan.evaluate.metrics import METRICS_FORMAT, finite, level_names

__all__ = [
    "RULES",
    "Rule",
    "GateResult",
    "Baseline",
    "DEFAULT_COVERAGE_TOLERANCE",
    "default_gate",
    "has_rules",
    "check_gate",
    "check_baseline",
    "checked_baseline",
    "read_baseline",
    "evaluate_gates",
    "gates_passed",
]


class Rule(NamedTuple):
    """What a gate rule checks: the metric and the comparison with the configured value."""

    metric: str
    op: str


# rule -> what it checks; the threshold is the configured value.
RULES = {
    "max_wape": Rule("wape", "<="),
    "max_abs_bias": Rule("abs_bias", "<="),
    "min_coverage": Rule("coverage", ">="),
    "max_coverage": Rule("coverage", "<="),
    "beat_naive_by": Rule("skill", ">"),
    "max_regression": Rule("wape_increase", "<="),
}


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


@dataclass(frozen=True)
class Baseline:
    """An earlier run's metrics.json that `check_baseline` accepted: what max_regression
    compares with. Carrying the check in the type lets `backtest` skip checking it again."""

    record: dict[str, Any]


def _coverage_interval(gate: GateConfig, fcfg: ForecastConfig) -> int | None:
    """The interval level min_coverage checks: the configured one, else the narrowest."""
    if gate.coverage_interval is not None:
        return gate.coverage_interval
    return min(fcfg.levels) if fcfg.levels else None


# The default gate's coverage rules: within this many points of the nominal level.
DEFAULT_COVERAGE_TOLERANCE = 0.15


def has_rules(gate: GateConfig) -> bool:
    """True when `gate` configures at least one rule."""
    return any(getattr(gate, rule) for rule in RULES)


def default_gate(fcfg: ForecastConfig, columns: list[str]) -> GateConfig:
    """The gate `mmplan backtest --gate` applies when [gate] has no rules, so that a CI job
    always checks something: skill > 0 against the seasonal naive at every level and,
    with intervals, coverage of the narrowest within 15 points of nominal at every level."""
    levels = level_names(fcfg, columns)
    gate = GateConfig(beat_naive_by=dict.fromkeys(levels, 0.0))
    if fcfg.levels:
        nominal, tol = min(fcfg.levels) / 100, DEFAULT_COVERAGE_TOLERANCE
        gate.coverage_interval = min(fcfg.levels)
        gate.min_coverage = dict.fromkeys(levels, round(max(0.0, nominal - tol), 6))
        gate.max_coverage = dict.fromkeys(levels, round(min(1.0, nominal + tol), 6))
    return gate


def check_gate(
    gate: GateConfig, fcfg: ForecastConfig, columns: list[str], source: str = "config"
) -> None:
    """ConfigError (78) when a rule names a level the hierarchy does not produce, or a
    coverage interval the forecast does not make. Called before any model is fit."""
    levels = level_names(fcfg, columns)
    for rule in RULES:
        unknown = [lv for lv in getattr(gate, rule) if lv not in levels]
        if unknown:
            raise ConfigError(
                f"{source}: [gate].{rule} names level {', '.join(map(repr, unknown))}, which "
                f"the hierarchy does not produce; levels are {', '.join(levels)} (from "
                "[forecast].hierarchy)."
            )
    if gate.min_coverage or gate.max_coverage or gate.coverage_interval is not None:
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
    version = baseline.get("format")
    if version != METRICS_FORMAT:
        raise DataError(
            f"{source} is a metrics.json of format {version}; this mmplan reads format "
            f"{METRICS_FORMAT}, whose naive baseline is a per-lane seasonal naive summed "
            "bottom-up, so its skill and WAPE are not comparable with this run's. Re-run "
            "`mmplan backtest` on the earlier forecast configuration to make a new baseline."
        )


def checked_baseline(baseline: Any, source: str = "the baseline") -> Baseline:
    """`baseline` (parsed JSON) as a Baseline; DataError (65) as `check_baseline`."""
    if isinstance(baseline, Baseline):
        return baseline
    check_baseline(baseline, source)
    return Baseline(baseline)


def read_baseline(read: Callable[[], str], source: str) -> Baseline:
    """The metrics.json of an earlier run, for max_regression, read by calling `read`.

    `read` returns the file's text (the caller owns the I/O, e.g.
    ``functools.partial(path.read_text, encoding="utf-8")``); `source` names the file in
    messages. InputFileError (66) when it cannot be read or is not JSON; DataError (65)
    when it is JSON but not a metrics.json from `mmplan backtest`.
    """
    try:
        parsed = json.loads(read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(
            f"--baseline {source} is not a readable metrics.json ({exc}). Pass the "
            "metrics.json that an earlier `mmplan backtest` wrote."
        ) from None
    return checked_baseline(parsed, source)


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
    baseline: dict[str, Any] | Baseline | None = None,
) -> list[GateResult]:
    """Check every configured rule on the primary run's overall metrics, in config order.

    max_wape: WAPE <= t. max_abs_bias: |bias| <= t. min_coverage / max_coverage: coverage
    of the coverage_interval interval >= t / <= t. beat_naive_by: skill (1 - WAPE / naive
    WAPE) > t.
    max_regression: WAPE - baseline WAPE <= t (skipped without a baseline; failed when the
    baseline has no WAPE for the level). A null measurement fails its rule.
    """
    prior = baseline.record if isinstance(baseline, Baseline) else baseline
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
            elif rule in ("min_coverage", "max_coverage"):
                metric = f"coverage_{p}"
                measured = row.get(metric)
            elif rule == "beat_naive_by":
                measured = row.get("skill")
            else:
                if prior is None:
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
                before, now = _baseline_wape(prior, level), row.get("wape")
                measured = None if before is None or now is None else now - before
                detail = (
                    f"baseline WAPE {before:.4f}, now {now:.4f}"
                    if measured is not None
                    else "the baseline has no WAPE for this level"
                )
            measured = finite(measured)
            if measured is None:
                passed = False
                detail = detail or "undefined (zero actual volume with a non-zero error)"
            else:
                passed = {
                    "<=": measured <= threshold,
                    ">=": measured >= threshold,
                    ">": measured > threshold,
                }[op]
            results.append(GateResult(rule, level, metric, op, threshold, measured, passed, detail))
    return results


def gates_passed(gates: list[GateResult]) -> bool:
    """The gate's verdict: True when no rule failed (skipped rules do not fail)."""
    return all(g.passed is not False for g in gates)
