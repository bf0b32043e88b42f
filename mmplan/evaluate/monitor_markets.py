"""Monitoring per market: each market's scores, drift and alerts from the network's points.

With `[markets] column`, `mmplan monitor` adds rows of scope `market` to scores.parquet
(market x level, over the observed days): the backtest's per-market scoreboard
(mmplan.evaluate.markets) on the monitored forecast, with each market's expected WAPE from
the baseline's "markets" record and the largest |tracking signal| among the market's series
at each level (over this forecast's days; a series that lies in one market also carries its
across-runs signal in the `series` rows). Alerts: `[monitor]` merged with
`[monitor.markets.<name>]`, levels reading `<market>:<level>`; the plan's overflow rule is
network-wide and not repeated per market.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import polars as pl

from mmplan.config import Config
from mmplan.evaluate.alerts import evaluate_alerts
from mmplan.evaluate.drift import largest_drift, tracking_signal
from mmplan.evaluate.expected import expected_scores
from mmplan.evaluate.gates import Baseline, GateResult
from mmplan.evaluate.markets import market_baseline, market_scores, merged_rules
from mmplan.evaluate.metrics import finite, ratio
from mmplan.forecasting import hierarchy_levels

__all__ = ["MarketMonitor", "market_monitor"]


@dataclass(frozen=True)
class MarketMonitor:
    """Per market: score rows (scope `market`), alert verdicts, and summary.json's record."""

    scores: pl.DataFrame
    gates: list[GateResult]
    record: dict[str, Any]


def _series(
    scores: pl.DataFrame, market: str, bound: dict[str, float], default: float
) -> pl.DataFrame:
    """A market's series rows as `largest_drift` reads them."""
    limit = pl.col("level").replace_strict(bound, default=default, return_dtype=pl.Float64)
    return (
        scores.filter(pl.col("market") == market)
        .with_columns(
            pl.lit("series").alias("scope"), tracking_signal().alias("tracking_signal_all")
        )
        .with_columns((pl.col("tracking_signal_all").abs() > limit).alias("drift"))
    )


def market_monitor(
    points: pl.DataFrame,
    cfg: Config,
    history: pl.DataFrame,
    steps: int,
    baseline: Baseline | None,
    primary: str,
) -> MarketMonitor:
    """Score every market of `history` ([markets] column) on `points` (run `primary` and
    the naive), hold them against the baseline's markets and check the market rules."""
    fcfg, mcfg, column = cfg.forecast, cfg.monitor, cfg.markets.column
    assert column is not None
    levels = hierarchy_levels(fcfg, history.columns)
    names = [name for name, _ in levels]
    mine = pl.col("run") == primary
    overall = market_scores(points, history, column, levels, fcfg.levels).filter(
        mine & pl.col("step").is_null()
    )
    by_series = market_scores(
        points, history, column, levels, fcfg.levels, by=("market", "level", "unique_id")
    ).filter(mine & pl.col("step").is_null())
    base_rules = mcfg.model_copy(update={"markets": {}, "max_overflow_share": {}})
    frames, gates, record = [], [], {}
    for market in overall.get_column("market").unique().sort():
        rows = overall.filter(pl.col("market") == market)
        prior = market_baseline(baseline, market)
        wrapped = None if prior is None else Baseline(prior | {"horizon": None})
        expected, _ = expected_scores(wrapped, names, steps, fcfg.levels)
        if expected is not None:
            rows = rows.join(expected, on=["level", "step"], how="left", nulls_equal=True)
            rows = rows.with_columns(
                ratio(pl.col("wape"), pl.col("expected_wape")).alias("wape_ratio")
            )
        drifting = largest_drift(
            _series(by_series, market, mcfg.max_abs_tracking_signal, mcfg.drift_bound)
        )
        rows = rows.with_columns(
            pl.col("level")
            .replace_strict(
                {lv: ts for lv, (ts, _) in drifting.items()}, default=None, return_dtype=pl.Float64
            )
            .alias("max_abs_tracking_signal")
        )
        why = "" if wrapped else "the --baseline has no record of this market (or none given)"
        by_level = {
            r["level"]: {k: finite(v) for k, v in r.items() if k not in ("run", "market", "level")}
            | ({} if wrapped else {"baseline_note": why})
            for r in rows.iter_rows(named=True)
        }
        rules = merged_rules(base_rules, mcfg.markets.get(market))
        verdicts = evaluate_alerts(rules, by_level, drifting, fcfg.levels, None)
        gates += [dataclasses.replace(g, level=f"{market}:{g.level}") for g in verdicts]
        record[market] = {lv: by_level[lv] for lv in names if lv in by_level}
        frames.append(rows)
    scores = (
        pl.concat(frames, how="diagonal_relaxed")
        .drop("run", "step")
        .with_columns(pl.lit("market").alias("scope"))
    )
    return MarketMonitor(scores, gates, record)
