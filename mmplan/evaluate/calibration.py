"""Interval calibration: how much wider the forecast's intervals would have had to be.

`calibrate` gives, per level, rule and interval level p, the factor k by which the primary
run's interval half-widths would have had to be scaled to cover p% of the backtest's
points: the split-conformal quantile of |actual - forecast| / (hi_p - forecast), the
ceil((n + 1) p / 100)-th smallest of the n ratios (the largest when n is too small for
that). Base models' own intervals come from in-sample residuals, which understate what a
peak or a level shift does to the aggregates; these factors are measured on out-of-sample
errors over the backtest's horizon. Rules (regular, short, sparse) get factors of their own
because their intervals differ in kind: a sparse lane's ratios would otherwise set the width
of every regular lane. Rule ``all`` pools the level, for a series whose rule had no points.
The table, which also names the model, lanes mode, reconciliation and horizon it was measured
for, is what `mmplan forecast --calibration` reads; its contract (CALIBRATION_RULES
included) is mmplan.tables.validate_calibration.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.config import ForecastConfig
from mmplan.evaluate.metrics import NEW_MODEL
from mmplan.forecasting.calibration import conformal_factor
from mmplan.tables import CALIBRATION_FORMAT, CALIBRATION_RULES

__all__ = ["calibrate", "rule_of_label"]


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
    rows: list[dict[str, Any]] = []
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
                ratios = r["ratios"] if r else []
                rows.append(
                    {
                        "level": level,
                        "rule": rule,
                        "interval": p,
                        "factor": conformal_factor(ratios, p),
                        "points": len(ratios),
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
        format=pl.lit(CALIBRATION_FORMAT, pl.Int64),
    )


def rule_of_label(label: pl.Expr) -> pl.Expr:
    """The rule in a forecast's model label: ``<model>/<rule>``, else regular."""
    return (
        pl.when(label.str.contains("/"))
        .then(label.str.split("/").list.last())
        .otherwise(pl.lit("regular"))
    )
