"""Defects found by the adversarial pass (tests/data/adversarial.md, "Defects"), one test
each, stating what DESIGN.md asks for. Each failed before its fix (it was a strict xfail
until the fix landed) and keeps the defect fixed now."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from tests.test_adversarial import TINY, earlier_sample, signal_sample_at

GOOD = Path(__file__).parent / "data" / "good"
FAST = '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nn_jobs = 1\n'
runner = CliRunner()


def _run(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    return result.exit_code, " ".join(result.output.split())


def _fast(tmp: Path, extra: str = "") -> str:
    cfg = tmp / "fast.toml"
    cfg.write_text(FAST + extra)
    return str(cfg)


def test_a1_a_file_name_with_brackets_is_read(tmp_path):
    name = tmp_path / "history[2024].parquet"
    shutil.copy(GOOD / "history.parquet", name)
    exit_code, text = _run(["validate", str(name)])
    assert exit_code == 0, text


def test_a2_a_file_name_with_a_star_reads_that_file_only(tmp_path):
    history = pl.read_parquet(GOOD / "history.parquet")
    first = history.filter(pl.col("destination") == history["destination"][0])
    first.write_parquet(tmp_path / "h*.parquet")
    history.join(first, on=["origin", "destination", "date"], how="anti").write_parquet(
        tmp_path / "h_rest.parquet"
    )
    exit_code, text = _run(["validate", str(tmp_path / "h*.parquet")])
    assert exit_code == 0, text
    assert f"{first.height:,} rows" in text, text  # today: the two files' rows, merged


def test_a3_an_input_name_too_long_for_the_file_system_is_exit_66(tmp_path):
    exit_code, text = _run(["validate", str(tmp_path / ("h" * 300 + ".parquet"))])
    assert exit_code == 66, text


def test_a4_an_output_in_a_folder_nobody_can_write_is_exit_73():
    exit_code, text = _run(["sample", "/proc/mmplan-adversarial", *TINY])
    assert exit_code == 73, text
    assert "another run holds the lock" not in text


@pytest.mark.parametrize("start", ["9999-06-01", "0001-01-01"])
def test_a5_a_sample_start_near_the_ends_of_the_calendar_is_refused(tmp_path, start):
    days = ["--fcs", "1", "--scs", "1", "--dss", "2", "--days", "730"]
    exit_code, text = _run(["sample", str(tmp_path / "s"), "--start", start, *days])
    assert exit_code in (0, 2, 78), text


def test_a6_an_infinite_connect_timeout_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[engine]\nconnect_timeout = inf\n")
    args = ["optimize", str(GOOD / "demand.parquet"), "--nodes", str(GOOD / "nodes.parquet")]
    args += ["--lanes", str(GOOD / "lanes.parquet"), "-o", str(tmp_path / "plan")]
    args += ["--config", str(cfg), "--scheduler", "tcp://127.0.0.1:1"]
    exit_code, text = _run(args)
    assert exit_code == 78, text
    assert "connect_timeout" in text


def test_a7_volumes_near_the_float_maximum_are_refused_not_forecast_as_nan(tmp_path):
    history = pl.read_parquet(GOOD / "history.parquet").with_columns(volume=pl.lit(1.7e308))
    history.write_parquet(tmp_path / "h.parquet")
    out = tmp_path / "f.parquet"
    exit_code, text = _run(
        ["forecast", str(tmp_path / "h.parquet"), "-o", str(out)]
        + [
            "--config",
            _fast(tmp_path),
        ]
    )
    assert exit_code == 65, text  # today: 0, and every forecast is NaN
    assert not out.exists()


@pytest.mark.slow
def test_a8_ctrl_c_mid_swap_leaves_the_earlier_output_where_it_was(tmp_path):
    outdir = tmp_path / "s"
    before = earlier_sample(outdir)
    done = signal_sample_at(outdir, "output_folder.old-moved", signal.SIGINT)
    assert done.returncode == 130, done.stderr
    assert outdir.is_dir(), "the earlier sample is gone from its path (moved to .s.*.old)"
    assert {p.name: p.read_bytes() for p in outdir.iterdir()} == before


@pytest.mark.slow
def test_a9_ctrl_c_before_the_swap_leaves_no_temporary_folder(tmp_path):
    outdir = tmp_path / "s"
    earlier_sample(outdir)
    done = signal_sample_at(outdir, "output_folder.swapping", signal.SIGINT)
    assert done.returncode == 130, done.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert leftovers == []


def test_a10_a_cost_per_truck_beyond_the_solver_is_refused_naming_it(tmp_path):
    lanes = pl.read_parquet(GOOD / "lanes.parquet").with_columns(cost_per_truck=pl.lit(1e300))
    lanes.write_parquet(tmp_path / "lanes.parquet")
    args = ["optimize", str(GOOD / "demand.parquet"), "--nodes", str(GOOD / "nodes.parquet")]
    args += ["--lanes", str(tmp_path / "lanes.parquet"), "-o", str(tmp_path / "plan")]
    exit_code, text = _run(args)
    assert exit_code == 65, text
    assert "cost_per_truck" in text


def test_a11_sample_into_an_empty_path_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exit_code, text = _run(["sample", "", *TINY])
    assert exit_code == 2, text
    assert os.listdir(tmp_path) == []


def test_a12_an_empty_planned_column_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[optimize]\ncolumn = ""\n')
    args = ["optimize", str(GOOD / "demand.parquet"), "--nodes", str(GOOD / "nodes.parquet")]
    args += ["--lanes", str(GOOD / "lanes.parquet"), "-o", str(tmp_path / "plan")]
    exit_code, text = _run([*args, "--config", str(cfg)])
    assert exit_code == 78, text


def test_a13_validate_with_a_config_accepts_the_demand_optimize_accepts(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optimize]\nrelative_gap = 0.0\n")
    demand = str(GOOD / "demand.parquet")
    args = ["optimize", demand, "--nodes", str(GOOD / "nodes.parquet"), "--lanes"]
    args += [str(GOOD / "lanes.parquet"), "-o", str(tmp_path / "plan"), "--config", str(cfg)]
    assert _run(args)[0] == 0
    exit_code, text = _run(["validate", demand, "--kind", "demand", "--config", str(cfg)])
    assert exit_code == 0, text
