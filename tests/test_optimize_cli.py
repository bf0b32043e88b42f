"""`mmplan optimize` end to end through the CLI: the plan folder and every exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from filelock import FileLock
from mcnd import read_dow
from test_optimize import DAY, NODES, demand, lanes
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.io import read_provenance

LANES = lanes(
    ("F1", "S", 10, 30, 0.1, None),
    ("F2", "S", 10, 30, 0.1, None),
    ("S", "D", 10, 40, 0.1, 1),
    ("F1", "D", 10, 90, 0.0, None),
)
DEMAND = demand(("F1", "D", 6), ("F2", "D", 4))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, df in (("nodes", NODES), ("lanes", LANES), ("demand", DEMAND)):
        out[name] = tmp_path / f"{name}.parquet"
        df.write_parquet(out[name])
    return out


def run(files: dict[str, Path], *extra: str, out: Path | None = None):
    out = out or files["nodes"].parent / "plan"
    args = [
        "optimize",
        str(files["demand"]),
        "--nodes",
        str(files["nodes"]),
        "--lanes",
        str(files["lanes"]),
        "-o",
        str(out),
        "--column",
        "volume",
        *extra,
    ]
    return CliRunner().invoke(app, args)


def test_writes_the_plan_folder_with_provenance(files):
    result = run(files, "--json")
    assert result.exit_code == 0, result.output
    plan = files["nodes"].parent / "plan"
    assert sorted(p.name for p in plan.iterdir()) == [
        "flows.parquet",
        "manifest.json",
        "nodes.parquet",
        "summary.json",
        "trucks.parquet",
        "unserved.parquet",
    ]
    trucks = pl.read_parquet(plan / "trucks.parquet")
    assert set(trucks.columns) >= {
        "origin",
        "destination",
        "date",
        "trucks",
        "volume",
        "utilization",
        "cost",
    }
    assert set(pl.read_parquet(plan / "nodes.parquet").columns) >= {
        "node",
        "date",
        "throughput",
        "capacity",
        "added_capacity",
        "utilization",
        "shadow_price",
    }
    summary = json.loads((plan / "summary.json").read_text())
    assert summary["status"] == "OPTIMAL"
    # S -> D takes one truck of 10: both FCs consolidate through S.
    assert summary["objective"] == pytest.approx(30 + 30 + 40 + 0.1 * 20)
    record = read_provenance(plan / "flows.parquet")
    assert record["command"] == "optimize"
    assert set(record["inputs"]) == {"demand", "nodes", "lanes"}
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["objective"] == summary["objective"]
    assert printed["expensive_lanes"][0]["cost"] > 0


def test_a_forecast_table_is_planned_on_its_lane_rows(files, tmp_path):
    fc = pl.DataFrame(
        {
            "unique_id": ["total", "F1/D", "F2/D"],
            "level": ["total", "lane", "lane"],
            "origin": [None, "F1", "F2"],
            "destination": [None, "D", "D"],
            "date": [DAY] * 3,
            "forecast": [10.0, 6.0, 4.0],
            "hi_80": [12.0, 7.0, 5.0],
            "model": ["AutoETS"] * 3,
        }
    )
    fc.write_parquet(tmp_path / "forecast.parquet")
    args = [
        "optimize",
        str(tmp_path / "forecast.parquet"),
        "--nodes",
        str(files["nodes"]),
        "--lanes",
        str(files["lanes"]),
        "-o",
        str(tmp_path / "plan"),
        "--quantile",
        "hi_80",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    flows = pl.read_parquet(tmp_path / "plan" / "flows.parquet")
    assert flows.filter(pl.col("destination") == "D")["volume"].sum() > 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["totals"]["demand"] == pytest.approx(12)
    assert summary["column"] == "hi_80"


def test_relax_writes_an_lp_plan(files):
    result = run(files, "--relax", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["problem"] == "LP relaxation"


def test_unserved_volume_is_reported_not_an_error(files, tmp_path):
    demand(("F1", "D", 6), ("F2", "D", 30)).write_parquet(files["demand"])  # F2 only via S
    tight = NODES.with_columns(capacity=pl.when(pl.col("node") == "S").then(5.0))
    tight.write_parquet(files["nodes"])
    result = run(files)
    assert result.exit_code == 0, result.output
    assert "unserved" in result.output and "penalty" in result.output
    assert pl.read_parquet(tmp_path / "plan" / "unserved.parquet")["volume"].sum() > 0


def test_exit_2_for_conflicting_flags(files):
    assert run(files, "--quantile", "hi_80").exit_code == 2


@pytest.mark.parametrize(
    ("breaks", "needle"),
    [
        (lambda f: pl.concat([LANES, LANES.head(1)]).write_parquet(f["lanes"]), "duplicated"),
        (
            lambda f: LANES.with_columns(truck_capacity=pl.lit(-1.0)).write_parquet(f["lanes"]),
            "truck capacity",
        ),
        (lambda f: demand(("F1", "Z7", 3)).write_parquet(f["demand"]), "Z7"),
        (
            lambda f: NODES.with_columns(
                extra_capacity=pl.lit(4.0), capacity=pl.lit(9.0)
            ).write_parquet(f["nodes"]),
            "extra_capacity_cost",
        ),
        (lambda f: demand(("D", "F1", 3)).write_parquet(f["demand"]), "D->F1"),
        (lambda f: DEMAND.rename({"volume": "vol"}).write_parquet(f["demand"]), "volume"),
    ],
    ids=[
        "duplicate-lane",
        "truck-capacity",
        "unknown-facility",
        "contradictory",
        "no-path",
        "no-column",
    ],
)
def test_exit_65_for_bad_data_names_the_culprit(files, breaks, needle):
    breaks(files)
    result = run(files)
    assert result.exit_code == 65, result.output
    assert needle in result.output


def test_exit_66_for_a_missing_input(files):
    files["lanes"].unlink()
    assert run(files).exit_code == 66


def test_exit_69_when_the_solver_stops_without_a_plan(tmp_path, solver_without_a_plan):
    inst = read_dow("C/c33")
    paths = {}
    for name, df in inst.items():
        paths[name] = tmp_path / f"{name}.parquet"
        df.write_parquet(paths[name])
    (tmp_path / "fast.toml").write_text("[optimize]\nworkers = 1\n")
    result = run(paths, "--config", str(tmp_path / "fast.toml"))
    assert result.exit_code == 69, result.output
    assert "time_limit" in result.output
    assert not (tmp_path / "plan").exists()


def test_exit_73_when_the_output_folder_cannot_be_made(files, tmp_path):
    assert run(files, out=tmp_path / "no" / "such" / "plan").exit_code == 73


@pytest.mark.skipif(os.name != "posix", reason="file locks as on Linux")
def test_exit_75_when_another_run_holds_the_lock(files, tmp_path):
    with FileLock(tmp_path / ".plan.lock"):
        assert run(files).exit_code == 75


def test_exit_78_for_a_bad_config(files, tmp_path):
    (tmp_path / "bad.toml").write_text('[optimize]\nsolver = "GUROBI"\n')
    result = run(files, "--config", str(tmp_path / "bad.toml"))
    assert result.exit_code == 78
    assert "solver" in result.output


def test_scenarios_give_one_plan_folder_per_column_solved_together(files):
    # A second demand column, "peak": F2 ships 9 instead of 4, so S -> D needs a 2nd truck.
    peak = DEMAND.with_columns(
        peak=pl.when(pl.col("origin") == "F2").then(9.0).otherwise(pl.col("volume"))
    )
    peak.write_parquet(files["demand"])
    out = files["nodes"].parent / "plans"
    args = [
        "optimize",
        str(files["demand"]),
        "--nodes",
        str(files["nodes"]),
        "--lanes",
        str(files["lanes"]),
        "-o",
        str(out),
        "--scenarios",
        "volume,peak",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(printed["scenarios"]) == {"volume", "peak"}
    manifest = json.loads((out / "manifest.json").read_text())
    for col in ("volume", "peak"):
        assert sorted(p.name for p in (out / col).iterdir()) == [
            "flows.parquet",
            "nodes.parquet",
            "summary.json",
            "trucks.parquet",
            "unserved.parquet",
        ]
        assert f"{col}/trucks.parquet" in manifest["files"]
        # Each scenario's plan is the plan of that column alone.
        alone = CliRunner().invoke(
            app, [*args[:6], "-o", str(out.parent / f"alone-{col}"), "--column", col]
        )
        assert alone.exit_code == 0, alone.output
        single = json.loads((out.parent / f"alone-{col}" / "summary.json").read_text())
        both = json.loads((out / col / "summary.json").read_text())
        assert both["objective"] == pytest.approx(single["objective"])
    volume = json.loads((out / "volume" / "summary.json").read_text())["objective"]
    peak_cost = json.loads((out / "peak" / "summary.json").read_text())["objective"]
    assert peak_cost > volume


@pytest.mark.parametrize(
    "extra",
    [
        ["--scenarios", "volume,volume"],
        ["--scenarios", ","],
        ["--scenarios", "forecast,volume"],  # both plan `volume`
        ["--scenarios", "volume", "--column", "volume"],
    ],
)
def test_scenarios_misuse_is_a_usage_error(files, extra):
    args = [
        "optimize",
        str(files["demand"]),
        "--nodes",
        str(files["nodes"]),
        "--lanes",
        str(files["lanes"]),
        "-o",
        str(files["nodes"].parent / "p"),
        *extra,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output


def test_a_truck_larger_than_all_demand_plans_like_one_that_just_fits(files):
    # 1e12 packages per truck once left trucks at 1e-11 inside the solver's integrality
    # tolerance, and the plan failed its own capacity check (exit 70).
    LANES.with_columns(truck_capacity=pl.lit(1e12)).write_parquet(files["lanes"])
    result = run(files, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["objective"] == pytest.approx(30 + 30 + 40 + 0.1 * 20)
