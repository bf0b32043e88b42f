"""Monitoring alerts (`[monitor]`): rules keyed by level, in the shapes of the backtest gate.

Each rule becomes a `GateResult` (mmplan.evaluate.gates), so the verdict, the JUnit file
and the CI summary are the backtest gate's:

- max_wape: the level's pooled WAPE on the observed days <= t;
- max_wape_ratio: WAPE / the backtest's WAPE on the same horizon steps (--baseline) <= t;
  skipped without a baseline;
- min_coverage: share of actuals inside the coverage_interval interval >= t;
- max_abs_tracking_signal: the largest |tracking signal| of the level's series <= t (across
  runs with --append; mmplan.evaluate.drift);
- max_overflow_share (keys `lane` and `network`, with --plan): overflow / actual volume of
  the worst lane, and of the whole network, <= t; skipped without a plan.

With `--gate` and no rule configured the default rules apply (`default_monitor`), so a
monitoring job always checks something. A null measurement fails its rule.
"""

from __future__ import annotations

from typing import Any

from mmplan.config import MonitorConfig
from mmplan.errors import ConfigError
from mmplan.evaluate.gates import DEFAULT_COVERAGE_TOLERANCE, RULES, GateResult, Rule
from mmplan.evaluate.metrics import finite

__all__ = [
    "MONITOR_RULES",
    "DEFAULT_WAPE_RATIO",
    "DEFAULT_TRACKING_SIGNAL",
    "DEFAULT_OVERFLOW_SHARE",
    "has_monitor_rules",
    "default_monitor",
    "check_monitor",
    "evaluate_alerts",
]

MONITOR_RULES = {
    "max_wape": RULES["max_wape"],
    "max_wape_ratio": Rule("wape_ratio", "<="),
    "min_coverage": RULES["min_coverage"],
    "max_abs_tracking_signal": Rule("abs_tracking_signal", "<="),
    "max_overflow_share": Rule("overflow_share", "<="),
}
# The default rules' thresholds (README "Monitoring").
DEFAULT_WAPE_RATIO = 1.5
DEFAULT_TRACKING_SIGNAL = 4.0
DEFAULT_OVERFLOW_SHARE = 0.05


def has_monitor_rules(mcfg: MonitorConfig) -> bool:
    """True when `[monitor]` configures at least one rule."""
    return any(getattr(mcfg, rule) for rule in MONITOR_RULES)


def default_monitor(mcfg: MonitorConfig, levels: list[str], intervals: list[int]) -> MonitorConfig:
    """The rules `mmplan monitor --gate` applies when [monitor] has none: at every level WAPE
    at most 1.5x the backtest's (with --baseline) and coverage of the narrowest interval at
    least 15 points under nominal; |tracking signal| <= 4 at the total; with --plan, at most
    5% of the network's volume overflowing its trucks."""
    update: dict[str, Any] = {
        "max_wape_ratio": dict.fromkeys(levels, DEFAULT_WAPE_RATIO),
        "max_abs_tracking_signal": {levels[0]: DEFAULT_TRACKING_SIGNAL},
        "max_overflow_share": {"network": DEFAULT_OVERFLOW_SHARE},
    }
    if intervals:
        nominal = min(intervals) / 100
        update["coverage_interval"] = min(intervals)
        update["min_coverage"] = dict.fromkeys(
            levels, round(max(0.0, nominal - DEFAULT_COVERAGE_TOLERANCE), 6)
        )
    return mcfg.model_copy(update=update)


def coverage_interval(mcfg: MonitorConfig, intervals: list[int]) -> int | None:
    """The interval min_coverage checks: the configured one, else the narrowest."""
    if mcfg.coverage_interval is not None:
        return mcfg.coverage_interval
    return min(intervals) if intervals else None


def check_monitor(
    mcfg: MonitorConfig, levels: list[str], intervals: list[int], source: str = "config"
) -> None:
    """ConfigError (78) when a rule names a level the forecast does not have, or checks an
    interval it does not carry. Called before anything is scored."""
    for rule in MONITOR_RULES:
        if rule == "max_overflow_share":
            continue  # its keys (lane, network) are checked by the config model
        unknown = [lv for lv in getattr(mcfg, rule) if lv not in levels]
        if unknown:
            raise ConfigError(
                f"{source}: [monitor].{rule} names level {', '.join(map(repr, unknown))}, "
                f"which the forecast does not have; its levels are {', '.join(levels)}."
            )
    if mcfg.min_coverage or mcfg.coverage_interval is not None:
        p = coverage_interval(mcfg, intervals)
        if p is None or p not in intervals:
            raise ConfigError(
                f"{source}: [monitor] checks coverage of the {p}% interval, which the "
                f"forecast does not carry (its intervals: {intervals or 'none'}). Set "
                "[monitor].coverage_interval to one of them."
            )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _verdict(
    rule: str, level: str, threshold: float, measured: float | None, detail: str = ""
) -> GateResult:
    metric, op = MONITOR_RULES[rule]
    measured = finite(measured)
    if measured is None:
        return GateResult(rule, level, metric, op, threshold, None, False, detail or "undefined")
    passed = measured >= threshold if op == ">=" else measured <= threshold
    return GateResult(rule, level, metric, op, threshold, measured, passed, detail)


def _skipped(rule: str, level: str, threshold: float, why: str) -> GateResult:
    metric, op = MONITOR_RULES[rule]
    return GateResult(rule, level, metric, op, threshold, None, None, why)


def evaluate_alerts(
    mcfg: MonitorConfig,
    levels: dict[str, dict[str, Any]],
    drifting: dict[str, tuple[float | None, str]],
    intervals: list[int],
    plan: dict[str, Any] | None,
) -> list[GateResult]:
    """Every configured rule's verdict, in rule order.

    `levels`: per level its overall scores (wape, wape_ratio, coverage_<p>, ...), and
    `baseline_note` when there is no baseline to compute wape_ratio from (the rule is skipped);
    `drifting`: per level the largest |tracking signal| and the series it belongs to;
    `plan`: the plan's network totals with `worst_lane` and `worst_lane_share`, or None."""
    p = coverage_interval(mcfg, intervals)
    results = []
    for level, t in mcfg.max_wape.items():
        results.append(_verdict("max_wape", level, t, levels.get(level, {}).get("wape")))
    for level, t in mcfg.max_wape_ratio.items():
        row = levels.get(level, {})
        if row.get("baseline_note"):  # no baseline to hold this level against
            results.append(_skipped("max_wape_ratio", level, t, row["baseline_note"]))
            continue
        detail = f"expected WAPE {_num(row.get('expected_wape'))}, observed {_num(row.get('wape'))}"
        if row.get("expected_wape") is None:
            detail = "the baseline has no WAPE for this level and these steps"
        results.append(_verdict("max_wape_ratio", level, t, row.get("wape_ratio"), detail))
    for level, t in mcfg.min_coverage.items():
        value = levels.get(level, {}).get(f"coverage_{p}")
        results.append(_verdict("min_coverage", level, t, value, f"{p}% interval"))
    for level, t in mcfg.max_abs_tracking_signal.items():
        value, series = drifting.get(level, (None, ""))
        results.append(_verdict("max_abs_tracking_signal", level, t, value, series))
    for key, t in mcfg.max_overflow_share.items():
        if plan is None:
            results.append(_skipped("max_overflow_share", key, t, "no --plan given"))
        elif key == "network":
            results.append(_verdict("max_overflow_share", key, t, plan["overflow_share"]))
        else:
            lane = plan.get("worst_lane") or ""
            results.append(_verdict("max_overflow_share", key, t, plan["worst_lane_share"], lane))
    return results
