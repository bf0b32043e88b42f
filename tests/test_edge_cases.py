"""Inputs a planner can easily give that once crashed or destroyed data: each now gets its
exit code and a message, and loses nothing."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import load_config
from mmplan.errors import ConfigError
from mmplan.forecasting import forecast
from tests.conftest import fast_config, make_history

GOOD = Path(__file__).parent / "data" / "good"
runner = CliRunner()


def text(result) -> str:
    return " ".join(result.output.split())


def test_a_folder_output_never_swallows_the_runs_inputs(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("nodes", "lanes", "demand"):
        shutil.copy(GOOD / f"{name}.parquet", victim / f"{name}.parquet")
    (victim / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    result = runner.invoke(
        app,
        [
            "optimize",
            str(victim / "demand.parquet"),
            "--nodes",
            str(victim / "nodes.parquet"),
            "--lanes",
            str(victim / "lanes.parquet"),
            "-o",
            str(victim),
        ],
    )
    assert result.exit_code == 73 and "is inside it" in text(result)
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before


def test_a_folder_output_refuses_a_folder_of_someone_elses_files(tmp_path):
    other = tmp_path / "reports"
    other.mkdir()
    (other / "q3.xlsx").write_text("precious")
    result = runner.invoke(
        app,
        [
            "sample",
            str(other),
            "--fcs",
            "1",
            "--scs",
            "2",
            "--dss",
            "3",
            "--days",
            "60",
            "--regions",
            "1",
        ],
    )
    assert result.exit_code == 73 and "q3.xlsx" in text(result)
    assert (other / "q3.xlsx").read_text() == "precious"
    # an earlier mmplan output (it has a manifest) is replaced as usual
    out = tmp_path / "net"
    args = [
        "sample",
        str(out),
        "--fcs",
        "1",
        "--scs",
        "2",
        "--dss",
        "3",
        "--days",
        "60",
        "--regions",
        "1",
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0


@pytest.mark.parametrize(
    "champions, message",
    [
        ({"unique_id": ["total"], "model": ["Zero/new"]}, "names models mmplan does not offer"),
        ({"unique_id": ["total", "total"], "model": ["Naive", "MSTL"]}, "one champion each"),
        ({"series": ["total"], "model": ["Naive"]}, "column 'unique_id': is missing"),
    ],
)
def test_a_bad_champions_table_is_65_naming_that_file(
    tmp_path, history_file, fast_toml, champions, message
):
    path = tmp_path / "champions.parquet"
    pl.DataFrame(champions).write_parquet(path)
    result = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(tmp_path / "f.parquet"),
            "--config",
            str(fast_toml),
            "--champions",
            str(path),
        ],
    )
    assert result.exit_code == 65
    assert message in text(result) and text(result).startswith(f"error: {path}")


def test_null_lane_attribute_is_65_not_a_crash(tmp_path, history):
    bad = history.with_columns(
        pl.when(pl.col("origin") == "FC1")
        .then(None)
        .otherwise(pl.col("origin_region"))
        .alias("origin_region")
    )
    path = tmp_path / "h.parquet"
    bad.write_parquet(path)
    for args in (["validate", str(path)], ["forecast", str(path), "-o", str(tmp_path / "f.pq")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 65 and "nulls in a lane attribute column" in text(result)


def test_validate_reports_mistyped_forecast_columns(tmp_path, history):
    fc = forecast(history, fast_config())
    path = tmp_path / "f.parquet"
    fc.with_columns(
        pl.col("lo_80").cast(pl.String), pl.col("level").cast(pl.Categorical)
    ).write_parquet(path)
    result = runner.invoke(app, ["validate", str(path), "--kind", "forecast"])
    assert result.exit_code == 65 and "column 'lo_80': has type String" in text(result)


def test_conformal_intervals_with_a_young_lane(history):
    young = (
        history.filter(pl.col("destination") == "DS03")
        .tail(10)
        .with_columns(destination=pl.lit("DS99"))
    )
    fc = forecast(pl.concat([history, young]), fast_config(intervals="conformal"))
    lane = fc.filter(pl.col("destination") == "DS99")
    assert lane["model"].unique().to_list() == ["HistoricAverage/short"]


def test_fit_days_does_not_make_old_lanes_short():
    h = make_history(n_lanes=4, days=150, sparse_every=0, new_lane=False, closed_lane=False)
    fc = forecast(h, fast_config(fit_days=30, min_history_days=28, horizon=7))
    assert set(fc.filter(pl.col("level") == "lane")["model"]) == {"SeasonalNaive"}


@pytest.mark.parametrize("body", ["forecast = 3\n", "[sample]\nseed = -1\n"])
def test_malformed_config_sections_are_78(tmp_path, history_file, body):
    cfg = tmp_path / "c.toml"
    cfg.write_text(body)
    command = ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet"), "--horizon", "7"]
    if "seed" in body:
        command = ["sample", str(tmp_path / "s")]
    result = runner.invoke(app, [*command, "--config", str(cfg)])
    assert result.exit_code == 78, text(result)


def test_a_tiny_file_is_called_truncated(tmp_path):
    path = tmp_path / "h.parquet"
    path.write_bytes(b"PA")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 66 and "truncated" in text(result)


def test_leftovers_of_a_killed_run_are_recovered_or_removed(tmp_path):
    from mmplan.io import output_lock

    out = tmp_path / "plan"
    (tmp_path / ".plan.abc.old").mkdir()  # killed between the two renames of a swap
    (tmp_path / ".plan.abc.old" / "summary.json").write_text("{}")
    (tmp_path / ".plan.def.tmp").mkdir()  # killed while writing
    (tmp_path / ".f.parquet.x.tmp").write_text("partial")  # another output's: left alone
    with output_lock(out):
        pass
    assert (out / "summary.json").read_text() == "{}"
    assert not (tmp_path / ".plan.def.tmp").exists()
    assert (tmp_path / ".f.parquet.x.tmp").exists()


def test_a_bad_flag_value_is_a_usage_error_naming_the_flag(tmp_path, history_file, fast_toml):
    result = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(tmp_path / "f.parquet"),
            "--config",
            str(fast_toml),
            "--horizon",
            "2000",
        ],
    )
    assert result.exit_code == 2 and "--horizon 2000" in text(result)
    assert str(fast_toml) not in text(result)  # the file is not to blame


@pytest.mark.parametrize("drop", ["date", "origin"])
def test_history_without_a_key_column_is_reported_not_a_crash(drop):
    from mmplan.tables import validate_history

    problems = validate_history(make_history(n_lanes=2, days=20).drop(drop))
    assert any(p.column == drop and "missing" in p.message for p in problems)


def test_attribute_columns_may_have_any_name():
    from mmplan.tables import validate_history

    h = make_history(n_lanes=2, days=20).with_columns(_rows=pl.lit("a"), _days=pl.lit("b"))
    assert validate_history(h) == []


def test_provenance_records_the_input_as_it_was_read(tmp_path):
    """A history replaced while a run works on the old one is traced to the old one."""
    from mmplan.io import provenance, read_parquet, sha256_file

    path = tmp_path / "history.parquet"
    make_history(n_lanes=2, days=20).write_parquet(path)
    read_hash = sha256_file(path)
    read_parquet(path, "history")
    make_history(n_lanes=2, days=20, seed=9).write_parquet(path)  # replaced mid-run
    assert sha256_file(path) != read_hash
    record = provenance("forecast", {}, {"history": path})
    assert record["inputs"]["history"]["sha256"] == read_hash


@pytest.mark.parametrize("flag", ["-o", "--junit", "--summary"])
def test_an_output_file_never_overwrites_the_runs_input(tmp_path, history_file, fast_toml, flag):
    before = history_file.read_bytes()
    if flag == "-o":
        args = ["forecast", str(history_file), "-o", str(history_file)]
    else:
        args = ["backtest", str(history_file), "-o", str(tmp_path / "bt"), flag]
        args.append(str(tmp_path / "." / history_file.name))  # the same file, spelled apart
    result = runner.invoke(app, [*args, "--config", str(fast_toml)])
    assert result.exit_code == 73 and "is an input of this run" in text(result)
    assert history_file.read_bytes() == before


def test_lanes_whose_series_ids_would_collide_are_65_not_merged(tmp_path, fast_toml):
    # lane:A/B/C could be A/B -> C or A -> B/C: merged, the forecast's levels stopped adding up.
    h = make_history(n_lanes=4, days=90)
    first, second = h["destination"].unique().sort().to_list()[:2]
    h = h.with_columns(
        origin=pl.when(pl.col("destination") == first)
        .then(pl.lit("A/B"))
        .when(pl.col("destination") == second)
        .then(pl.lit("A"))
        .otherwise(pl.col("origin")),
        destination=pl.when(pl.col("destination") == first)
        .then(pl.lit("C"))
        .when(pl.col("destination") == second)
        .then(pl.lit("B/C"))
        .otherwise(pl.col("destination")),
    )
    path = tmp_path / "history.parquet"
    h.write_parquet(path)
    out = tmp_path / "forecast.parquet"
    result = runner.invoke(app, ["forecast", str(path), "-o", str(out), "-c", str(fast_toml)])
    assert result.exit_code == 65, result.output
    assert str(path) in text(result) and "lane:A/B/C" in text(result) and "'/'" in text(result)
    assert not out.exists()


@pytest.mark.parametrize(
    ("kind", "change", "needle"),
    [
        ("lanes", lambda t: t.with_columns(max_trucks=pl.lit(1.5)), "max_trucks"),
        ("nodes", lambda t: t.with_columns(extra_capacity_cost=None), "extra_capacity without"),
        ("nodes", lambda t: t.with_columns(capacity=None), "unlimited"),
    ],
    ids=["fractional-max-trucks", "extra-without-price", "extra-on-unlimited"],
)
def test_limits_the_optimizer_refuses_fail_validate_and_name_their_file(
    tmp_path, kind, change, needle
):
    # `mmplan validate` once passed these, and optimize then blamed the demand file.
    bad = tmp_path / f"{kind}.parquet"
    change(pl.read_parquet(GOOD / f"{kind}.parquet")).write_parquet(bad)
    result = runner.invoke(app, ["validate", str(bad), "--kind", kind])
    assert result.exit_code == 65 and needle in text(result), result.output
    files = {k: str(GOOD / f"{k}.parquet") for k in ("demand", "nodes", "lanes")} | {kind: str(bad)}
    args = ["optimize", files["demand"], "--nodes", files["nodes"], "--lanes", files["lanes"]]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "plan")])
    assert result.exit_code == 65 and needle in text(result), result.output
    assert text(result).startswith(f"error: {bad}") and files["demand"] not in text(result)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('[forecast]\nhorizon = "7"\n', "forecast.horizon"),
        ('[optimize]\nrelax = "yes"\n', "optimize.relax"),
        ("[sample]\nseed = true\n", "sample.seed"),
        ('[sample]\nstart = "2024-01-01"\n', "sample.start"),
    ],
)
def test_a_wrong_type_in_the_config_is_78_not_coerced(tmp_path, body, key):
    # DESIGN: a wrong type is a configuration error; "7" is text, not the number 7.
    cfg = tmp_path / "c.toml"
    cfg.write_text(body)
    result = runner.invoke(app, ["sample", str(tmp_path / "s"), "--config", str(cfg)])
    assert result.exit_code == 78 and f"'{key}'" in text(result) and str(cfg) in text(result)
    assert not (tmp_path / "s").exists()


def test_sample_start_flag_still_takes_a_date(tmp_path):
    out = tmp_path / "s"
    args = ["sample", str(out), "--fcs", "1", "--scs", "1", "--dss", "2", "--days", "28"]
    assert runner.invoke(app, [*args, "--start", "2025-03-01"]).exit_code == 0
    assert pl.read_parquet(out / "history.parquet")["date"].min().isoformat() == "2025-03-01"
    result = runner.invoke(app, [*args, "--start", "2025-13-01"])
    assert result.exit_code == 2 and "--start" in text(result)


def test_validate_recognises_the_plan_it_wrote(tmp_path):
    # README: `mmplan validate FILE` shows any output's provenance. On a plan's files it
    # once guessed "history" and failed a good plan (65) with made-up problems.
    plan = tmp_path / "plan"
    files = [str(GOOD / f"{k}.parquet") for k in ("demand", "nodes", "lanes")]
    args = ["optimize", files[0], "--nodes", files[1], "--lanes", files[2], "-o", str(plan)]
    assert runner.invoke(app, args).exit_code == 0
    assert pl.read_parquet(plan / "unserved.parquet").is_empty()
    kinds = {"trucks": "trucks", "flows": "flows", "nodes": "plan_nodes", "unserved": "unserved"}
    for name, kind in kinds.items():
        result = runner.invoke(app, ["validate", str(plan / f"{name}.parquet")])
        assert result.exit_code == 0, result.output
        assert f"valid {kind} table" in text(result) and "`optimize`" in text(result)
    broken = tmp_path / "trucks.parquet"
    pl.read_parquet(plan / "trucks.parquet").drop("trucks").write_parquet(broken)
    result = runner.invoke(app, ["validate", str(broken), "--kind", "trucks"])
    assert result.exit_code == 65 and "column 'trucks': is missing" in text(result)


def test_a_parent_split_across_regions_names_the_series(tmp_path, fast_toml):
    # The default hierarchy is right; the history puts one origin in two regions. The
    # message used to tell the planner only to reorder the hierarchy.
    h = make_history(n_lanes=6, days=90).with_columns(
        origin_region=pl.when(pl.col("destination") == "DS03")
        .then(pl.lit("WEST"))
        .otherwise(pl.col("origin_region"))
    )
    path = tmp_path / "history.parquet"
    h.write_parquet(path)
    out = tmp_path / "f.parquet"
    # Shares need the nesting (lanes = "auto" gives such lanes their own models instead).
    fast_toml.write_text(fast_toml.read_text() + 'lanes = "share"\n')
    result = runner.invoke(app, ["forecast", str(path), "-o", str(out), "-c", str(fast_toml)])
    assert result.exit_code == 78, result.output
    said = text(result)
    assert "origin:FC0" in said and "origin_region:EAST" in said and "origin_region:WEST" in said
    assert "fix" in said and "history" in said


def test_timestamps_in_the_date_column_get_the_right_hint(tmp_path):
    # pandas writes datetime64 columns as timestamps; "stored as text?" sent planners astray.
    path = tmp_path / "history.parquet"
    make_history(n_lanes=2, days=30).with_columns(pl.col("date").cast(pl.Datetime)).write_parquet(
        path
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 65
    assert "timestamps" in text(result) and "as text" not in text(result)


def test_a_misspelt_column_is_reported_not_a_table_of_unknown_kind(tmp_path):
    path = tmp_path / "history.parquet"
    make_history(n_lanes=2, days=30).rename({"volume": "volumes"}).write_parquet(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 65 and "column 'volume': is missing" in text(result)


def test_a_bad_forecast_row_is_named_by_its_row_in_the_file(tmp_path):
    # optimize checks only a forecast's lane rows; it numbered them within that subset and
    # suggested `validate --kind demand`, which then reported columns a forecast never has.
    fc = pl.DataFrame(
        {
            "unique_id": ["total", "total", "lane:FC01/SC01", "lane:FC01/SC01"],
            "level": ["total", "total", "lane", "lane"],
            "origin": [None, None, "FC01", "FC01"],
            "destination": [None, None, "SC01", "SC01"],
            "date": [dt.date(2024, 3, 29), dt.date(2024, 3, 30)] * 2,
            "forecast": [10.0, 10.0, 10.0, -1.0],
            "model": ["Naive"] * 4,
        }
    )
    path = tmp_path / "forecast.parquet"
    fc.write_parquet(path)
    files = [str(GOOD / f"{k}.parquet") for k in ("nodes", "lanes")]
    args = ["optimize", str(path), "--nodes", files[0], "--lanes", files[1]]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "plan")])
    assert result.exit_code == 65
    assert "(1 rows: 3)" in text(result) and "--kind forecast" in text(result), result.output


def test_a_folder_given_as_config_is_called_a_folder(tmp_path, history_file):
    args = ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet")]
    result = runner.invoke(app, [*args, "-c", str(tmp_path)])
    assert result.exit_code == 66 and "is a folder" in text(result)


@pytest.mark.parametrize("table", ["history", "nodes", "lanes", "demand"])
def test_blank_facility_names_are_65(tmp_path, table):
    # A CSV export turns a missing name into "", which is not null but names no facility.
    key = "node" if table == "nodes" else "origin"
    df = pl.read_parquet(GOOD / f"{table}.parquet")
    blank = pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("")).otherwise(pl.col(key))
    df = df.with_columns(blank.alias(key))
    path = tmp_path / f"{table}.parquet"
    df.write_parquet(path)
    result = runner.invoke(app, ["validate", str(path), "--kind", table])
    assert result.exit_code == 65 and f"column '{key}': has empty names (1 rows: 2)" in text(result)


@pytest.mark.parametrize("dtype", [pl.Int64, pl.Categorical])
def test_a_lane_key_of_the_wrong_type_is_65(tmp_path, dtype):
    path = tmp_path / "history.parquet"
    h = make_history(n_lanes=2, days=30).with_columns(pl.col("origin").str.slice(2))
    h.with_columns(pl.col("origin").cast(dtype)).write_parquet(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 65 and "column 'origin': has type" in text(result)


def test_a_level_listed_twice_is_78_naming_the_file_and_key(tmp_path, history_file):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[forecast]\nhierarchy = [["origin"], ["origin"]]\n')
    args = ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet"), "-c", str(cfg)]
    result = runner.invoke(app, args)
    assert result.exit_code == 78
    assert str(cfg) in text(result) and "'forecast.hierarchy'" in text(result)


def test_validate_recognises_a_backtests_points_and_a_nodes_table_with_extra_columns(
    tmp_path, history_file, fast_toml
):
    # points.parquet holds one row per run, series, cutoff and date: read as a forecast it
    # failed a good backtest on duplicated (unique_id, date) rows.
    out = tmp_path / "bt"
    args = ["backtest", str(history_file), "-o", str(out), "-c", str(fast_toml), "--windows", "2"]
    assert runner.invoke(app, args).exit_code == 0
    for name, kind in (("points", "points"), ("calibration", "calibration")):
        result = runner.invoke(app, ["validate", str(out / f"{name}.parquet")])
        assert result.exit_code == 0, result.output
        assert f"valid {kind} table" in text(result)
    doubled = tmp_path / "points.parquet"
    points = pl.read_parquet(out / "points.parquet")
    pl.concat([points, points.head(1)]).write_parquet(doubled)
    result = runner.invoke(app, ["validate", str(doubled)])
    assert result.exit_code == 65 and "duplicated (run, series, cutoff, date)" in text(result)
    # A nodes table that also carries a throughput column is still a nodes table.
    nodes = tmp_path / "nodes.parquet"
    pl.read_parquet(GOOD / "nodes.parquet").with_columns(throughput=pl.lit(1.0)).write_parquet(
        nodes
    )
    result = runner.invoke(app, ["validate", str(nodes)])
    assert result.exit_code == 0 and "valid nodes table" in text(result), result.output


def test_a_quoted_toml_date_is_told_to_lose_its_quotes(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sample]\nstart = "2024-01-01"\n')
    with pytest.raises(ConfigError, match="without quotes"):
        load_config(cfg)
