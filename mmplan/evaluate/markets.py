"""Markets: every market of a network scored on its own, with its own gate or alert rules.

`[markets] column` names a history column (constant per lane) that says which market each
lane belongs to. Backtest and monitor then score every market as well as the whole
network: a scoreboard market x level x metric, built from the same points by
mmplan.evaluate.metrics.market_points (a market's part of a series that spans markets is the
sum of its own lanes) and the same `compute_metrics`.

Rules: `[gate.markets.<name>]` (and `[monitor.markets.<name>]`) override the section's rules
level by level for that market; every other rule of the section applies to each market as
it stands. A verdict's level reads `<market>:<level>`. A market named in an override that
the history does not hold, or a `column` it lacks, is a configuration error (78).
"""

from __future__ import annotations

from typing import Any, TypeVar

import polars as pl
from pydantic import BaseModel

from mmplan.config import Config, GateConfig, GateRules, MonitorRules
from mmplan.errors import ConfigError
from mmplan.evaluate.gates import Baseline, GateResult, evaluate_gates
from mmplan.evaluate.metrics import compute_metrics, lane_markets, market_points, metrics_record
from mmplan.forecasting import hierarchy_levels
from mmplan.forecasting.hierarchy import Level

__all__ = [
    "market_names",
    "check_markets",
    "merged_rules",
    "market_scores",
    "market_gates",
    "markets_record",
    "market_baseline",
]

S = TypeVar("S", bound=BaseModel)


def market_names(history: pl.DataFrame, column: str) -> list[str]:
    """The markets of a history, sorted."""
    return sorted(history.get_column(column).drop_nulls().unique().to_list())


def check_markets(
    cfg: Config, history: pl.DataFrame, overrides: dict[str, Any], section: str, source: str
) -> list[str]:
    """The history's markets; ConfigError (78) when [markets] column is not a String column
    of the history, or `overrides` ([gate.markets] / [monitor.markets]) name another
    market. Without [markets] column, overrides are an error too (they would check nothing)."""
    column = cfg.markets.column
    if column is None:
        if overrides:
            raise ConfigError(
                f"{source}: [{section}.markets] sets rules for {', '.join(sorted(overrides))}, "
                "but [markets] column is not set, so there are no markets to check. Set "
                '[markets] column = "market" (the history column naming each lane\'s market).'
            )
        return []
    if column not in history.columns or history.schema[column] != pl.String:
        raise ConfigError(
            f"{source}: [markets] column = {column!r}, which the history does not have as a "
            f"text column (its columns: {', '.join(history.columns)})."
        )
    names = market_names(history, column)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ConfigError(
            f"{source}: [{section}.markets] names market {', '.join(map(repr, unknown))}, which "
            f"the history's {column} column does not hold; its markets are {', '.join(names)}."
        )
    return names


def merged_rules(base: S, override: GateRules | MonitorRules | None) -> S:
    """`base`'s rules with the levels `override` sets replacing them, rule by rule (and
    its coverage_interval, when set)."""
    if override is None:
        return base
    values = base.model_dump()
    for key in override.model_fields_set:
        mine = getattr(override, key)
        values[key] = {**values[key], **mine} if isinstance(mine, dict) else mine
    return type(base)(**values)


def market_scores(
    points: pl.DataFrame,
    history: pl.DataFrame,
    column: str,
    levels: list[Level],
    intervals: list[int],
    by: tuple[str, ...] = ("market", "level"),
) -> pl.DataFrame:
    """Pooled metrics per run x market x level (x step), from the network's points."""
    lanes = lane_markets(history, column, levels)
    return compute_metrics(market_points(points, lanes, levels), intervals, by=by)


def market_baseline(baseline: Baseline | None, market: str) -> dict[str, Any] | None:
    """An earlier metrics.json's record of one market, shaped as a whole metrics.json."""
    if baseline is None:
        return None
    record = baseline.record
    markets = record.get("markets") or {}
    if market not in markets:
        return None
    return {"primary": record["primary"], "metrics": markets[market]}


def market_gates(
    scores: pl.DataFrame,
    gate: GateConfig,
    cfg: Config,
    primary: str,
    baseline: Baseline | None,
) -> list[GateResult]:
    """Every market's gate: [gate] merged with [gate.markets.<market>], checked on that
    market's scores; levels read `<market>:<level>`."""
    results = []
    for market in scores.get_column("market").unique().sort():
        rules = merged_rules(gate.model_copy(update={"markets": {}}), gate.markets.get(market))
        mine = scores.filter(pl.col("market") == market).drop("market")
        prior = market_baseline(baseline, market)
        verdicts = evaluate_gates(mine, rules, cfg.forecast, primary, prior)
        results += [_in_market(g, market) for g in verdicts]
    return results


def _in_market(g: GateResult, market: str) -> GateResult:
    from dataclasses import replace

    return replace(g, level=f"{market}:{g.level}")


def markets_record(scores: pl.DataFrame, cfg: Config, columns: list[str]) -> dict[str, Any]:
    """metrics.json's "markets": market -> run -> level -> metrics (as "metrics")."""
    levels = [name for name, _ in hierarchy_levels(cfg.forecast, columns)]
    return {
        market: metrics_record(
            scores.filter(pl.col("market") == market).drop("market"), levels, cfg.forecast.levels
        )
        for market in scores.get_column("market").unique().sort()
    }
