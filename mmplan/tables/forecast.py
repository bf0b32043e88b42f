"""The forecast table's contract (DESIGN.md, "Tables"): required columns and types,
non-negative points inside ordered intervals, unique keys, and levels that add up. No I/O.

A long-range forecast (mmplan.forecasting.temporal) adds a `grain` column (`day`, `week`,
`month`; `date` is the period's first day): keys are then unique per grain, levels add up
per grain, and the days of each ISO week and calendar month add up to its row. A forecast
without `grain` is daily; `day_rows` is what stages that score or plan days read.
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

__all__ = ["validate_forecast", "GRAINS", "day_rows"]

GRAINS = ("day", "week", "month")
# The period each coarser grain's `date` starts, as Polars truncation units.
_TRUNCATE = {"week": "1w", "month": "1mo"}


def day_rows(df: pl.DataFrame) -> pl.DataFrame:
    """The daily rows of a forecast table, without the `grain` column: the table itself when
    it has none (a forecast without `grain` is daily)."""
    if "grain" not in df.columns:
        return df
    return df.filter(pl.col("grain") == "day").drop("grain")


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
    grained = "grain" in df.columns
    if grained:
        problems += _bad_grains(df)
    keys = ["unique_id", "grain", "date"] if grained else ["unique_id", "date"]
    problems += duplicates(df, keys, f"({', '.join(keys)}) rows")
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
    if not grained:
        return problems + _incoherent_levels(df)
    if not any(p.column == "grain" for p in problems):
        for g in GRAINS:
            off = _incoherent_levels(df.filter(pl.col("grain") == g))
            problems += [Problem(p.column, f"{g} rows: {p.message}") for p in off]
        problems += _incoherent_grains(df)
    return problems


def _bad_grains(df: pl.DataFrame) -> list[Problem]:
    """A `grain` column must be text holding day, week or month, never null."""
    if df.schema["grain"] != pl.String:
        return [Problem("grain", f"has type {df.schema['grain']}, expected Utf8")]
    bad = pl.col("grain").is_null() | ~pl.col("grain").is_in(list(GRAINS))
    return flag(df, "grain", bad, f"grain must be one of {', '.join(GRAINS)}")


def _incoherent_grains(df: pl.DataFrame) -> list[Problem]:
    """Per series, the day rows of each ISO week and calendar month sum to its row."""
    if df.schema["forecast"] not in NUMERIC or df.schema["date"] != pl.Date:
        return []
    days = df.filter(pl.col("grain") == "day")
    off = []
    for g, unit in _TRUNCATE.items():
        rows = df.filter(pl.col("grain") == g).select("unique_id", "date", "forecast")
        if rows.is_empty() or days.is_empty():
            continue
        sums = days.group_by("unique_id", pl.col("date").dt.truncate(unit)).agg(
            pl.col("forecast").cast(pl.Float64).sum().alias("s")
        )
        joined = rows.join(sums, on=["unique_id", "date"], how="left")
        diff = (pl.col("s").fill_null(0.0) - pl.col("forecast")).abs()
        bad = joined.filter(diff > 1e-6 * pl.max_horizontal(pl.col("forecast").abs(), 1))
        if not bad.is_empty():
            first = bad.row(0, named=True)
            off.append(
                f"{bad.height} {g} rows are not the sum of their days (e.g. "
                f"{first['unique_id']} on {first['date']})"
            )
    return [Problem("forecast", "; ".join(off))] if off else []


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
