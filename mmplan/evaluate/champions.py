"""Champions (`[backtest] select = true`): the candidate model each series is best fit by.

Per series (or per level, `select_by`), the candidate with the lowest backtest WAPE. For
one series the WAPE denominator is the same for every candidate, so this is the lowest sum
of absolute errors, which is also zero-safe. Ties go to the candidate listed first.
``Zero/new`` points take no part. The table (unique_id, level, model, wape) is what
`mmplan forecast --champions` reads.
"""

from __future__ import annotations

import polars as pl

from mmplan.evaluate.metrics import NEW_MODEL, ratio

__all__ = ["select_champions"]


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
        .with_columns(ratio(pl.col("_abs"), pl.col("_act")).alias("wape"))
    )
    series = scored.select("unique_id", "level").unique()
    if select_by == "series":
        chosen = best.join(series, on="unique_id")
    else:
        chosen = series.join(best.drop("unique_id", strict=False), on="level")
    return chosen.select("unique_id", "level", pl.col("run").alias("model"), "wape").sort(
        "level", "unique_id"
    )
