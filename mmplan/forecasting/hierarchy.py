"""The hierarchy: total, the configured levels and the lanes, as a summing matrix S.

Every level is a sum of lanes. `history_hierarchy` builds it from `[forecast].hierarchy`
(a list of column sets, e.g. [["origin_region"], ["origin"]]; several sets crossing each
other give a grouped hierarchy); `upper_hierarchy` is the part above the lanes that
`[forecast].lanes = 'share'` fits and reconciles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.errors import ConfigError, DataError
from mmplan.tables import LANE_KEYS

__all__ = [
    "LANE",
    "TOTAL",
    "Level",
    "Hierarchy",
    "hierarchy_levels",
    "hierarchy_notes",
    "series_id",
    "build_hierarchy",
    "history_hierarchy",
    "upper_hierarchy",
]

LANE = "lane"
TOTAL = "total"
# A level: its name and the key columns that identify its series (none for the total).
Level = tuple[str, list[str]]


@dataclass(frozen=True)
class Hierarchy:
    """The levels above the lanes, as a summing matrix over the lanes.

    `series` has one row per series (unique_id, level, key columns) in S's row order;
    `lanes` has the lanes in S's column order; `S` is a scipy CSR matrix of 0/1;
    `bottom_rows[c]` is the row of `series` that is the lane in column c.
    """

    series: pl.DataFrame
    lanes: pl.DataFrame
    S: Any  # scipy.sparse.csr_matrix; scipy ships no stubs
    levels: list[Level]
    key_columns: list[str]
    bottom_rows: npt.NDArray[np.int64]

    def is_nested(self) -> bool:
        """True when each level splits the one above it (what top-down methods need)."""
        for (_, upper), (_, lower) in zip(self.levels[1:], self.levels[2:], strict=False):
            parents = self.lanes.group_by(lower).agg(pl.struct(upper).n_unique().alias("n"))
            if cast(int, parents["n"].max()) > 1:
                return False
        return True


def _default_hierarchy(cfg: ForecastConfig) -> bool:
    """True when `[forecast].hierarchy` is the default, not set by a file or a caller."""
    return "hierarchy" not in cfg.model_fields_set


def _absent_default_levels(cfg: ForecastConfig, columns: list[str]) -> list[list[str]]:
    """The default hierarchy's levels naming a column the history does not have."""
    if not _default_hierarchy(cfg):
        return []
    return [cols for cols in cfg.hierarchy if any(c not in columns for c in cols)]


def hierarchy_notes(cfg: ForecastConfig, columns: list[str]) -> list[str]:
    """What the summary says about levels of the default hierarchy left out: one sentence
    per level whose column the history lacks. Empty for a configured hierarchy (a missing
    column there is an error, raised by `hierarchy_levels`)."""
    notes = []
    for cols in _absent_default_levels(cfg, columns):
        missing = ", ".join(c for c in cols if c not in columns)
        notes.append(
            f"the default [forecast].hierarchy level '{'/'.join(cols)}' was left out: the "
            f"history has no {missing} column. Add the column, or set [forecast].hierarchy "
            "to the levels you want."
        )
    return notes


def hierarchy_levels(cfg: ForecastConfig, columns: list[str]) -> list[Level]:
    """(name, key columns) for every level, total first and lane last.

    A level naming a column the history does not have is a ConfigError when the hierarchy
    was configured; with the default hierarchy it is left out (`hierarchy_notes` says so),
    so a history with only the contract's required columns forecasts with the defaults.
    """
    levels: list[Level] = [(TOTAL, [])]
    absent = _absent_default_levels(cfg, columns)
    for cols in cfg.hierarchy:
        if cols in absent:
            continue
        missing = [c for c in cols if c not in columns]
        if missing:
            raise ConfigError(
                f"[forecast].hierarchy names {', '.join(missing)}, which the history does not "
                f"have (its columns: {', '.join(columns)}). Add the column to the history or "
                "change the hierarchy."
            )
        name = "/".join(cols)
        if name in (TOTAL, LANE) or name in (n for n, _ in levels):
            raise ConfigError(f"[forecast].hierarchy lists level '{name}' twice or reserved.")
        levels.append((name, list(cols)))
    levels.append((LANE, list(LANE_KEYS)))
    return levels


def series_id(name: str, cols: list[str]) -> pl.Expr:
    """The unique_id of a level's series: `total`, or `<level>:<values joined by '/'>`."""
    if not cols:
        return pl.lit(TOTAL)
    return pl.concat_str(
        [pl.lit(f"{name}:"), pl.concat_str([pl.col(c) for c in cols], separator="/")]
    )


