"""Hierarchical lane forecasts: base models per series, reconciled so levels add up.

Pipeline (`forecast`), every step fit on the history it is given and nothing else:

1. Lane series. Each lane runs from its first row to the last date of the history; a
   missing day is a zero (DESIGN.md). `fit_days` keeps only the most recent days.
2. Hierarchy. `total`, one level per entry of `[forecast].hierarchy` (a list of column
   sets, e.g. [["origin_region"], ["origin"]]; several sets crossing each other give a
   grouped hierarchy), and `lane`. Every level is a sum of lanes, through a summing
   matrix S.
3. Rules. Every series gets a model by these rules, in order, shown in the `model`
   column of the output as ``<model>/<rule>``:
   - closed: no volume in the last `closed_after_days` days (or never) -> zero;
   - short: fewer than max(`min_history_days`, 2 x horizon + 1) days since the series
     started -> `short_model` (HistoricAverage below two seasons);
   - sparse: average inter-demand interval (days / non-zero days, over the last year) above
     `sparse_adi` (1.32, the Syntetos-Boylan cut-off) -> `sparse_model`, with conformal
     intervals since intermittent models have no native ones;
   - otherwise the series' champion from a backtest, if given, else `model`.
4. Base forecasts: statsforecast, one call per model, with in-sample fitted values (the
   residuals that MinTrace's variance estimates need). Calendar events from config are
   regressors for the models that take them (AutoARIMA, MSTL with an ARIMA trend).
5. Reconciliation with the configured method, normal intervals: BottomUp and MinTrace in
   mmplan.reconcile (sparse, scales to 100k lanes), TopDown and MiddleOut through
   hierarchicalforecast. Closed series are left out of it: they stay zero rather than
   absorb adjustments.
6. Non-negativity: the reconciled lane forecasts are clipped at zero and every level is
   re-summed from its lanes (S @ max(b, 0)). This keeps levels adding up exactly and costs
   one sparse product, where hierarchicalforecast's non-negative MinTrace solves a QP per
   horizon step and can stall (hierarchicalforecast issue #178). Intervals keep their
   reconciled half-widths around the final point, with the lower bound clipped at zero,
   so lo <= forecast <= hi always holds.
7. Calibration (optional): each level's half-widths are multiplied by the factors a
   backtest measured for that level and interval (`mmplan backtest` writes them to
   calibration.parquet; see mmplan.backtesting.calibrate), before the lower bound is clipped.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mmplan.config import Config, ForecastConfig
from mmplan.errors import ConfigError, DataError
from mmplan.logs import checkpoint  # checkpoint
from mmplan.tables import LANE_KEYS, check, validate_history

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "forecast",
    "Hierarchy",
    "build_hierarchy",
    "history_hierarchy",
    "lane_series",
    "assign_models",
    "check_calibration",
]

# progress(done, total, label): how far model fitting is, for a progress bar.
Progress = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, label: str) -> None:
    pass


LANE = "lane"
TOTAL = "total"
# Models that use exogenous regressors (the event calendar).
EXOGENOUS_MODELS = {"AutoARIMA", "MSTL"}
# Models with no native intervals; they get conformal ones.
YEAR = 365
# MSTL gets a yearly season only for series of at least this many days: half the days of
# the year seen twice (730 days of history qualify, and so do backtest windows of 680).
MIN_YEARLY_DAYS = YEAR + YEAR // 2
NO_NATIVE_INTERVALS = {"CrostonOptimized", "CrostonClassic", "CrostonSBA", "ADIDA", "IMAPA", "TSB"}


def make_model(
    name: str,
    season_length: int,
    horizon: int,
    alias: str = "base",
    mstl_trend: str = "ARIMA",
    intervals: str = "model",
    yearly: bool = True,
) -> Any:
    """A statsforecast model instance for a configured model name.

    `yearly` = False leaves MSTL's yearly season out, for series too short to estimate it.
    """
    from statsforecast import models as m
    from statsforecast.utils import ConformalIntervals

    trends = {
        # ARIMA(1,1,1) on the deseasonalised series takes the event regressors at a seventh
        # of AutoARIMA's search cost (benchmarks/model_choice.py).
        "ARIMA": lambda: m.ARIMA(order=(1, 1, 1)),
        "AutoARIMA": lambda: m.AutoARIMA(seasonal=False),
        "AutoETS": lambda: m.AutoETS(model="ZZN"),  # no regressors: events are ignored
    }

    conformal = ConformalIntervals(h=horizon, n_windows=2)
    if name in NO_NATIVE_INTERVALS:
        if name == "TSB":
            return m.TSB(alpha_d=0.1, alpha_p=0.1, alias=alias, prediction_intervals=conformal)
        return getattr(m, name)(alias=alias, prediction_intervals=conformal)
    seasonal = {
        "AutoETS": lambda: m.AutoETS(season_length=season_length, alias=alias),
        "AutoTheta": lambda: m.AutoTheta(season_length=season_length, alias=alias),
        "AutoARIMA": lambda: m.AutoARIMA(season_length=season_length, alias=alias),
        # Weekly and yearly seasonality; the ARIMA trend takes the event regressors.
        "MSTL": lambda: m.MSTL(
            season_length=[season_length, YEAR] if yearly else season_length,
            trend_forecaster=trends[mstl_trend](),
            alias=alias,
        ),
        "SeasonalNaive": lambda: m.SeasonalNaive(season_length=season_length, alias=alias),
        "Naive": lambda: m.Naive(alias=alias),
        "HistoricAverage": lambda: m.HistoricAverage(alias=alias),
    }
    model = seasonal[name]()
    if intervals == "conformal":
        model.prediction_intervals = conformal
        if name == "MSTL":  # MSTL takes its intervals from its trend model
            model.trend_forecaster.prediction_intervals = conformal
    return model


@dataclass(frozen=True)
class Hierarchy:
    """The levels above the lanes, as a summing matrix over the lanes.

    `series` has one row per series (unique_id, level, key columns) in S's row order;
    `lanes` has the lanes in S's column order; `S` is a scipy CSR matrix of 0/1;
    `bottom_rows[c]` is the row of `series` that is the lane in column c.
    """

    series: pl.DataFrame
    lanes: pl.DataFrame
    S: Any
    levels: list[tuple[str, list[str]]]
    key_columns: list[str]
    bottom_rows: np.ndarray

    def is_nested(self) -> bool:
        """True when each level splits the one above it (what top-down methods need)."""
        for (_, upper), (_, lower) in zip(self.levels[1:], self.levels[2:], strict=False):
            parents = self.lanes.group_by(lower).agg(pl.struct(upper).n_unique().alias("n"))
            if parents["n"].max() > 1:
                return False
        return True


def hierarchy_levels(cfg: ForecastConfig, columns: list[str]) -> list[tuple[str, list[str]]]:
    """(name, key columns) for every level, total first and lane last."""
    levels: list[tuple[str, list[str]]] = [(TOTAL, [])]
    for cols in cfg.hierarchy:
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


def _series_id(name: str, cols: list[str]) -> pl.Expr:
    if not cols:
        return pl.lit(TOTAL)
    return pl.concat_str(
        [pl.lit(f"{name}:"), pl.concat_str([pl.col(c) for c in cols], separator="/")]
    )


def build_hierarchy(lane_attrs: pl.DataFrame, levels: list[tuple[str, list[str]]]) -> Hierarchy:
    """Summing matrix and series keys from one row per lane with its attribute columns."""
    from scipy import sparse

    lanes = lane_attrs.sort(LANE_KEYS).with_row_index("_col")
    key_columns = list(dict.fromkeys(c for _, cols in levels for c in cols))
    key_columns = [*LANE_KEYS, *(c for c in key_columns if c not in LANE_KEYS)]
    blocks, rows, cols_idx = [], [], []
    offset = 0
    for name, cols in levels:
        # Lane rows carry every attribute (a lane determines them); other levels only theirs.
        shown = key_columns if name == LANE else cols
        ids = lanes.select("_col", _series_id(name, cols).alias("unique_id"), *shown)
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
        lane_attrs = history.lazy().group_by(LANE_KEYS).agg(pl.col(attrs).first())
    else:
        lane_attrs = history.lazy().select(LANE_KEYS).unique()
    lane_attrs = lane_attrs.collect(engine="streaming")
    return build_hierarchy(lane_attrs, levels)


def lane_series(history: pl.DataFrame, fit_days: int | None = None) -> tuple[pl.DataFrame, dt.date]:
    """Daily volume per lane from its first row to the history's end, zeros filled in."""
    end = history.get_column("date").max()
    spans = history.group_by(LANE_KEYS).agg(pl.col("date").min().alias("start"))
    if fit_days is not None:
        first = end - dt.timedelta(days=fit_days - 1)
        spans = spans.with_columns(pl.max_horizontal("start", pl.lit(first)).alias("start"))
    grid = spans.select(*LANE_KEYS, pl.date_ranges("start", pl.lit(end)).alias("date")).explode(
        "date"
    )
    daily = grid.join(
        history.select(*LANE_KEYS, "date", pl.col("volume").cast(pl.Float64)),
        on=[*LANE_KEYS, "date"],
        how="left",
    ).with_columns(pl.col("volume").fill_null(0.0))
    return daily, end


