"""Writes tests/data/good/ (a tiny valid network) and the malformed files in tests/data/bad/.

The expected exit code and message of each bad file live in tests/data/bad/expected.toml,
written by hand; tests/test_bad_inputs.py walks it. Re-run after changing a case:

    .venv/bin/python tests/data/make_corpus.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mmplan.config import SampleConfig
from mmplan.synthetic import sample

HERE = Path(__file__).parent
GOOD, BAD = HERE / "good", HERE / "bad"


def row_set(df: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    """`df` with the given columns replaced in one row."""
    idx = pl.int_range(pl.len())
    return df.with_columns(
        pl.when(idx == row).then(pl.lit(v)).otherwise(pl.col(c)).alias(c) for c, v in values.items()
    )


def main() -> None:
    net = sample(SampleConfig(regions=1, fcs=1, scs=2, dss=4, days=90, seed=3))
    history, nodes, lanes = net["history"], net["nodes"], net["lanes"]
    last = history["date"].max()
    demand = history.filter(pl.col("date") > last - dt.timedelta(days=2)).select(
        "origin", "destination", "date", "volume"
    )
    GOOD.mkdir(exist_ok=True)
    BAD.mkdir(exist_ok=True)
    for name, df in {"history": history, "nodes": nodes, "lanes": lanes, "demand": demand}.items():
        df.write_parquet(GOOD / f"{name}.parquet")

    raw = (GOOD / "history.parquet").read_bytes()
    (BAD / "empty.parquet").write_bytes(b"")
    (BAD / "json_renamed.parquet").write_text('{"date": "2025-01-01", "volume": 3}\n')
    (BAD / "truncated.parquet").write_bytes(raw[: len(raw) // 2])
    (BAD / "csv_renamed.parquet").write_text(history.head(20).write_csv())
    (BAD / "folder.parquet").mkdir(exist_ok=True)
    (BAD / "folder.parquet" / ".keep").write_text("a folder where a file should be\n")

    bad_history = {
        "history_missing_volume": history.drop("volume"),
        "history_volume_as_text": history.with_columns(pl.col("volume").cast(pl.String)),
        "history_volume_boolean": history.with_columns(pl.col("volume") > 0),
        "history_dates_as_strings": history.with_columns(pl.col("date").cast(pl.String)),
        "history_null_origin": row_set(history, 7, origin=None),
        "history_null_date": row_set(history, 3, date=None),
        "history_duplicate_rows": pl.concat([history, history.slice(10, 3)]),
        "history_negative_volume": row_set(history, 5, volume=-12.0),
        "history_nan_volume": row_set(history, 6, volume=float("nan")),
        "history_infinite_volume": row_set(history, 8, volume=float("inf")),
        "history_ends_in_future": history.with_columns(
            pl.col("date") + (dt.date(2099, 1, 1) - last)
        ),
        "history_single_row": history.head(1),
        "history_all_zeros": history.with_columns(volume=pl.lit(0.0)),
        "history_no_rows": history.head(0),
        "history_extra_integer_column": history.with_columns(pl.lit(1).alias("weight")),
        "history_region_not_constant": row_set(history, 0, origin_region="MARS"),
        "history_unicode_ids": history.with_columns(
            pl.col("origin").str.replace("FC", "Zürich-配送-"),
            pl.col("destination").str.replace("DS", "Straße-📦-"),
        ),
        "history_very_long_ids": history.with_columns(
            pl.col("destination") + pl.lit("-" + "x" * 500)
        ),
        "history_integer_volume": history.with_columns(pl.col("volume").cast(pl.Int64)),
        "history_self_loop": row_set(history, 0, destination=history["origin"][0]),
        "history_stray_1970_row": pl.concat(
            [row_set(history.head(1), 0, date=dt.date(1970, 1, 1)), history]
        ),
        "history_stray_0001_row": pl.concat(
            [history, row_set(history.tail(1), 0, date=dt.date(1, 1, 1))]
        ),
    }
    bad_nodes = {
        "nodes_missing_kind": nodes.drop("kind"),
        "nodes_unknown_kind": row_set(nodes, 1, kind="XD"),
        "nodes_duplicate_node": pl.concat([nodes, nodes.head(1)]),
        "nodes_negative_handling_cost": row_set(nodes, 2, handling_cost=-0.5),
        "nodes_negative_capacity": row_set(nodes, 1, capacity=-100.0),
    }
    bad_lanes = {
        "lanes_unknown_facility": row_set(lanes, 0, destination="DS999"),
        "lanes_zero_truck_capacity": row_set(lanes, 1, truck_capacity=0.0),
        "lanes_negative_cost": row_set(lanes, 2, cost_per_truck=-10.0),
        "lanes_duplicate_lane": pl.concat([lanes, lanes.head(1)]),
        "lanes_self_loop": row_set(lanes, 0, destination=lanes["origin"][0]),
        "lanes_missing_truck_capacity": lanes.drop("truck_capacity"),
    }
    bad_demand = {
        "demand_negative_volume": row_set(demand, 0, volume=-5.0),
        "demand_unknown_facility": row_set(demand, 0, origin="FC404"),
        "demand_missing_date": demand.drop("date"),
        "demand_duplicate_rows": pl.concat([demand, demand.head(2)]),
    }
    for name, df in {**bad_history, **bad_nodes, **bad_lanes, **bad_demand}.items():
        df.write_parquet(BAD / f"{name}.parquet")
    adversarial(history, nodes, lanes, demand)

    configs = {
        "config_unknown_key": "[forecast]\nhorizn = 7\n",
        "config_unknown_section": "[forcast]\nhorizon = 7\n",
        "config_wrong_type": '[forecast]\nhorizon = "a week"\n',
        "config_horizon_zero": "[forecast]\nhorizon = 0\n",
        "config_horizon_negative": "[forecast]\nhorizon = -7\n",
        "config_not_toml": "forecast:\n  horizon: 7\n",
        "config_unknown_model": '[forecast]\nmodel = "Prophet"\n',
        "config_hierarchy_unknown_column": '[forecast]\nhierarchy = [["country"]]\n',
        "config_interval_over_100": "[forecast]\nlevels = [80, 120]\n",
        "config_negative_time_limit": "[optimize]\ntime_limit = -1\n",
    }
    for name, text in configs.items():
        (BAD / f"{name}.toml").write_text(text)
    adversarial_configs()


def adversarial(
    history: pl.DataFrame, nodes: pl.DataFrame, lanes: pl.DataFrame, demand: pl.DataFrame
) -> None:
    """Cases from the adversarial pass (tests/data/adversarial.md) that mmplan already
    handles: odd dtypes, empty and degenerate tables, values at the contract's bounds."""
    last = history["date"].max()
    cases = {
        "history_datetime_tz_dates": history.with_columns(
            pl.col("date").cast(pl.Datetime("us")).dt.replace_time_zone("Europe/Berlin")
        ),
        "history_decimal_volume": history.with_columns(pl.col("volume").cast(pl.Decimal(12, 2))),
        "history_categorical_origin": history.with_columns(pl.col("origin").cast(pl.Categorical)),
        "history_struct_column": history.with_columns(extra=pl.struct(a=pl.lit(1), b=pl.lit("x"))),
        "history_null_dtype_column": history.with_columns(extra=pl.lit(None, dtype=pl.Null)),
        "history_two_days": history.filter(pl.col("date") > last - dt.timedelta(days=2)),
        "history_float32_volume": history.with_columns(pl.col("volume").cast(pl.Float32)),
        "nodes_capacity_nan": row_set(nodes, 1, capacity=float("nan")),
        "nodes_kind_lowercase": nodes.with_columns(pl.col("kind").str.to_lowercase()),
        "nodes_no_rows": nodes.head(0),
        "lanes_negative_transit_days": row_set(lanes, 0, transit_days=-1),
        "lanes_cost_per_package_nan": row_set(lanes, 0, cost_per_package=float("nan")),
        "lanes_no_rows": lanes.head(0),
        "demand_datetime_dates": demand.with_columns(pl.col("date").cast(pl.Datetime("us"))),
        "demand_no_rows": demand.head(0),
        "demand_pair_without_path": row_set(demand, 0, origin="DS001", destination="FC01"),
    }
    for name, df in cases.items():
        df.write_parquet(BAD / f"{name}.parquet")
    # Large strings and many small row groups are the same table to mmplan.
    pq.write_table(history.to_arrow(), BAD / "history_many_row_groups.parquet", row_group_size=10)
    table = history.to_arrow()
    large = pa.schema(
        pa.field(f.name, pa.large_string() if pa.types.is_string(f.type) else f.type)
        for f in table.schema
    )
    pq.write_table(table.cast(large), BAD / "history_large_string.parquet")
    # Two columns named volume: pyarrow writes it, polars refuses to read it.
    t = history.select("date", "origin", "destination", "volume").to_arrow()
    columns = [t.column(i) for i in range(4)] + [t.column(3)]
    names = ["date", "origin", "destination", "volume", "volume"]
    pq.write_table(pa.table(columns, names=names), BAD / "history_duplicate_column_names.parquet")
    pq.write_table(pa.table({}), BAD / "zero_columns.parquet")


