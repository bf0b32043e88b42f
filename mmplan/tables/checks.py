"""The parts every table contract is built from: `Problem` (one broken rule, naming the
column and rows) and the checks `mmplan.tables` combines per table (required columns and
their types, nulls, blank names, negative or non-finite amounts, duplicated keys). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

LANE_KEYS = ["origin", "destination"]
# A column's allowed dtypes, and a table's required columns with theirs.
Dtypes = tuple[type[pl.DataType], ...] | type[pl.DataType]
Columns = dict[str, Dtypes]

NUMERIC: tuple[type[pl.DataType], ...] = (
    pl.Float32,
    pl.Float64,
    pl.Int8,
    pl.Int16,
    pl.Int32,
    pl.Int64,
    pl.UInt8,
    pl.UInt16,
    pl.UInt32,
    pl.UInt64,
)
MAX_ROWS_SHOWN = 5


@dataclass(frozen=True)
class Problem:
    """One way a table breaks its contract."""

    column: str | None
    message: str
    rows: tuple[int, ...] = ()
    count: int = 0

    def describe(self) -> str:
        where = f"column '{self.column}': " if self.column else ""
        text = where + self.message
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:MAX_ROWS_SHOWN])
            more = f" and {self.count - MAX_ROWS_SHOWN} more" if self.count > MAX_ROWS_SHOWN else ""
            text += f" ({self.count} rows: {shown}{more})"
        return text


def _rows(df: pl.DataFrame, mask: pl.Expr) -> tuple[tuple[int, ...], int]:
    """0-based row numbers where `mask` holds (the first few) and how many there are."""
    hits = df.with_row_index("_row").filter(mask).get_column("_row")
    return tuple(hits.head(MAX_ROWS_SHOWN).to_list()), hits.len()


def flag(
    df: pl.DataFrame,
    column: str | None,
    mask: pl.Expr,
    message: str,
    name: pl.Expr | None = None,
) -> list[Problem]:
    """A Problem for the rows where `mask` holds; `name` adds what those rows are called
    (facility or lane names read better than row numbers)."""
    rows, count = _rows(df, mask)
    if count and name is not None:
        called = df.filter(mask).select(name.cast(pl.String)).to_series().head(MAX_ROWS_SHOWN)
        message += f" ({', '.join(called.to_list())})"
    return [Problem(column, message, rows, count)] if count else []


def node_name(df: pl.DataFrame) -> pl.Expr | None:
    return pl.col("node") if "node" in df.columns else None


# The history's text columns: String, or Categorical (the forecast's compact keys).
TEXT = (pl.String, pl.Categorical)


def is_text(dtype: pl.DataType, categorical: bool = True) -> bool:
    """A text column: String, or with `categorical` also Categorical (TEXT)."""
    return dtype == pl.String or (categorical and isinstance(dtype, pl.Categorical))


def lane_name(df: pl.DataFrame) -> pl.Expr | None:
    if not set(LANE_KEYS) <= set(df.columns):
        return None
    keys = [pl.col(c).cast(pl.String) for c in LANE_KEYS]
    return pl.concat_str(keys[0], pl.lit("->"), keys[1])


def require_columns(df: pl.DataFrame, columns: Columns) -> list[Problem]:
    """Problems with presence and dtype of required columns."""
    problems = []
    for name, allowed in columns.items():
        allowed = allowed if isinstance(allowed, tuple) else (allowed,)
        if name not in df.columns:
            problems.append(Problem(name, "is missing; it is required"))
            continue
        dtype = df.schema[name]
        if not any(dtype == a or isinstance(dtype, a) for a in allowed):
            want = " or ".join(sorted({getattr(a, "__name__", str(a)) for a in allowed}))
            hint = ""
            if name == "date":
                hint = (
                    " (timestamps? cast them to Date, e.g. with .dt.date)"
                    if isinstance(dtype, pl.Datetime)
                    else " (dates stored as text? cast them to Date)"
                )
            problems.append(Problem(name, f"has type {dtype}, expected {want}{hint}"))
    return problems


def null_keys(df: pl.DataFrame, columns: list[str]) -> list[Problem]:
    out = []
    for c in columns:
        if c in df.columns:
            out += flag(df, c, pl.col(c).is_null(), "has nulls in a key column")
    return out


def blank_names(df: pl.DataFrame, columns: list[str]) -> list[Problem]:
    """Empty names in String key columns: not null, yet they name no facility."""
    out = []
    for c in columns:
        if c in df.columns and is_text(df.schema[c]):
            blank = pl.col(c).cast(pl.String).str.strip_chars() == ""
            out += flag(df, c, blank, "has empty names")
    return out


def non_negative(df: pl.DataFrame, column: str, what: str, allow_null: bool) -> list[Problem]:
    if column not in df.columns or df.schema[column] not in NUMERIC:
        return []
    col = pl.col(column).cast(pl.Float64)
    problems = flag(df, column, col < 0, f"has negative {what}")
    problems += flag(df, column, col.is_nan() | col.is_infinite(), f"has non-finite {what}")
    if not allow_null:
        problems += flag(df, column, col.is_null(), f"has missing {what}")
    return problems


def duplicates(df: pl.DataFrame, keys: list[str], what: str) -> list[Problem]:
    if not all(k in df.columns for k in keys) or df.is_empty():
        return []
    return flag(df, ",".join(keys), pl.struct(keys).is_duplicated(), f"duplicated {what}")