def _upper_reconciliation(cfg: ForecastConfig, fit_hier: Hierarchy) -> ForecastConfig:
    """The config that reconciles `fit_hier`: with shared-out lanes, the levels above them.

    MiddleOut at the lanes' parent (its default middle level, "the level just above lane")
    is bottom-up from the parents: they keep their forecasts and the lanes take shares of
    them. A lone total has nothing to reconcile either way.
    """
    if cfg.lanes != "share":
        return cfg
    parent = fit_hier.levels[-1][0]
    lone_total = len(fit_hier.levels) == 1
    at_parent = cfg.reconciliation == "MiddleOut" and cfg.middle_level in (None, parent)
    if lone_total or at_parent:
        return cfg.model_copy(update={"reconciliation": "BottomUp"})
    return cfg


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


def level_series(
    history: pl.DataFrame, levels: list[tuple[str, list[str]]], fit_days: int | None = None
) -> pl.DataFrame:
    """Long series (unique_id, ds, y) of the given levels, summed from the history's rows.

    The same series as `aggregate(lane_series(...))` (each from its first row to the
    history's end, a missing day a zero) without the lanes' daily grid, which is what costs
    time and memory at 100k lanes.
    """
    end = history.get_column("date").max()
    rows = history.select(
        *dict.fromkeys(c for _, cols in levels for c in cols),
        "date",
        pl.col("volume").cast(pl.Float64),
    )
    first = history.get_column("date").min()
    if fit_days is not None:
        first = max(first, end - dt.timedelta(days=fit_days - 1))
    parts = []
    for name, cols in levels:
        # Sum first, name after: building an id string per history row is the slow part.
        sums = (
            rows.lazy()
            .group_by(*cols, "date")
            .agg(pl.col("volume").sum().alias("y"))
            .collect(engine="streaming")
            .select(_series_id(name, cols).alias("unique_id"), "date", "y")
        )
        # A series starts at its first row in the whole history (a missing day is a zero,
        # not "not yet open"), clipped to the fit window.
        grid = (
            sums.group_by("unique_id")
            .agg(
                pl.date_ranges(pl.max_horizontal(pl.col("date").min(), pl.lit(first)), pl.lit(end))
                .first()
                .alias("ds")
            )
            .explode("ds")
        )
        sums = sums.filter(pl.col("date") >= first)
        parts.append(
            grid.join(sums.rename({"date": "ds"}), on=["unique_id", "ds"], how="left").with_columns(
                pl.col("y").fill_null(0.0)
            )
        )
    return pl.concat(parts).sort("unique_id", "ds")


