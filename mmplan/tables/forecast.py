"""The forecast table's contract (DESIGN.md, "Tables"): required columns and types,
non-negative points inside ordered intervals, unique keys, and levels that add up. No I/O.
"""

from __future__ import annotations

import polars as pl

from mmplan.tables.checks import (
    NUMERIC,
    Problem,
    duplicates,
    flag,
    non_negative,
    null_keys,
    require_columns,
)

__all__ = ["validate_forecast"]


def validate_forecast(df: pl.DataFrame) -> list[Problem]:
    """Problems with a forecast table, including whether its levels add up."""
    problems = require_columns(
        df,
        {
            "unique_id": pl.String,
            "level": pl.String,
            "date": pl.Date,
            "forecast": NUMERIC,
            "model": pl.String,
        },
    )
    if df.is_empty():
        return problems + [Problem(None, "the table has no rows")]
    problems += null_keys(df, ["unique_id", "level", "date"])
    problems += non_negative(df, "forecast", "forecast", allow_null=False)
    problems += duplicates(df, ["unique_id", "date"], "(unique_id, date) rows")
    bounds = [c for c in df.columns if c.startswith(("lo_", "hi_"))]
    for c in bounds:
        if df.schema[c] not in NUMERIC:
            problems.append(Problem(c, f"has type {df.schema[c]}, expected a number"))
    numeric = {c for c in [*bounds, "forecast"] if c in df.columns and df.schema[c] in NUMERIC}
    for lo in [c for c in bounds if c.startswith("lo_")]:
        hi = "hi_" + lo[3:]
        if {lo, hi, "forecast"} <= numeric:
            bad = (pl.col(lo) > pl.col("forecast") + 1e-9) | (
                pl.col("forecast") > pl.col(hi) + 1e-9
            )
            problems += flag(df, lo, bad, f"interval is not ordered {lo} <= forecast <= {hi}")
    problems += _incoherent_levels(df)
    return problems


def _incoherent_levels(df: pl.DataFrame) -> list[Problem]:
    """Every level partitions the lanes, so per date each level must sum to the total."""
    needed = {"level", "date", "forecast"}
    if not needed <= set(df.columns) or df.schema["forecast"] not in NUMERIC:
        return []
    if df.schema["level"] != pl.String:
        return []
    sums = df.group_by("level", "date").agg(pl.col("forecast").cast(pl.Float64).sum().alias("s"))
    total = sums.filter(pl.col("level") == "total").select("date", pl.col("s").alias("t"))
    if total.is_empty():
        return []
    off = (
        sums.join(total, on="date")
        .filter((pl.col("s") - pl.col("t")).abs() > 1e-6 * pl.max_horizontal(pl.col("t").abs(), 1))
        .get_column("level")
        .unique()
        .sort()
        .to_list()
    )
    if not off:
        return []
    return [Problem("forecast", f"levels do not add up to the total: {', '.join(off)}")]
