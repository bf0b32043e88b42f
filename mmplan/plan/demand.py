"""Demand as the optimizer plans it: which rows and column to plan, checked, then per date.

`demand_rows` / `demand_columns` pick the rows and the planned column(s) from a forecast or
demand table; `scenario` checks one column against the network (known facilities, a path for
every pair) and splits it into one `Day` of index arrays per date.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from mmplan.config import OptimizeConfig
from mmplan.errors import DataError, UsageError
from mmplan.plan.fleet import with_fleet
from mmplan.plan.network import (
    Network,
    adjacency,
    default_penalty,
    fail,
    index_network,
    names_list,
    reach,
)
from mmplan.tables import GRAINS, validate_demand
from mmplan.tables.checks import MAX_ROWS_SHOWN

# The most packages one (origin, destination, date) row may ask for. SCIP's feasibility
# tolerance is 1e-6 relative to a row's coefficients; with a truck's capacity in the
# thousands, demand much above this leaves the truck rows below that tolerance: measured on
# the sample network, 5.9e9 per pair-day loses trucks, 5.9e10 plans 2 of 60, 5.9e11 and up
# ends INFEASIBLE (the model is always feasible through unserved volume). Scaling the units
# does not help: the ratio of demand to truck capacity is what SCIP cannot resolve.
MAX_PAIR_DAY_DEMAND = 1e8


# The columns `demand_rows` adds to week and month rows: the first and last day of the
# period that the table covers. A long-range forecast's first and last week or month may be
# partial (they sum the horizon's days in them), and mmplan.plan.grain plans a partial
# period against the capacity of the days it covers, not the whole period's.
COVERED = ("covered_from", "covered_to")


class Day(NamedTuple):
    """One date's demand pairs: origin and destination indices and volumes."""

    date: Any
    po: np.ndarray
    pt: np.ndarray
    q: np.ndarray


class Scenario(NamedTuple):
    """One demand column ready to solve."""

    net: Network
    days: list[Day]
    penalty: float
    scale: float  # the largest demand: what "noise" and tolerances are relative to


def prepare_demand(demand: pl.DataFrame, column: str, net: Network) -> pl.DataFrame:
    """date, origin, destination, volume > 0; DataError on facilities the network lacks."""
    fail("demand table is not valid", [p.describe() for p in validate_demand(demand, column)])
    d = demand.select(
        "date", "origin", "destination", pl.col(column).cast(pl.Float64).alias("volume")
    ).filter(pl.col("volume") > 0)
    check_magnitude(demand, column, "demand")
    known = set(net.names.tolist())
    unknown = sorted({*d["origin"].to_list(), *d["destination"].to_list()} - known)
    if unknown:
        raise DataError(
            f"demand names facilities that are not in the nodes table: "
            f"{names_list(unknown)}. Add them to the nodes table or drop that demand."
        )
    same = d.filter(pl.col("origin") == pl.col("destination"))
    if same.height:
        raise DataError(
            "demand has rows whose origin equals their destination: "
            + names_list(sorted(set(same["origin"].to_list())))
            + ". Drop them; they need no truck."
        )
    return d


def check_magnitude(
    df: pl.DataFrame, column: str, source: str | Path, file_rows: list[int] | None = None
) -> None:
    """DataError naming the rows whose demand is above MAX_PAIR_DAY_DEMAND; `file_rows`
    maps df's rows to the file's (a forecast's lane rows)."""
    volume = pl.col(column).cast(pl.Float64)
    big = df.with_row_index("_row").filter(volume.is_finite() & (volume > MAX_PAIR_DAY_DEMAND))
    if big.is_empty():
        return
    rows = [file_rows[r] if file_rows else r for r in big["_row"].to_list()]
    shown = ", ".join(str(r) for r in rows[:MAX_ROWS_SHOWN])
    more = f" and {len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else ""
    worst = big.sort(volume, descending=True).row(0, named=True)
    raise DataError(
        f"{source}: column '{column}' asks for more than {MAX_PAIR_DAY_DEMAND:.0e} packages "
        f"per origin-destination-date in {len(rows)} rows ({shown}{more}); the largest is "
        f"{float(worst[column]):.3g} ({worst['origin']}->{worst['destination']} on "
        f"{worst['date']}). That is the most the planner accepts: SCIP's feasibility "
        "tolerance (1e-6, relative to the coefficients) cannot resolve a truck's capacity "
        "against such volumes and would report INFEASIBLE or a meaningless plan. Check the "
        "units (packages per day), or plan a share of the demand."
    )