def lane_shares(
    history: pl.DataFrame, hier: Hierarchy, upper: Hierarchy, cfg: ForecastConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per lane, in S's column order: parent row, share of the parent, noise variance, closed.

    A lane's share is its mean daily volume over the last `share_days` days (over the days
    it existed, so a lane opened last week is not diluted), over the sum of those means for
    its parent's lanes. Closed lanes (no volume in `closed_after_days`) get no share. A parent
    with no volume in the window falls back to the lanes' means over the fit window (all the
    history unless `fit_days` is set). The noise variance is
    the mean square of volume - share x parent volume over the window: what the lane does
    that its parent's forecast cannot tell.
    """
    rows = history.select(*LANE_KEYS, "date", pl.col("volume").cast(pl.Float64))
    end = history.get_column("date").max()
    fit_first = history.get_column("date").min()
    if cfg.fit_days is not None:
        fit_first = max(fit_first, end - dt.timedelta(days=cfg.fit_days - 1))
    parent_of_lane = hier.S[upper.bottom_rows].T.tocsr().indices
    lanes = hier.lanes.select(LANE_KEYS).with_columns(
        _col=pl.int_range(hier.lanes.height, dtype=pl.Int64), _parent=pl.Series(parent_of_lane)
    )
    first = end - dt.timedelta(days=cfg.share_days - 1)
    recent = pl.col("date") >= first
    per_lane = (
        rows.lazy()
        .group_by(LANE_KEYS)
        .agg(
            # A lane exists from its first row in the whole history, clipped to the fit
            # window: a missing day is a zero, not "not yet open".
            pl.max_horizontal(pl.col("date").min(), pl.lit(fit_first)).alias("start"),
            pl.col("volume").filter(pl.col("date") >= fit_first).sum().alias("volume_all"),
            pl.col("volume").filter(recent).sum().alias("volume_recent"),
            pl.col("date").filter(pl.col("volume") > 0).max().alias("last_volume"),
        )
        .collect(engine="streaming")
    )
    days = lambda since: (pl.lit(end) - since).dt.total_days() + 1  # noqa: E731
    per_lane = (
        lanes.join(per_lane, on=LANE_KEYS, how="left")
        .with_columns(
            closed=_closed(end, cfg).fill_null(True),
            rate=pl.col("volume_recent") / days(pl.max_horizontal("start", pl.lit(first))),
            rate_all=pl.col("volume_all") / days(pl.col("start")),
        )
        .with_columns(
            pl.when(pl.col("closed")).then(0.0).otherwise(pl.col(c)).fill_null(0.0).alias(c)
            for c in ("rate", "rate_all")
        )
        .with_columns(
            share=pl.when(pl.col("rate").sum().over("_parent") > 0)
            .then(pl.col("rate") / pl.col("rate").sum().over("_parent"))
            .when(pl.col("rate_all").sum().over("_parent") > 0)
            .then(pl.col("rate_all") / pl.col("rate_all").sum().over("_parent"))
            .otherwise(0.0)
        )
    )
    # The window's days, zero-filled, for each lane that existed in it.
    grid = (
        per_lane.filter(pl.col("start").is_not_null())
        .select(
            "_col",
            "_parent",
            *LANE_KEYS,
            pl.date_ranges(pl.max_horizontal("start", pl.lit(first)), pl.lit(end)).alias("date"),
        )
        .explode("date")
        .join(rows.filter(recent), on=[*LANE_KEYS, "date"], how="left")
        .with_columns(pl.col("volume").fill_null(0.0))
    )
    parent_daily = grid.group_by("_parent", "date").agg(pl.col("volume").sum().alias("parent"))
    noise = (
        grid.join(parent_daily, on=["_parent", "date"])
        .join(per_lane.select("_col", "share"), on="_col")
        .group_by("_col")
        .agg(((pl.col("volume") - pl.col("share") * pl.col("parent")) ** 2).mean().alias("noise"))
    )
    per_lane = per_lane.join(noise, on="_col", how="left").sort("_col")
    closed_lanes = per_lane.get_column("closed").to_numpy()
    return (
        upper.bottom_rows[parent_of_lane],
        per_lane.get_column("share").to_numpy(),
        np.where(closed_lanes, 0.0, per_lane.get_column("noise").fill_null(0.0).to_numpy()),
        closed_lanes,
    )


def aggregate(daily: pl.DataFrame, hier: Hierarchy) -> pl.DataFrame:
    """Long series (unique_id, ds, y) for every level: each a sum of its lanes."""
    parts = []
    with_attrs = daily.join(hier.lanes, on=LANE_KEYS, how="left")
    for name, cols in hier.levels:
        sid = _series_id(name, cols).alias("unique_id")
        parts.append(
            with_attrs.group_by(sid, pl.col("date").alias("ds")).agg(
                pl.col("volume").sum().alias("y")
            )
        )
    return pl.concat(parts).sort("unique_id", "ds")


def _closed(end: dt.date, cfg: ForecastConfig) -> pl.Expr:
    """The closed rule on a `last_volume` column: no volume in `closed_after_days`, or never."""
    idle = (pl.lit(end) - pl.col("last_volume")).dt.total_days()
    return pl.col("last_volume").is_null() | (idle >= cfg.closed_after_days)


def assign_models(
    y: pl.DataFrame, end: dt.date, cfg: ForecastConfig, champions: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per series: the model it gets and the rule that chose it (module docstring)."""
    short_days = max(cfg.min_history_days, 2 * cfg.horizon + 1)
    recent = y.filter(pl.col("ds") > end - dt.timedelta(days=365))
    stats = (
        y.group_by("unique_id")
        .agg(
            pl.col("ds").min().alias("start"),
            pl.col("ds").filter(pl.col("y") > 0).max().alias("last_volume"),
        )
        .join(
            recent.group_by("unique_id").agg(
                (pl.len() / (pl.col("y") > 0).sum().clip(1)).alias("adi")
            ),
            on="unique_id",
            how="left",
        )
    )
    length = (pl.lit(end) - pl.col("start")).dt.total_days() + 1
    closed = _closed(end, cfg)
    short = length < short_days
    if cfg.fit_days is not None:
        # A series that starts on the first day of the fit window is older than the window.
        short &= pl.col("start") > pl.lit(end - dt.timedelta(days=cfg.fit_days - 1))
    sparse = pl.col("adi") > cfg.sparse_adi
    plan = stats.with_columns(
        rule=pl.when(closed)
        .then(pl.lit("closed"))
        .when(short)
        .then(pl.lit("short"))
        .when(sparse)
        .then(pl.lit("sparse"))
        .otherwise(pl.lit("regular")),
        length=length,
    )
    if champions is not None:
        from mmplan.tables import validate_champions

        check(validate_champions(champions), "champions", "champions")
        plan = plan.join(
            champions.select("unique_id", pl.col("model").alias("champion")),
            on="unique_id",
            how="left",
        )
    else:
        plan = plan.with_columns(champion=pl.lit(None, pl.String))
    short_model = (
        pl.when(pl.col("length") < 2 * cfg.season_length)
        .then(pl.lit("HistoricAverage"))
        .otherwise(pl.lit(cfg.short_model))
    )
    return (
        plan.with_columns(
            model=pl.when(pl.col("rule") == "closed")
            .then(pl.lit("Zero"))
            .when(pl.col("rule") == "short")
            .then(short_model)
            .when(pl.col("rule") == "sparse")
            .then(pl.lit(cfg.sparse_model))
            .otherwise(pl.coalesce("champion", pl.lit(cfg.model)))
        )
        .select("unique_id", "model", "rule")
        .sort("unique_id")
    )