def build_hierarchy(lane_attrs: pl.DataFrame, levels: list[Level]) -> Hierarchy:
    """Summing matrix and series keys from one row per lane with its attribute columns."""
    from scipy import sparse

    lanes = lane_attrs.sort(LANE_KEYS).with_row_index("_col")
    key_columns = list(dict.fromkeys(c for _, cols in levels for c in cols))
    key_columns = [*LANE_KEYS, *(c for c in key_columns if c not in LANE_KEYS)]
    blocks: list[pl.DataFrame] = []
    rows: list[npt.NDArray[np.int64]] = []
    cols_idx: list[npt.NDArray[np.int64]] = []
    offset = 0
    for name, cols in levels:
        # Lane rows carry every attribute (a lane determines them); other levels only theirs.
        shown = key_columns if name == LANE else cols
        ids = lanes.select("_col", series_id(name, cols).alias("unique_id"), *shown)
        # Lane rows keep S's column order (hierarchicalforecast needs an identity bottom
        # block); other levels are sorted by id.
        uniq = ids.unique("unique_id", maintain_order=True)
        if cols and uniq.height != ids.select(cols).n_unique():
            # Values are joined by "/", so a "/" inside one (A/B -> C, A -> B/C) would
            # silently merge different series into one.
            clash = (
                ids.group_by("unique_id")
                .agg(pl.struct(cols).n_unique().alias("n"))
                .filter(pl.col("n") > 1)
                .sort("unique_id")["unique_id"]
            )
            raise DataError(
                f"different {'/'.join(cols)} values give the same series id "
                f"({', '.join(clash.head(3).to_list())}) because a value contains '/', which "
                "mmplan uses to join them. Rename those facilities (or attribute values) so "
                "that none contains '/'."
            )
        uniq = (uniq.sort("_col") if name == LANE else uniq.sort("unique_id")).with_row_index(
            "_row"
        )
        member = ids.join(uniq.select("unique_id", "_row"), on="unique_id")
        rows.append(member["_row"].to_numpy() + offset)
        cols_idx.append(member["_col"].to_numpy())
        if name == LANE:
            bottom_rows = np.empty(lanes.height, dtype=np.int64)
            bottom_rows[member["_col"].to_numpy()] = member["_row"].to_numpy() + offset
        blocks.append(uniq.drop("_row").with_columns(level=pl.lit(name)))
        offset += uniq.height
    series = pl.concat(blocks, how="diagonal_relaxed").select(
        "unique_id", "level", *[c for c in key_columns]
    )
    if series.get_column("unique_id").is_duplicated().any():
        dup = series.filter(pl.col("unique_id").is_duplicated())["unique_id"].head(3).to_list()
        raise DataError(
            f"series ids collide across hierarchy levels: {dup}; rename the facilities."
        )
    r, c = np.concatenate(rows), np.concatenate(cols_idx)
    S = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(series.height, lanes.height))
    return Hierarchy(series, lanes.drop("_col"), S, levels, key_columns, bottom_rows)


def history_hierarchy(history: pl.DataFrame, cfg: ForecastConfig) -> Hierarchy:
    """The hierarchy of `[forecast].hierarchy` over the lanes of a history."""
    levels = hierarchy_levels(cfg, history.columns)
    attrs = [c for c in dict.fromkeys(c for _, cols in levels for c in cols) if c not in LANE_KEYS]
    # Streaming group-bys over the history's rows: a fraction of the in-memory engine's peak.
    if attrs:
        lazy_attrs = history.lazy().group_by(LANE_KEYS).agg(pl.col(attrs).first())
    else:
        lazy_attrs = history.lazy().select(LANE_KEYS).unique()
    lane_attrs = lazy_attrs.collect(engine="streaming")
    return build_hierarchy(lane_attrs, levels)


def upper_hierarchy(hier: Hierarchy) -> Hierarchy:
    """The levels above the lanes, with the lanes' parent level as its bottom.

    The parent level is the last one above the lanes; every lane has exactly one parent.
    It must nest in every level above it (each parent inside one series of each), or its
    shares could not add up to the upper levels: ConfigError otherwise.
    """
    from scipy import sparse

    parent_name, parent_cols = hier.levels[-2]
    n_upper = int(hier.bottom_rows.min())  # lanes are the last rows of `series`
    series = hier.series.head(n_upper)
    parent_rows = np.flatnonzero((series.get_column("level") == parent_name).to_numpy())
    member = hier.S[parent_rows]  # parent x lane
    sizes = np.asarray(member.sum(axis=1)).ravel()
    overlap = (hier.S[:n_upper] @ member.T).tocoo()  # lanes an upper series shares with a parent
    split = overlap.data != sizes[overlap.col]
    if np.any(split):
        # Name one parent and the series it straddles: often the hierarchy is right and
        # the history tags one origin's lanes with two regions.
        first = overlap.col[split][0]
        ids = series.get_column("unique_id")
        straddled = sorted(ids[int(r)] for r in overlap.row[split & (overlap.col == first)])
        raise ConfigError(
            f"[forecast].lanes = 'share' splits each parent's forecast over its lanes, so the "
            f"level above the lanes ({parent_name}) must nest in every level above it; in "
            f"{[c for _, c in hier.levels[1:-1]]} it does not: the lanes of "
            f"{ids[int(parent_rows[first])]} fall in {', '.join(straddled[:4])}. If that is "
            "wrong, fix those columns in the history; otherwise put the finest level last in "
            "[forecast].hierarchy, or set lanes = 'model'."
        )
    S = sparse.csr_matrix(
        (np.ones(overlap.nnz), (overlap.row, overlap.col)), shape=(n_upper, len(parent_rows))
    )
    key_columns = list(dict.fromkeys(c for _, cols in hier.levels[:-1] for c in cols))
    parent_of_lane = member.T.tocsr().indices  # one parent per lane
    parents = (
        hier.lanes.with_columns(_parent=pl.Series(parent_of_lane))
        .group_by("_parent")
        .agg(pl.col(key_columns).first())
        .sort("_parent")
        .drop("_parent")
    )
    return Hierarchy(series, parents, S, hier.levels[:-1], key_columns, parent_rows)