def check_paths(net: Network, d: pl.DataFrame) -> None:
    """Every demand pair needs at least one path through transit facilities."""
    index = {name: i for i, name in enumerate(net.names)}
    pairs = d.select("origin", "destination").unique()
    po = np.array([index[o] for o in pairs["origin"].to_list()], dtype=np.int64)
    pt = np.array([index[t] for t in pairs["destination"].to_list()], dtype=np.int64)
    transit_adj = adjacency(net, net.transit)
    missing = []
    for o in np.unique(po):
        first = net.ld[net.lo == o]
        reached = reach(transit_adj, first) if len(first) else np.zeros(net.n, bool)
        direct = np.zeros(net.n, bool)
        direct[first] = True
        # A destination counts if reached directly, or from a transit facility.
        via = adjacency(net, net.transit & reached)
        ok = direct | (np.asarray(via.sum(axis=0)).ravel() > 0)
        mine = po == o
        missing += [(net.names[o], net.names[t]) for t in pt[mine][~ok[pt[mine]]]]
    if missing:
        kinds = ", ".join(sorted({str(k) for k in net.kind[net.transit]})) or "none"
        raise DataError(
            f"demand for {len(missing)} origin-destination pairs has no path over the lanes "
            f"(volume may pass only through transit kinds: {kinds}): "
            + names_list([f"{o}->{t}" for o, t in sorted(missing)])
            + ". Add a lane, or change [optimize] transit_kinds."
        )


class DemandColumns(NamedTuple):
    """Demand to plan: date, origin, destination and one column per plan, and the names of
    the planned columns (a plain table plans `volume` when "forecast" was asked for)."""

    table: pl.DataFrame
    planned: list[str]


def demand_columns(
    df: pl.DataFrame, columns: list[str], source: str | Path = "demand", grain: str = "day"
) -> DemandColumns:
    """date, origin, destination and each requested column as `demand_rows` picks it (one
    per scenario), of the `grain` rows. UsageError when two requests pick the same column
    (a plain table plans `volume` for "forecast")."""
    picked = [demand_rows(df, c, source, grain) for c in columns]
    planned = [p.columns[-1] for p in picked]
    if len(set(planned)) != len(planned):
        raise UsageError(f"{', '.join(columns)} name the same demand column twice ({planned}).")
    table = pl.concat([picked[0], *[p.select(p.columns[-1]) for p in picked[1:]]], how="horizontal")
    return DemandColumns(table, planned)


def demand_rows(
    df: pl.DataFrame, column: str, source: str | Path = "demand", grain: str = "day"
) -> pl.DataFrame:
    """The rows to plan for (date, origin, destination, planned column): a forecast table's
    lane rows, or any demand table as is (planning `volume` unless a column is named), of
    the `grain` asked for (`grain_rows`). Week and month rows also carry COVERED, the
    first and last day of their period that the table's day rows cover, before the planned
    column (which stays last).

    A forecast table (it has `unique_id` and `level`) holds every level of the hierarchy;
    only level "lane" names an origin and a destination.
    """
    from mmplan.tables import check

    is_forecast = {"unique_id", "level"} <= set(df.columns) and df.schema["level"] == pl.String
    if not is_forecast and column == "forecast" and "forecast" not in df.columns:
        column = "volume"  # a plain demand table plans its volume unless told otherwise
    whole = df
    df, kept = grain_rows(df, grain, source)
    file_rows: list[int] = kept or []
    if is_forecast:
        # Keep each lane row's place in the file, so a problem names the row a planner sees.
        df = df.with_row_index("_file_row").filter(pl.col("level") == "lane")
        if df.is_empty():
            raise DataError(f"{source}: the forecast table has no lane-level rows to plan for.")
        lane_rows = df.get_column("_file_row").to_list()
        file_rows = [file_rows[r] for r in lane_rows] if kept is not None else lane_rows
        df = df.drop("_file_row")
    if column not in df.columns:
        numeric = [c for c, t in df.schema.items() if t.is_numeric()]
        raise DataError(
            f"{source}: no column '{column}' to plan for; its numeric columns are "
            f"{', '.join(numeric) or 'none'}. Name one of them with --column or --scenarios "
            "(e.g. forecast, hi_80)."
        )
    if not df.schema[column].is_numeric():
        # validate_demand would check `date` as a volume and hint at dates stored as text.
        numeric = [c for c, t in df.schema.items() if t.is_numeric()]
        raise DataError(
            f"{source}: the planned column must be numeric: '{column}' is "
            f"{df.schema[column]}. Name a numeric column with --column or --scenarios: "
            f"{', '.join(numeric) or 'none'}."
        )
    problems = validate_demand(df, column)
    if file_rows:
        problems = [replace(p, rows=tuple(file_rows[r] for r in p.rows)) for p in problems]
    check(problems, source, "forecast" if is_forecast else "demand")
    check_magnitude(df, column, source, file_rows)
    picked = df.select("date", "origin", "destination", pl.col(column).cast(pl.Float64))
    if grain == "day":
        return picked
    covered = with_coverage(picked, period_coverage(whole, grain), grain)
    return covered.select("date", "origin", "destination", *COVERED, column)


