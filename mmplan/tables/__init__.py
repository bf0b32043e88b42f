"""Table contracts (DESIGN.md, "Tables") and their validation.

Each `validate_*` function returns every problem it finds, not only the first, as
`Problem`s that name the column and the offending rows. `check` turns a non-empty list
into one DataError (exit 65). `normalise` casts volume-like columns to Float64 so the
stages can trust what they get; reading a file and checking it is `mmplan.io.read_table`
(this module does no I/O).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mmplan.errors import DataError
from mmplan.tables.checks import (
    LANE_KEYS,
    NUMERIC,
    TEXT,
    Columns,
    Problem,
    blank_names,
    duplicates,
    flag,
    is_text,
    lane_name,
    node_name,
    non_negative,
    null_keys,
    require_columns,
)
from mmplan.tables.forecast import GRAINS, day_rows, validate_forecast

__all__ = [
    "Problem",
    "KINDS",
    "LANE_KEYS",
    "CALIBRATION_RULES",
    "validate",
    "validate_history",
    "validate_nodes",
    "validate_lanes",
    "validate_forecast",
    "GRAINS",
    "day_rows",
    "validate_demand",
    "validate_champions",
    "validate_calibration",
    "CALIBRATION_FORMAT",
    "validate_trucks",
    "validate_flows",
    "validate_plan_nodes",
    "validate_unserved",
    "validate_metrics",
    "validate_points",
    "validate_scores",
    "validate_alerts",
    "detect_kind",
    "table_kind",
    "check",
    "normalise",
]

NODE_KINDS = ("FC", "SC", "DS")
KINDS = (
    "history",
    "forecast",
    "nodes",
    "lanes",
    "demand",
    "champions",
    "calibration",
    # What mmplan writes besides forecasts: a plan folder's tables and backtest metrics.
    "trucks",
    "flows",
    "plan_nodes",
    "unserved",
    "metrics",
    "points",
    "scores",  # mmplan monitor's
    "alerts",
)


# Magnitude limits, far beyond any real network yet well inside what the stages compute
# with. A volume of 1e15 packages per lane-day keeps sums over 100k lanes and years of days
# (and the squares the reconciliation weights take) finite; at 1.7e308 aggregation
# overflows and every forecast is NaN. A cost of 1e9 per truck or package is 10x the
# largest [optimize] unserved_penalty (1e8): past it, SCIP's tolerances (1e-6 relative)
# drown the other costs and 1e300 makes the model invalid.
MAX_VOLUME = 1e15
MAX_COST = 1e9


VOLUME_WHY = "such volumes overflow the forecast's sums"
COST_WHY = "past it the solver cannot tell the other costs apart (unserved_penalty is <= 1e8)"


def _too_large(
    df: pl.DataFrame, column: str, what: str, limit: float, why: str = COST_WHY
) -> list[Problem]:
    """Rows whose `column` exceeds `limit` (finite values only: non-finite is its own
    Problem), naming the largest value and the limit."""
    if column not in df.columns or df.schema[column] not in NUMERIC:
        return []
    col = pl.col(column).cast(pl.Float64)
    mask = col.is_finite() & (col > limit)
    largest = df.select(col.filter(mask).max()).item()
    if largest is None:
        return []
    message = (
        f"has {what} above mmplan's limit of {limit:,.0f} (largest {largest:.3g}); "
        f"{why}: check the upstream units or scale"
    )
    return flag(df, column, mask, message)


def validate_history(
    df: pl.DataFrame, max_gap_days: int | None = None, freq: str | None = None, cat: bool = False
) -> list[Problem]:
    """Problems with a history (one row per lane and date); with `max_gap_days`, also a longer
    stretch with no row at all; with `freq` "week" or "month", dates that do not fit it.
    `cat` takes Categorical text (the forecast's compacted frame); a file's must be String."""
    text = TEXT if cat else (pl.String,)
    problems = require_columns(
        df, {"date": pl.Date, "origin": text, "destination": text, "volume": NUMERIC}
    )
    if df.is_empty():
        return problems + [Problem(None, "the table has no rows")]
    problems += null_keys(df, ["date", *LANE_KEYS])
    problems += non_negative(df, "volume", "volume", allow_null=False)
    problems += _too_large(df, "volume", "volumes per lane-day", MAX_VOLUME, VOLUME_WHY)
    if not all(c in df.columns for c in (*LANE_KEYS, "date")):
        return problems + duplicates(df, ["origin", "destination", "date"], "(lane, date) rows")
    attrs = [c for c in df.columns if c not in ("date", "volume", *LANE_KEYS)]
    text_attrs = [c for c in attrs if is_text(df.schema[c], cat)]
    # One pass over the lanes answers both "duplicated days?" and "constant attributes?";
    # the row-level duplicate search (slow: it hashes every row) runs only when needed.
    # The streaming engine keeps this at a fraction of the in-memory engine's peak (which
    # encodes every row's keys at once): 0.9 GB instead of 1.9 GB at 7.3M rows.
    per_lane = (
        df.lazy()
        .group_by(LANE_KEYS)
        .agg(
            pl.len().alias(" rows"),  # names no String column can clash with: they
            pl.col("date").n_unique().alias(" days"),  # start with a space
            *[pl.col(c).n_unique() for c in text_attrs],
        )
        .collect(engine="streaming")
    )
    # Blank names are searched row by row only when a lane has one (a 73M-row history
    # has ~100k lanes).
    keys = [c for c in LANE_KEYS if is_text(df.schema[c], cat)]  # others: wrong above
    blank = pl.col(keys).cast(pl.String).str.strip_chars() == ""
    if keys and per_lane.select(blank).to_numpy().any():
        problems += blank_names(df, keys)
    if (per_lane[" rows"] != per_lane[" days"]).any():
        problems += duplicates(df, ["origin", "destination", "date"], "(lane, date) rows")
    if keys == LANE_KEYS and (per_lane["origin"] == per_lane["destination"]).any():
        loop = pl.col("origin") == pl.col("destination")
        message = "lane starts and ends at the same facility"
        problems += flag(df, "destination", loop, message, lane_name(df))
    if max_gap_days is not None and df.schema["date"] == pl.Date:
        problems += _date_gap(df, max_gap_days)
    if freq in ("week", "month") and df.schema["date"] == pl.Date:
        problems += _off_period(df, freq)
    for col in attrs:
        if col not in text_attrs:
            problems.append(
                Problem(
                    col,
                    f"has type {df.schema[col]}; extra columns must be "
                    "String attributes (e.g. origin_region)",
                )
            )
            continue
        problems += flag(df, col, pl.col(col).is_null(), "has nulls in a lane attribute column")
        varying = per_lane.filter(pl.col(col) > 1)
        if varying.height:
            lanes = ", ".join(f"{o}->{d}" for o, d in varying.select(LANE_KEYS).head(3).rows())
            problems.append(
                Problem(
                    col,
                    f"is not constant per lane: {varying.height} lanes "
                    f"have several values (e.g. {lanes})",
                )
            )
    return problems


def _date_gap(df: pl.DataFrame, max_gap_days: int) -> list[Problem]:
    """The widest stretch of days with no row on any lane, when longer than `max_gap_days`:
    a lone row dated 1970-01-01 makes every aggregate zero-filled across decades. The rows
    on the smaller side of the gap are named (usually a placeholder date)."""
    days = df.select(pl.col("date").drop_nulls().unique().sort()).to_series()
    if days.len() < 2:
        return []
    widest = int(days.diff().dt.total_days().arg_max() or 0)
    before, after = days[widest - 1], days[widest]
    gap = (after - before).days - 1
    if gap <= max_gap_days:
        return []
    early = df.select((pl.col("date") <= before).sum()).item()
    side = pl.col("date") <= before if early <= df.height - early else pl.col("date") >= after
    message = (
        f"has no row on any lane for {gap} days, from {before} to {after}, more than "
        f"[forecast] max_history_gap_days = {max_gap_days}; the rows on the smaller side "
        "look like placeholder dates: drop or fix them, or raise max_history_gap_days if "
        "the history really has such a gap"
    )
    return flag(df, "date", side, message)


def _off_period(df: pl.DataFrame, freq: str) -> list[Problem]:
    """Rows whose date is not a period's date under an explicit [forecast] freq: a month is
    dated by its 1st; a week by one weekday, the one most rows fall on (the others are
    named). `auto` refuses nothing (mmplan.forecasting.frequency)."""
    date = pl.col("date")
    if freq == "month":
        off = date.is_not_null() & (date.dt.day() != 1)
        rule = "a monthly history dates each month by its first day"
    else:
        weekday = df.select(date.drop_nulls().dt.weekday().mode().min()).item()
        if weekday is None:
            return []
        off = date.is_not_null() & (date.dt.weekday() != weekday)
        name = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
        rule = (
            f"a weekly history dates each week by one weekday, and most rows fall on a "
            f"{name[weekday - 1]}"
        )
    message = (
        f'has dates that do not fit [forecast] freq = "{freq}": {rule}. Fix those dates '
        'upstream, or set freq = "auto" or "day" if the history is daily'
    )
    return flag(df, "date", off, message, date.cast(pl.String))


def validate_nodes(df: pl.DataFrame) -> list[Problem]:
    """Problems with a nodes table."""
    problems = require_columns(
        df,
        {
            "node": pl.String,
            "kind": pl.String,
            "region": pl.String,
            "capacity": NUMERIC,
            "handling_cost": NUMERIC,
        },
    )
    for opt in ("extra_capacity", "extra_capacity_cost"):
        if opt in df.columns and df.schema[opt] not in NUMERIC:
            problems.append(Problem(opt, f"has type {df.schema[opt]}, expected a number"))
    if df.is_empty():
        return problems + [Problem(None, "the table has no rows")]
    problems += null_keys(df, ["node", "kind"])
    problems += blank_names(df, ["node"])
    problems += duplicates(df, ["node"], "node names")
    if "kind" in df.columns and df.schema["kind"] == pl.String:
        problems += flag(
            df,
            "kind",
            ~pl.col("kind").is_in(NODE_KINDS) & pl.col("kind").is_not_null(),
            f"has kinds other than {', '.join(NODE_KINDS)}",
        )
    problems += non_negative(df, "capacity", "capacity", allow_null=True)
    problems += non_negative(df, "handling_cost", "handling cost", allow_null=False)
    problems += _too_large(df, "handling_cost", "handling costs", MAX_COST)
    problems += _too_large(df, "extra_capacity_cost", "extra capacity costs", MAX_COST)
    problems += non_negative(df, "extra_capacity", "extra capacity", allow_null=True)
    problems += non_negative(df, "extra_capacity_cost", "extra capacity cost", allow_null=True)
    # Contradictory limits: a price-less offer of capacity, or extra capacity on top of
    # unlimited capacity, cannot mean what the planner intended.
    if "extra_capacity" in df.columns and df.schema["extra_capacity"] in NUMERIC:
        offered = pl.col("extra_capacity").cast(pl.Float64) > 0
        if "extra_capacity_cost" in df.columns:
            no_price = offered & pl.col("extra_capacity_cost").is_null()
        else:
            no_price = offered
        problems += flag(
            df,
            "extra_capacity_cost",
            no_price,
            "facilities offer extra_capacity without an extra_capacity_cost; give its price "
            "per package",
            node_name(df),
        )
        if "capacity" in df.columns:
            problems += flag(
                df,
                "capacity",
                offered & pl.col("capacity").is_null(),
                "facilities have unlimited capacity (null) but also extra_capacity; give a "
                "capacity or drop the extra",
                node_name(df),
            )
    return problems


def validate_lanes(df: pl.DataFrame, nodes: pl.DataFrame | None = None) -> list[Problem]:
    """Problems with a lanes table; with `nodes`, also lanes naming unknown facilities."""
    problems = require_columns(
        df,
        {
            "origin": pl.String,
            "destination": pl.String,
            "truck_capacity": NUMERIC,
            "cost_per_truck": NUMERIC,
        },
    )
    for opt in ("cost_per_package", "max_trucks", "transit_days"):
        if opt in df.columns and df.schema[opt] not in NUMERIC:
            problems.append(Problem(opt, f"has type {df.schema[opt]}, expected a number"))
    if df.is_empty():
        return problems + [Problem(None, "the table has no rows")]
    problems += null_keys(df, LANE_KEYS)
    problems += blank_names(df, LANE_KEYS)
    problems += duplicates(df, LANE_KEYS, "lanes (origin, destination)")
    if all(c in df.columns and df.schema[c] == pl.String for c in LANE_KEYS):
        problems += flag(
            df,
            "destination",
            pl.col("origin") == pl.col("destination"),
            "lane starts and ends at the same facility",
        )
    if "truck_capacity" in df.columns and df.schema["truck_capacity"] in NUMERIC:
        cap = pl.col("truck_capacity").cast(pl.Float64)
        problems += flag(
            df,
            "truck_capacity",
            (cap <= 0) | cap.is_null() | ~cap.is_finite(),
            "has a truck capacity that is not a positive number",
        )
    problems += non_negative(df, "cost_per_truck", "cost per truck", allow_null=False)
    problems += non_negative(df, "cost_per_package", "cost per package", allow_null=True)
    problems += _too_large(df, "cost_per_truck", "costs per truck", MAX_COST)
    problems += _too_large(df, "cost_per_package", "costs per package", MAX_COST)
    problems += non_negative(df, "max_trucks", "max trucks", allow_null=True)
    problems += non_negative(df, "transit_days", "transit days", allow_null=True)
    if "max_trucks" in df.columns and df.schema["max_trucks"] in NUMERIC:
        most = pl.col("max_trucks").cast(pl.Float64)
        problems += flag(
            df,
            "max_trucks",
            most.is_finite() & (most != most.round(0)),
            "is not a whole number of trucks",
            lane_name(df),
        )
    if nodes is not None and "node" in nodes.columns and nodes.schema["node"] == pl.String:
        known = nodes.get_column("node")
        for c in LANE_KEYS:
            if c in df.columns and df.schema[c] == pl.String:
                mask = pl.col(c).is_not_null() & ~pl.col(c).is_in(known.implode())
                unknown = df.filter(mask).get_column(c).unique().sort().head(5).to_list()
                problems += flag(
                    df,
                    c,
                    mask,
                    f"names facilities not in the nodes table (e.g. {', '.join(unknown)})"
                    if unknown
                    else "",
                )
    return problems


def validate_demand(df: pl.DataFrame, column: str = "volume") -> list[Problem]:
    """Problems with a demand table: origin, destination, date and a volume column."""
    problems = require_columns(
        df, {"origin": pl.String, "destination": pl.String, "date": pl.Date, column: NUMERIC}
    )
    if df.is_empty():
        return problems + [Problem(None, "the table has no rows")]
    problems += null_keys(df, ["date", *LANE_KEYS])
    problems += blank_names(df, LANE_KEYS)
    problems += non_negative(df, column, "volume", allow_null=False)
    problems += duplicates(
        df, ["origin", "destination", "date"], "(origin, destination, date) rows"
    )
    return problems


def validate_champions(df: pl.DataFrame) -> list[Problem]:
    """Problems with a champions table (unique_id, model) from `mmplan backtest`."""
    from mmplan.config import FORECAST_MODELS

    problems = require_columns(df, {"unique_id": pl.String, "model": pl.String})
    if problems:
        return problems
    problems += null_keys(df, ["unique_id", "model"])
    problems += duplicates(df, ["unique_id"], "series (one champion each)")
    unknown = ~pl.col("model").is_in(list(FORECAST_MODELS)) & pl.col("model").is_not_null()
    return problems + flag(
        df, "model", unknown, f"names models mmplan does not offer ({', '.join(FORECAST_MODELS)})"
    )


# The rules a calibration table may hold factors for: ``all`` pools a level, the others are
# forecasting's series rules. Part of the table's contract, so it lives here; the producer
# (mmplan.evaluate.calibration.calibrate) imports it from here.
CALIBRATION_RULES = ("all", "regular", "short", "sparse")
# The calibration table's format, kept equal to metrics.json's (mmplan.evaluate.metrics):
# 2 since the backtest's baseline became a per-lane seasonal naive; a table without the
# column is format 1.
CALIBRATION_FORMAT = 2


def validate_calibration(df: pl.DataFrame) -> list[Problem]:
    """Problems with a calibration table from `mmplan backtest` (mmplan.evaluate.calibrate)."""
    ints = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
    rerun = "run `mmplan backtest` again with this [forecast] configuration"
    if "format" not in df.columns:
        said = (
            "is missing: this is a calibration table of format 1; this mmplan reads format "
            f"{CALIBRATION_FORMAT}, {rerun}"
        )
        return [Problem("format", said)]
    problems = require_columns(
        df,
        {
            "level": pl.String,
            "rule": pl.String,
            "interval": ints,
            "factor": NUMERIC,
            "model": pl.String,
            "lanes": pl.String,
            "reconciliation": pl.String,
            "horizon": ints,
            "format": ints,
        },
    )
    if problems:
        return problems
    keys = ["level", "rule", "interval"]
    problems += null_keys(df, [*keys, "factor", "model", "lanes", "reconciliation", "horizon"])
    problems += duplicates(df, keys, "level, rule and interval (one factor each)")
    unknown = ~pl.col("rule").is_in(list(CALIBRATION_RULES)) & pl.col("rule").is_not_null()
    problems += flag(df, "rule", unknown, f"is not one of {', '.join(CALIBRATION_RULES)}")
    other = pl.col("format") != CALIBRATION_FORMAT
    problems += flag(
        df, "format", other, f"is not {CALIBRATION_FORMAT}, the format this mmplan reads; {rerun}"
    )
    # 0 is allowed: a backtest whose forecasts were exact measures zero-width intervals.
    bad = ~pl.col("factor").cast(pl.Float64).is_finite() | (pl.col("factor") < 0)
    return problems + flag(df, "factor", bad, "is not a finite number >= 0")


def _output_table(
    df: pl.DataFrame,
    columns: Columns,
    keys: list[str],
    what: str,
) -> list[Problem]:
    """Problems with a table mmplan writes: columns, types and unique keys. No rows is
    fine (a plan that serves everything has an empty unserved table)."""
    return require_columns(df, columns) + null_keys(df, keys) + duplicates(df, keys, what)


def validate_trucks(df: pl.DataFrame) -> list[Problem]:
    """Problems with a plan's trucks.parquet."""
    number = dict.fromkeys(("trucks", "volume", "utilization", "cost"), NUMERIC)
    keys = ["origin", "destination", "date"]
    columns: Columns = {"origin": pl.String, "destination": pl.String, "date": pl.Date, **number}
    return _output_table(df, columns, keys, "(lane, date) rows")


def validate_flows(df: pl.DataFrame) -> list[Problem]:
    """Problems with a plan's flows.parquet."""
    keys = ["origin", "destination", "lane_origin", "lane_destination", "date"]
    strings: Columns = dict.fromkeys(keys[:4], pl.String)
    columns = strings | {"date": pl.Date, "volume": NUMERIC}
    return _output_table(df, columns, keys, "(pair, lane, date) rows")


def validate_plan_nodes(df: pl.DataFrame) -> list[Problem]:
    """Problems with a plan's nodes.parquet (throughput per facility and day)."""
    number = ("throughput", "capacity", "added_capacity", "utilization", "shadow_price")
    columns: Columns = {"node": pl.String, "date": pl.Date, **dict.fromkeys(number, NUMERIC)}
    return _output_table(df, columns, ["node", "date"], "(node, date) rows")


def validate_unserved(df: pl.DataFrame) -> list[Problem]:
    """Problems with a plan's unserved.parquet."""
    keys = ["origin", "destination", "date"]
    columns: Columns = {**dict.fromkeys(keys[:2], pl.String), "date": pl.Date, "volume": NUMERIC}
    return _output_table(df, columns, keys, "(origin, destination, date) rows")


def validate_points(df: pl.DataFrame) -> list[Problem]:
    """Problems with a backtest's points.parquet: one row per run, series, cutoff and date."""
    number = dict.fromkeys(("actual", "forecast"), NUMERIC)
    columns: Columns = {
        "run": pl.String,
        "unique_id": pl.String,
        "level": pl.String,
        "cutoff": pl.Date,
        "date": pl.Date,
        **number,
    }
    keys = ["run", "unique_id", "cutoff", "date"]
    return _output_table(df, columns, keys, "(run, series, cutoff, date) rows")


def validate_metrics(df: pl.DataFrame) -> list[Problem]:
    """Problems with a backtest's metrics.parquet (step is null for all steps)."""
    columns: Columns = {"run": pl.String, "level": pl.String, "step": NUMERIC, "wape": NUMERIC}
    keys = ["run", "level", "step", *(["market"] if "market" in df.columns else [])]
    return require_columns(df, columns) + null_keys(df, keys[:2]) + duplicates(df, keys, "rows")


def validate_scores(df: pl.DataFrame) -> list[Problem]:
    """Problems with a monitor's scores.parquet (scope level, step or series)."""
    columns: Columns = {"scope": pl.String, "level": pl.String, "wape": NUMERIC}
    keys = ["scope", "level", "step", "unique_id"]
    return require_columns(df, columns) + null_keys(df, keys[:2]) + duplicates(df, keys, "rows")


def validate_alerts(df: pl.DataFrame) -> list[Problem]:
    """Problems with a monitor's alerts.parquet: one row per rule and level."""
    columns: Columns = dict.fromkeys(("rule", "level", "status"), pl.String)
    return _output_table(df, columns | {"threshold": NUMERIC}, ["rule", "level"], "rules")


VALIDATORS = {
    "history": validate_history,
    "nodes": validate_nodes,
    "lanes": validate_lanes,
    "forecast": validate_forecast,
    "demand": validate_demand,
    "champions": validate_champions,
    "calibration": validate_calibration,
    "trucks": validate_trucks,
    "flows": validate_flows,
    "plan_nodes": validate_plan_nodes,
    "unserved": validate_unserved,
    "metrics": validate_metrics,
    "points": validate_points,
    "scores": validate_scores,
    "alerts": validate_alerts,
}


def detect_kind(df: pl.DataFrame, command: str | None = None) -> str | None:
    """Guess which mmplan table `df` is from its columns and the `command` that wrote it
    (from its provenance): a plan's unserved table has a history's columns."""
    cols = set(df.columns)
    if {"scope", "level", "forecast_sha256"} <= cols:
        return "scores"
    if {"rule", "threshold", "status"} <= cols:
        return "alerts"
    if {"run", "cutoff", "unique_id", "forecast"} <= cols:
        return "points"
    if {"unique_id", "level", "forecast"} <= cols:
        return "forecast"
    if {"level", "rule", "interval", "factor"} <= cols:
        return "calibration"
    if {"unique_id", "model", "wape"} <= cols:
        return "champions"
    if {"run", "level", "wape"} <= cols:
        return "metrics"
    if {"trucks", "utilization"} <= cols:
        return "trucks"
    if {"lane_origin", "lane_destination"} <= cols:
        return "flows"
    if {"node", "kind"} <= cols:  # before plan_nodes: a nodes table may carry more columns
        return "nodes"
    if {"node", "throughput"} <= cols:
        return "plan_nodes"
    if {"truck_capacity"} <= cols or {"cost_per_truck"} <= cols:
        return "lanes"
    if {"volume", "date", "origin", "destination"} <= cols:
        return "unserved" if command == "optimize" else "history"
    # A misspelt column: report it against the table the other columns point to.
    if {"unique_id", "level"} <= cols:
        return "forecast"
    if {"date", "origin", "destination"} <= cols:
        return "history"
    if "node" in cols:
        return "nodes"
    return None


def table_kind(df: pl.DataFrame, kind: str | None, command: str | None, source: str | Path) -> str:
    """`kind` if given, else the kind `detect_kind` guesses; DataError when it cannot."""
    found = kind or detect_kind(df, command)
    if found is None:
        raise DataError(
            f"{source}: cannot tell which mmplan table this is from its columns "
            f"({', '.join(df.columns)}); pass --kind with one of {', '.join(KINDS)}."
        )
    return found


def validate(
    df: pl.DataFrame,
    kind: str,
    nodes: pl.DataFrame | None = None,
    column: str = "volume",
    max_gap_days: int | None = None,
    freq: str | None = None,
) -> list[Problem]:
    """All problems of `df` read as a table of `kind`: with `nodes`, lanes must name known
    facilities; a demand table is checked for the volume `column`; a history for gaps
    longer than `max_gap_days` and for dates off an explicit weekly or monthly `freq`."""
    if kind == "history":
        return validate_history(df, max_gap_days, freq)
    if kind == "lanes":
        return validate_lanes(df, nodes)
    if kind == "demand":
        return validate_demand(df, column)
    return VALIDATORS[kind](df)


def check(problems: list[Problem], source: str | Path, kind: str) -> None:
    """Raise one DataError listing every problem, or return when there are none."""
    if problems:
        listed = "; ".join(p.describe() for p in problems)
        raise DataError(
            f"{source} is not a valid {kind} table: {listed}. "
            f"Run `mmplan validate {source} --kind {kind}` for the full report, fix the "
            "upstream data and run again."
        )


# Columns whose integer values mean an amount: the stages compute with them as floats.
FLOAT_COLUMNS = (
    "volume",
    "forecast",
    "capacity",
    "handling_cost",
    "truck_capacity",
    "cost_per_truck",
    "cost_per_package",
    "max_trucks",
    "extra_capacity",
    "extra_capacity_cost",
)


def normalise(df: pl.DataFrame) -> pl.DataFrame:
    """A valid table with its volume-like columns as Float64."""
    floats = [c for c in FLOAT_COLUMNS if c in df.columns]
    return df.with_columns(pl.col(floats).cast(pl.Float64)) if floats else df