def adversarial_configs() -> None:
    """Config values at and past their documented bounds that mmplan already refuses."""
    configs = {
        "config_levels_empty": "[forecast]\nlevels = []\n",
        "config_sparse_adi_nan": "[forecast]\nsparse_adi = nan\n",
        "config_season_length_zero": "[forecast]\nseason_length = 0\n",
        "config_season_length_huge": (
            '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nn_jobs = 1\nseason_length = 100000\n'
        ),
        "config_middle_level_unknown": (
            '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nn_jobs = 1\n'
            'reconciliation = "MiddleOut"\nmiddle_level = "nowhere"\n'
        ),
        "config_candidates_empty": "[backtest]\ncandidates = []\n",
        "config_series_per_task_zero": "[engine]\nseries_per_task = 0\n",
        "config_events_not_a_list": "[forecast.events.x]\ny = 1\n",
        "optimize_time_limit_nan": "[optimize]\ntime_limit = nan\n",
        "optimize_relative_gap_nan": "[optimize]\nrelative_gap = nan\n",
        "optimize_unserved_penalty_nan": "[optimize]\nunserved_penalty = nan\n",
        "optimize_time_limit_tiny": "[optimize]\ntime_limit = 1e-9\n",
    }
    for name, text in configs.items():
        (BAD / f"{name}.toml").write_text(text)


if __name__ == "__main__":
    main()