def period_coverage(df: pl.DataFrame, grain: str) -> pl.DataFrame:
    """date (a `grain` period's first day), covered_from, covered_to: the first and last
    of the table's day rows in each period they fall in (its horizon's days there). Empty
    for a table without day rows: its periods are taken as whole."""
    schema = {"date": pl.Date, COVERED[0]: pl.Date, COVERED[1]: pl.Date}
    if "grain" not in df.columns or df.schema.get("date") != pl.Date:
        return pl.DataFrame(schema=schema)
    days = df.filter(pl.col("grain") == "day").select("date").unique()
    unit = {"week": "1w", "month": "1mo"}[grain]
    return (
        days.group_by(pl.col("date").dt.truncate(unit).alias("start"))
        .agg(pl.col("date").min().alias(COVERED[0]), pl.col("date").max().alias(COVERED[1]))
        .rename({"start": "date"})
        .select(list(schema))
    )


def with_coverage(rows: pl.DataFrame, coverage: pl.DataFrame, grain: str) -> pl.DataFrame:
    """`rows` (dated by their period's first day) with COVERED: from `coverage`, else the
    whole period (its first to its last day)."""
    last = pl.col("date").dt.offset_by("6d") if grain == "week" else pl.col("date").dt.month_end()
    return rows.join(coverage, on="date", how="left").with_columns(
        pl.col(COVERED[0]).fill_null(pl.col("date")),
        pl.col(COVERED[1]).fill_null(last),
    )


# What `date` must be for a period's rows: the Monday of the ISO week, the 1st of the month.
_PERIOD_START = {
    "week": (pl.col("date").dt.weekday() == 1, "a Monday (the first day of its ISO week)"),
    "month": (pl.col("date").dt.day() == 1, "the 1st of its month"),
}


def _rows_text(rows: list[int]) -> str:
    more = f" and {len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else ""
    return ", ".join(str(r) for r in rows[:MAX_ROWS_SHOWN]) + more


def grain_rows(
    df: pl.DataFrame, grain: str, source: str | Path = "demand"
) -> tuple[pl.DataFrame, list[int] | None]:
    """The rows of `grain` (a forecast's `grain` column: day, week or month) and their rows
    in the file; a table without the column is daily, returned as is (None: rows unchanged).
    DataError (65) naming the file and the grains it has when it has no `grain` rows, and
    naming the rows whose grain is unknown or whose date does not start its period."""
    if "grain" not in df.columns:
        if grain == "day":
            return df, None
        raise DataError(
            f"{source}: no '{grain}' rows to plan: the table has no 'grain' column, so it is "
            f"daily (grains: day). Plan it with --grain day, or give a forecast with "
            f"{grain} rows (a 'grain' column of day, week, month)."
        )
    if df.schema["grain"] != pl.String:
        raise DataError(
            f"{source}: column 'grain' has type {df.schema['grain']}, expected String "
            "(day, week or month)."
        )
    indexed = df.with_row_index("_file_row")
    bad = indexed.filter(~pl.col("grain").is_in(GRAINS) | pl.col("grain").is_null())
    if bad.height:
        raise DataError(
            f"{source}: column 'grain' must be day, week or month; {bad.height} rows are "
            f"not ({_rows_text(bad['_file_row'].to_list())}). Fix or drop them."
        )
    kept = indexed.filter(pl.col("grain") == grain)
    if kept.is_empty():
        present = sorted(set(df["grain"].to_list()), key=GRAINS.index)
        raise DataError(
            f"{source}: no '{grain}' rows to plan (column 'grain'); its grains are "
            f"{', '.join(present)}. Plan one of them with --grain."
        )
    if grain in _PERIOD_START and kept.schema["date"] == pl.Date:
        starts, what = _PERIOD_START[grain]
        late = kept.filter(~starts)
        if late.height:
            raise DataError(
                f"{source}: column 'date' of a {grain} row must be {what}; {late.height} "
                f"{grain} rows are not ({_rows_text(late['_file_row'].to_list())}, e.g. "
                f"{late['date'][0]})."
            )
    return kept.drop("_file_row"), kept["_file_row"].to_list()


def scenario(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    column: str,
) -> Scenario:
    """The network, per-date demand arrays, penalty and volume scale for one demand column."""
    net = with_fleet(index_network(nodes, lanes, config), config.fleet, "[optimize.fleet]")
    d = prepare_demand(demand, column, net)
    check_paths(net, d)
    penalty = config.unserved_penalty or default_penalty(net)
    index = {name: i for i, name in enumerate(net.names)}
    days = []
    for date in d["date"].unique().sort().to_list():
        part = d.filter(pl.col("date") == date)
        days.append(
            Day(
                date,
                np.array([index[o] for o in part["origin"].to_list()], np.int64),
                np.array([index[t] for t in part["destination"].to_list()], np.int64),
                part["volume"].to_numpy(),
            )
        )
    scale = float(d["volume"].max()) if d.height else 1.0  # type: ignore[arg-type]
    return Scenario(net, days, penalty, scale)