def event_features(dates: pl.Series, events: dict[str, list[dt.date]]) -> pl.DataFrame:
    """0/1 columns, one per configured event, for the given dates (known in advance)."""
    frame = pl.DataFrame({"ds": dates})
    return frame.with_columns(
        [
            pl.col("ds").is_in(list(days)).cast(pl.Float64).alias(f"event_{name}")
            for name, days in sorted(events.items())
        ]
    )


def _base_forecasts(
    y: pl.DataFrame,
    plan: pl.DataFrame,
    end: dt.date,
    cfg: ForecastConfig,
    progress: Progress,
    engine: Engine | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Base forecasts and in-sample fitted values for all non-closed series.

    One statsforecast fit per (model, short) group. A local engine fits each group in one
    call spread over `n_jobs` processes; a Dask engine fits it in chunks of series on the
    workers. Series are fit independently, so the chunking changes no number.
    """
    from functools import partial

    from mmplan.engine import LocalEngine

    engine = engine or LocalEngine()
    futures, fitted = [], []
    todo = plan.filter(pl.col("rule") != "closed")
    done = 0
    horizon_dates = pl.date_range(
        end + dt.timedelta(days=1), end + dt.timedelta(days=cfg.horizon), eager=True
    )
    # Short series are too short for conformal intervals' held-out windows.
    todo = todo.with_columns(short=pl.col("rule") == "short")
    # A yearly season needs most days of the year seen twice: on less, STL's yearly
    # component absorbs the noise (120 days left residuals of 1 package on 22k a day, and
    # intervals as narrow) and the forecast repeats days it never saw a year earlier.
    days = y.group_by("unique_id").agg(pl.len().alias("_days"))
    todo = todo.join(days, on="unique_id", how="left").with_columns(
        yearly=pl.col("_days").fill_null(0) >= MIN_YEARLY_DAYS
    )
    for (model, short, yearly), group in todo.group_by(
        "model", "short", "yearly", maintain_order=True
    ):
        ids = group.get_column("unique_id")
        progress(done, todo.height, f"fitting {model} on {ids.len():,} series")
        checkpoint("forecast.fitting")  # checkpoint
        data = y.filter(pl.col("unique_id").is_in(ids.implode()))
        x_future = None
        if model in EXOGENOUS_MODELS and cfg.events:
            feats = event_features(data["ds"].unique().sort(), cfg.events)
            # A regressor that never fires in the training window cannot be estimated.
            active = [c for c in feats.columns[1:] if feats[c].sum() > 0]
            if active:
                data = data.join(feats.select("ds", *active), on="ds")
                x_future = pl.DataFrame({"unique_id": ids}).join(
                    event_features(horizon_dates, cfg.events).select("ds", *active), how="cross"
                )
        fit_chunk = partial(
            _fit_chunk,
            model=make_model(
                model,
                cfg.season_length,
                cfg.horizon,
                mstl_trend=cfg.mstl_trend,
                intervals="model" if short else cfg.intervals,
                yearly=yearly,
            ),
            horizon=cfg.horizon,
            levels=cfg.levels,
            n_jobs=engine.jobs_per_task(cfg.n_jobs),
        )
        chunks = _chunks(data, x_future, engine.chunk_size(ids.len()))
        sizes = [c[0]["unique_id"].n_unique() for c in chunks]
        label = f"fitting {model} on {ids.len():,} series"
        tick = _chunk_progress(progress, done, sizes, todo.height, label)
        for fc, fit in engine.map(fit_chunk, chunks, tick):
            futures.append(fc)
            fitted.append(fit)
        done += ids.len()
    if not futures:
        return pl.DataFrame(), pl.DataFrame()
    return pl.concat(futures).sort("unique_id", "ds"), pl.concat(fitted).sort("unique_id", "ds")


def _chunk_progress(
    progress: Progress, start: int, sizes: list[int], total: int, label: str
) -> Callable[[int], None]:
    """A callback for chunk i finishing that reports the series fitted so far."""
    done = [start]

    def tick(i: int) -> None:
        done[0] += sizes[i]
        progress(done[0], total, label)

    return tick


def _chunks(
    data: pl.DataFrame, x_future: pl.DataFrame | None, size: int
) -> list[tuple[pl.DataFrame, pl.DataFrame | None]]:
    """(history, future regressors) of consecutive groups of `size` series."""
    if size >= data["unique_id"].n_unique():  # one chunk (the local engine): no copy
        return [(data, x_future)]
    # Dense rank over the same set of ids numbers a series alike in both frames.
    chunk = ((pl.col("unique_id").rank("dense") - 1) // size).alias("_chunk")
    parts = data.with_columns(chunk).partition_by("_chunk", maintain_order=True, include_key=False)
    if x_future is None:
        return [(p, None) for p in parts]
    futures = x_future.with_columns(chunk).partition_by(
        "_chunk", maintain_order=True, include_key=False
    )
    return list(zip(parts, futures, strict=True))


def _fit_chunk(
    chunk: tuple[pl.DataFrame, pl.DataFrame | None],
    model: Any,
    horizon: int,
    levels: list[int],
    n_jobs: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Forecasts and in-sample fitted values of one model on a chunk of series.

    Runs in this process or on a Dask worker (mmplan.engine), so it takes and returns only
    picklable frames.
    """
    from statsforecast import StatsForecast

    data, x_future = chunk
    sf = StatsForecast(models=[model], freq="1d", n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=data, h=horizon, X_df=x_future, level=levels, fitted=True)
        fit = sf.forecast_fitted_values()
    return (
        fc.select("unique_id", "ds", "base", *_interval_cols(levels)),
        fit.select("unique_id", "ds", "y", "base"),
    )


def _interval_cols(levels: list[int], prefix: str = "base") -> list[str]:
    return [f"{prefix}-{side}-{p}" for p in levels for side in ("lo", "hi")]


def _reconciler(cfg: ForecastConfig, hier: Hierarchy, nonnegative: bool = False) -> Any:
    from hierarchicalforecast import methods

    name = cfg.reconciliation
    if name.startswith(("TopDown", "MiddleOut")) and not hier.is_nested():
        raise ConfigError(
            f"[forecast].reconciliation = {name!r} needs a strictly nested hierarchy, and "
            f"{cfg.hierarchy} is grouped (a level does not split the one above it). Use "
            "BottomUp or a MinTrace method, or nest the levels."
        )
    if name == "BottomUp":
        return methods.BottomUp()
    if name.startswith("TopDown"):
        return methods.TopDown(method=name[len("TopDown(") : -1])
    if name.startswith("MinTrace"):
        return methods.MinTrace(method=name[len("MinTrace(") : -1], nonnegative=nonnegative)
    middle = cfg.middle_level or hier.levels[-2][0]
    if middle not in (n for n, _ in hier.levels[1:-1]):
        raise ConfigError(
            f"[forecast].middle_level = {middle!r} is not a level between total and lane; "
            f"levels are {', '.join(n for n, _ in hier.levels)}."
        )
    return methods.MiddleOut(middle_level=middle, top_down_method="forecast_proportions")


# hierarchicalforecast 1.5 gives no intervals for forecast-proportion top-down methods.
NO_RECONCILED_INTERVALS = {"TopDown(forecast_proportions)", "MiddleOut"}


def _reconcile(
    base: pl.DataFrame,
    fitted: pl.DataFrame,
    hier: Hierarchy,
    open_ids: pl.Series,
    cfg: ForecastConfig,
    nonnegative: bool = False,
) -> pl.DataFrame:
    """Reconciled (unique_id, ds, mean, lo/hi) over the open part of the hierarchy.

    BottomUp and MinTrace go through mmplan.reconcile (sparse S, no n x n matrix), the
    top-down methods through hierarchicalforecast. `nonnegative` asks hierarchicalforecast
    for its QP-based non-negative MinTrace; mmplan does not use it (see the module
    docstring) but benchmarks/nonneg_bench.py measures it.
    """
    from mmplan import reconcile

    if cfg.reconciliation in reconcile.METHODS and not nonnegative:
        return _reconcile_sparse(base, fitted, hier, open_ids, cfg)
    if cfg.reconciliation == "MinTrace(block_shrink)":
        raise ConfigError(
            f"[forecast].reconciliation = {cfg.reconciliation!r} has no non-negative "
            "hierarchicalforecast counterpart; use it without nonnegative."
        )
    from hierarchicalforecast.core import HierarchicalReconciliation

    keep_rows = hier.series.get_column("unique_id").is_in(open_ids.implode()).to_numpy()
    lane_ids = hier.series.get_column("unique_id").gather(hier.bottom_rows)  # S's columns
    keep_cols = lane_ids.is_in(open_ids.implode()).to_numpy()
    S = hier.S[keep_rows][:, keep_cols].toarray()
    sub_series = hier.series.filter(pl.Series(keep_rows))
    S_df = pl.DataFrame(S, schema=lane_ids.filter(pl.Series(keep_cols)).to_list()).insert_column(
        0, sub_series.get_column("unique_id")
    )
    tags = {
        name: sub_series.filter(pl.col("level") == name).get_column("unique_id").to_numpy()
        for name, _ in hier.levels
        if (sub_series.get_column("level") == name).any()
    }
    reconciler = _reconciler(cfg, hier, nonnegative)
    # MinTrace's variance estimates need the residuals; a NaN fitted value (the first
    # season of a seasonal naive) is no residual at all, so those days are dropped.
    y_df = fitted.filter(pl.col("base").is_not_nan())
    hrec = HierarchicalReconciliation(reconcilers=[reconciler])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_intervals = cfg.reconciliation not in NO_RECONCILED_INTERVALS
        rec = hrec.reconcile(
            Y_hat_df=base,
            tags=tags,
            S_df=S_df,
            Y_df=y_df,
            level=cfg.levels if with_intervals else None,
            intervals_method="normality",
        )
    method_col = next(
        c for c in rec.columns if c.startswith("base/") and "-lo-" not in c and "-hi-" not in c
    )
    rename = {method_col: "mean"}
    if not with_intervals:
        # Each series keeps its base model's interval widths around the reconciled mean.
        widths = base.select(
            "unique_id",
            "ds",
            *[
                (pl.col(f"base-{side}-{p}") - pl.col("base")).alias(f"{side}_{p}")
                for p in cfg.levels
                for side in ("lo", "hi")
            ],
        )
        rec = rec.join(widths, on=["unique_id", "ds"]).with_columns(
            pl.col(f"{side}_{p}") + pl.col(method_col) for p in cfg.levels for side in ("lo", "hi")
        )
        return rec.rename(rename).select(
            "unique_id", "ds", "mean", *[f"{s}_{p}" for p in cfg.levels for s in ("lo", "hi")]
        )
    for p in cfg.levels:
        rename[f"{method_col}-lo-{p}"] = f"lo_{p}"
        rename[f"{method_col}-hi-{p}"] = f"hi_{p}"
    return rec.select(["unique_id", "ds", *rename]).rename(rename)


def _reconcile_sparse(
    base: pl.DataFrame,
    fitted: pl.DataFrame,
    hier: Hierarchy,
    open_ids: pl.Series,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """`_reconcile` through mmplan.reconcile on the CSR summing matrix of the open series."""
    from scipy.stats import norm

    from mmplan import reconcile

    keep_rows = hier.series.get_column("unique_id").is_in(open_ids.implode()).to_numpy()
    keep_cols = keep_rows[hier.bottom_rows]  # a lane is open when its own row is
    S = hier.S[keep_rows][:, keep_cols]
    position = np.cumsum(keep_rows) - 1  # row in the open sub-hierarchy
    bottom_rows = position[hier.bottom_rows[keep_cols]]
    sub = hier.series.filter(pl.Series(keep_rows)).select("unique_id", "level")
    level_index = {name: k for k, (name, _) in enumerate(hier.levels)}
    level_of_row = np.array([level_index[v] for v in sub.get_column("level")], dtype=np.int64)
    ids = sub.select("unique_id").with_row_index("_row")
    n, horizon = sub.height, cfg.horizon

    def matrix(frame: pl.DataFrame, value: pl.Expr, width: int, col: str) -> np.ndarray:
        """(series x width) array from long rows keyed by unique_id and column index `col`."""
        out = np.full((n, width), np.nan)
        rows = frame.select("unique_id", col, value.alias("_v")).join(ids, on="unique_id")
        out[rows["_row"].to_numpy(), rows[col].to_numpy()] = rows["_v"].to_numpy()
        return out

    first = base.get_column("ds").min()
    base = base.with_columns((pl.col("ds") - pl.lit(first)).dt.total_days().alias("_step"))
    y_hat = matrix(base, pl.col("base"), horizon, "_step")
    # Base standard deviation per step, from each interval's half-width over z, averaged
    # over the levels (hierarchicalforecast's normality does the same).
    sigma_expr = pl.mean_horizontal(
        (pl.col(f"base-hi-{p}") - pl.col(f"base-lo-{p}")) / (2 * norm.ppf(0.5 + p / 200))
        for p in cfg.levels
    ).clip(lower_bound=0.0)
    sigma = np.nan_to_num(matrix(base, sigma_expr, horizon, "_step"))
    residuals = None
    if cfg.reconciliation.endswith(("wls_var)", "shrink)")):
        # A NaN fitted value (the first season of a seasonal naive) is no residual; the
        # columns are the days on which some series has one, as hierarchicalforecast pivots.
        res = fitted.filter(pl.col("base").is_not_nan()).with_columns(
            (pl.col("y") - pl.col("base")).alias("_res")
        )
        days = res.get_column("ds").unique().sort()
        res = res.join(
            days.to_frame().with_row_index("_day").with_columns(pl.col("_day").cast(pl.Int64)),
            on="ds",
        )
        residuals = matrix(res, pl.col("_res"), days.len(), "_day")
    rec = reconcile.reconcile(
        S,
        bottom_rows,
        y_hat,
        cfg.reconciliation,
        residuals=residuals,
        sigma=sigma,
        level_of_row=level_of_row,
    )
    sd = np.sqrt(rec.var)
    out = {
        "unique_id": np.repeat(sub.get_column("unique_id").to_numpy(), horizon),
        "_step": np.tile(np.arange(horizon), n),
        "mean": rec.mean.ravel(),
    }
    for p in cfg.levels:
        z = norm.ppf(0.5 + p / 200)
        out[f"lo_{p}"] = (rec.mean - z * sd).ravel()
        out[f"hi_{p}"] = (rec.mean + z * sd).ravel()
    frame = pl.DataFrame(out).with_columns(
        ds=pl.lit(first) + pl.duration(days=pl.col("_step")),
    )
    return frame.select("unique_id", "ds", *[c for c in out if c not in ("unique_id", "_step")])


def check_calibration(
    calibration: pl.DataFrame,
    levels: list[str],
    cfg: ForecastConfig,
    source: str = "calibration",
) -> None:
    """Refuse a calibration measured for another forecast than this one.

    It must have a pooled (rule ``all``) factor for exactly these levels and intervals, come
    from the same model, lanes mode and reconciliation, and cover at least this horizon:
    factors grow with the horizon, so a shorter backtest's would be too narrow.
    """
    from mmplan.tables import validate_calibration

    check(validate_calibration(calibration), source, "calibration")
    pooled = calibration.filter(pl.col("rule") == "all")
    have = set(zip(pooled["level"].to_list(), pooled["interval"].to_list(), strict=True))
    missing = [f"{lv}@{p}" for lv in levels for p in cfg.levels if (lv, p) not in have]
    extra = sorted(
        {
            f"{lv}@{p}"
            for lv, p in zip(calibration["level"], calibration["interval"], strict=True)
            if lv not in levels or p not in cfg.levels
        }
    )
    said = [f"no factor for {', '.join(missing)}"] if missing else []
    if extra:
        said.append(f"factors for {', '.join(extra)}, which this forecast does not have")
    for key in ("model", "lanes", "reconciliation"):
        measured = sorted(set(calibration[key].to_list()))
        if measured != [getattr(cfg, key)]:
            said.append(f"measured with {key} {', '.join(measured)}, not {getattr(cfg, key)}")
    shortest = calibration["horizon"].min()
    if shortest is not None and shortest < cfg.horizon:
        said.append(
            f"measured over {shortest} days ahead, shorter than this forecast's {cfg.horizon}"
        )
    if said:
        raise DataError(
            f"{source} was not measured for this forecast: {'; '.join(said)}. Run `mmplan "
            "backtest` with the same [forecast] configuration (and at least this horizon) "
            "and pass its calibration.parquet."
        )


def _calibration_factors(
    calibration: pl.DataFrame, hier: Hierarchy, plan: pl.DataFrame, cfg: ForecastConfig
) -> dict[int, np.ndarray]:
    """Per interval level, the factor of every series (rows of hier.series).

    A series takes its level's factor for its rule, or the pooled one when the backtest saw
    no series of that rule. Lanes shared out of their origin follow the regular factor.
    """
    have = {
        (lv, rule, int(p)): float(f)
        for lv, rule, p, f in calibration.select("level", "rule", "interval", "factor").iter_rows()
    }
    series = hier.series.select("unique_id", "level").join(
        plan.select("unique_id", "rule"), on="unique_id", how="left", maintain_order="left"
    )
    pairs = list(
        zip(series["level"].to_list(), series["rule"].fill_null("regular").to_list(), strict=True)
    )
    return {
        p: np.array([have.get((lv, rule, p), have[(lv, "all", p)]) for lv, rule in pairs])
        for p in cfg.levels
    }


def _config(config: Config | ForecastConfig | None) -> ForecastConfig:
    if config is None:
        return ForecastConfig()
    return config.forecast if isinstance(config, Config) else config


def check_forecastable(history: pl.DataFrame, cfg: ForecastConfig) -> None:
    """Refuse histories that pass the contract but cannot give a meaningful forecast."""
    first, last = history.get_column("date").min(), history.get_column("date").max()
    today = dt.datetime.now(dt.UTC).date()
    if last > today + dt.timedelta(days=1):
        rows = history.with_row_index("_row").filter(pl.col("date") > today)["_row"]
        raise DataError(
            f"history column 'date' runs into the future: it ends on {last}, after today "
            f"({today}), in {rows.len()} rows (first: {rows.head(5).to_list()}). History must be "
            "observed volume; check the upstream date column (time zone, year)."
        )
    span = (last - first).days + 1
    if span < 2 * cfg.season_length:
        raise DataError(
            f"history spans {span} days ({first} .. {last}); forecasting needs at least "
            f"{2 * cfg.season_length} days (two seasons of {cfg.season_length}). Supply more "
            "history."
        )
    if history.get_column("volume").sum() == 0:
        raise DataError(
            "history column 'volume' is zero on every row, so every lane is closed and there is "
            "nothing to forecast. Check the upstream extract."
        )


def forecast(
    history: pl.DataFrame,
    config: Config | ForecastConfig | None = None,
    *,
    champions: pl.DataFrame | None = None,
    calibration: pl.DataFrame | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> pl.DataFrame:
    """Reconciled, non-negative forecasts with intervals for every series of the hierarchy.

    Returns the forecast table of DESIGN.md: unique_id, level, key columns, date,
    forecast, lo_<p>/hi_<p> for each interval level, model. The history is validated
    first (DataError naming the rows if it breaks its contract). Base models are fit on
    `engine` (mmplan.engine; default: this machine); reconciliation runs here.
    `calibration` (level, interval, factor), from a backtest, scales each level's intervals.
    """
    cfg = _config(config)
    check(validate_history(history), "history", "history")
    check_forecastable(history, cfg)
    hier = history_hierarchy(history, cfg)
    if calibration is not None:  # before minutes of fitting
        check_calibration(calibration, [name for name, _ in hier.levels], cfg)
    if cfg.lanes == "share":
        # Only the levels above the lanes are fitted and reconciled.
        fit_hier = upper_hierarchy(hier)
        end = history.get_column("date").max()
        y = level_series(history, fit_hier.levels, cfg.fit_days)
    else:
        fit_hier = hier
        daily, end = lane_series(history, cfg.fit_days)
        y = aggregate(daily, hier)
    plan = assign_models(y, end, cfg, champions)
    open_ids = plan.filter(pl.col("rule") != "closed").get_column("unique_id")
    dates = pl.date_range(
        end + dt.timedelta(days=1), end + dt.timedelta(days=cfg.horizon), eager=True
    )
    horizon = cfg.horizon
    # Reconciled means and half-widths per series (rows of hier.series, whose first rows
    # are fit_hier's), (series x horizon); closed series stay 0.
    full = np.zeros((hier.series.height, horizon))
    half_lo = {p: np.zeros((hier.series.height, horizon)) for p in cfg.levels}
    half_hi = {p: np.zeros((hier.series.height, horizon)) for p in cfg.levels}
    if open_ids.len():
        base, fitted = _base_forecasts(y, plan, end, cfg, progress or _no_progress, engine)
        (progress or _no_progress)(open_ids.len(), open_ids.len(), "reconciling")
        checkpoint("forecast.reconciling")  # checkpoint
        rec = _reconcile(base, fitted, fit_hier, open_ids, _upper_reconciliation(cfg, fit_hier))
        order = hier.series.select("unique_id").with_row_index("_row")
        rec = rec.join(order, on="unique_id").with_columns(
            (pl.col("ds") - pl.lit(end)).dt.total_days().cast(pl.Int64).alias("_step")
        )
        rows, steps = rec["_row"].to_numpy(), rec["_step"].to_numpy() - 1
        full[rows, steps] = rec["mean"].to_numpy()
        for p in cfg.levels:
            half_lo[p][rows, steps] = np.maximum(full[rows, steps] - rec[f"lo_{p}"].to_numpy(), 0)
            half_hi[p][rows, steps] = np.maximum(rec[f"hi_{p}"].to_numpy() - full[rows, steps], 0)
    lane_labels = None
    if cfg.lanes == "share":
        parent, share, noise, closed = lane_shares(history, hier, fit_hier, cfg)
        bottom = full[parent] * share[:, None]
        from scipy.stats import norm

        # The lane's error is its share of the parent's error plus its own noise around
        # that share, taken as independent: half-width = sqrt((share x parent's)^2 + z^2 var).
        for p in cfg.levels:
            z2 = norm.ppf(0.5 + p / 200) ** 2 * noise[:, None]
            for half in (half_lo[p], half_hi[p]):
                half[hier.bottom_rows] = np.sqrt((share[:, None] * half[parent]) ** 2 + z2)
        lane_labels = pl.DataFrame(
            {
                "unique_id": hier.series.get_column("unique_id").gather(hier.bottom_rows),
                "model": np.where(closed, "Zero/closed", "Share"),
            }
        )
    else:
        bottom = full[hier.bottom_rows]
    bottom = np.maximum(bottom, 0.0)
    point = np.asarray(hier.S @ bottom)
    if calibration is not None:
        factors = _calibration_factors(calibration, hier, plan, cfg)
        widest: dict[str, np.ndarray] = {}
        for p in cfg.levels:  # ascending
            for side, half in (("lo", half_lo[p]), ("hi", half_hi[p])):
                half *= factors[p][:, None]
                # Factors are measured per interval: keep a wider interval no narrower.
                if side in widest:
                    np.maximum(half, widest[side], out=half)
                widest[side] = half
    out = {
        "unique_id": np.repeat(hier.series["unique_id"].to_numpy(), horizon),
        "date": np.tile(dates.to_numpy(), hier.series.height),
        "forecast": point.ravel(),
    }
    for p in cfg.levels:
        out[f"lo_{p}"] = np.maximum(point - half_lo[p], 0.0).ravel()
        out[f"hi_{p}"] = (point + half_hi[p]).ravel()
    model_label = plan.select(
        "unique_id",
        pl.when(pl.col("rule") == "regular")
        .then(pl.col("model"))
        .otherwise(pl.concat_str("model", pl.lit("/"), "rule"))
        .alias("model"),
    )
    if lane_labels is not None:
        model_label = pl.concat([model_label, lane_labels])
    result = (
        pl.DataFrame(out)
        .with_columns(pl.col("date").cast(pl.Date))
        .join(hier.series, on="unique_id", how="left", maintain_order="left")
        .join(model_label, on="unique_id", how="left", maintain_order="left")
    )
    interval_cols = [f"{side}_{p}" for p in cfg.levels for side in ("lo", "hi")]
    return result.select(
        "unique_id", "level", *hier.key_columns, "date", "forecast", *interval_cols, "model"
    )  # rows in hierarchy order: total first, lanes last, dates ascending
