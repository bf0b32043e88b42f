"""Inputs that pass a naive check but are wrong, output paths checked before any work, JSON
logs that stay JSON, and the default backtest gate (issue 13, items 5, 8, 9 and 10)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import mmplan.synthetic
from mmplan.cli import app
from mmplan.tables import validate_history

GOOD = Path(__file__).parent / "data" / "good"
runner = CliRunner()


def _history() -> pl.DataFrame:
    return pl.read_parquet(GOOD / "history.parquet")


def test_history_self_loop_is_refused_naming_the_row_and_lane(tmp_path):
    h = _history()
    looped = pl.concat([h, h.head(1).with_columns(destination=pl.col("origin"))])
    looped.write_parquet(tmp_path / "h.parquet")
    result = runner.invoke(app, ["validate", str(tmp_path / "h.parquet")])
    text = " ".join(result.output.split())
    assert result.exit_code == 65, text
    origin = h["origin"][0]
    assert f"same facility ({origin}->{origin}) (1 rows: {h.height})" in text


@pytest.mark.parametrize("stray", [dt.date(1970, 1, 1), dt.date(1, 1, 1)])
def test_a_stray_placeholder_date_is_refused_naming_the_row(tmp_path, stray):
    # One such row raised the total forecast by 18% (sample S, 200 days), silently.
    h = _history()
    pl.concat([h.head(1).with_columns(date=pl.lit(stray)), h]).write_parquet(tmp_path / "h.parquet")
    result = runner.invoke(app, ["validate", str(tmp_path / "h.parquet")])
    text = " ".join(result.output.split())
    assert result.exit_code == 65, text
    assert f"from {stray} to {h['date'].min()}" in text
    assert "max_history_gap_days = 365" in text and "(1 rows: 0)" in text
    # A real gap is allowed by raising the limit.
    (tmp_path / "wide.toml").write_text("[forecast]\nmax_history_gap_days = 800000\n")
    args = ["validate", str(tmp_path / "h.parquet"), "--config", str(tmp_path / "wide.toml")]
    assert runner.invoke(app, args).exit_code == 0


def test_the_library_refuses_a_placeholder_date_too():
    # mmplan.forecast / mmplan.backtest from Python check the gap as the CLI does.
    import mmplan
    from mmplan.errors import DataError

    h = _history()
    stray = pl.concat([h.head(1).with_columns(date=pl.lit(dt.date(1970, 1, 1))), h])
    for stage in (mmplan.forecast, mmplan.backtest):
        with pytest.raises(DataError, match="max_history_gap_days"):
            stage(stray, mmplan.Config())


def test_the_gap_names_the_smaller_side():
    h = _history()
    late = h.tail(1).with_columns(date=pl.lit(dt.date(2099, 1, 1)))
    [problem] = validate_history(pl.concat([h, late]), max_gap_days=365)
    assert problem.rows == (h.height,)
    assert validate_history(h, max_gap_days=1) == []  # every day has rows


def test_validate_nodes_that_is_not_a_nodes_table_is_65(tmp_path):
    args = ["validate", str(GOOD / "lanes.parquet"), "--nodes", str(GOOD / "history.parquet")]
    result = runner.invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 65, text
    assert f"{GOOD / 'history.parquet'} is not a valid nodes table" in text


def test_a_config_with_a_byte_order_mark_is_read(tmp_path):
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf[forecast]\nhorizon = 9\n")
    args = ["validate", str(GOOD / "history.parquet"), "--config", str(tmp_path / "bom.toml")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


# Output paths are checked before anything is read: a missing input would be 66, so 73
# shows that the output was refused first (before, 73 came after the whole fit or solve).
def _plan_args(demand: str, out: Path) -> list[str]:
    network = ["--nodes", str(GOOD / "nodes.parquet"), "--lanes", str(GOOD / "lanes.parquet")]
    return ["optimize", demand, *network, "--column", "volume", "-o", str(out)]


@pytest.mark.parametrize("case", ["forecast-dir", "forecast-empty", "optimize", "backtest"])
def test_output_paths_are_refused_before_any_input_is_read(tmp_path, case):
    missing = str(tmp_path / "missing.parquet")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("in the way")
    args = {
        "forecast-dir": ["forecast", missing, "-o", str(tmp_path / "folder")],
        "forecast-empty": ["forecast", missing, "-o", ""],
        "optimize": _plan_args(missing, tmp_path / "file"),
        "backtest": ["backtest", missing, "-o", str(tmp_path / "file")],
    }[case]
    result = runner.invoke(app, args)
    assert result.exit_code == 73, result.output
    assert "folder" in result.output or "in the way" in result.output


def test_sample_refuses_a_blocked_output_before_generating(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("in the way")

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sample was generated before the output was checked")

    monkeypatch.setattr(mmplan.synthetic, "sample", must_not_run)
    result = runner.invoke(app, ["sample", str(tmp_path / "file")])
    assert result.exit_code == 73, result.output
    assert "in the way" in result.output


@pytest.mark.parametrize("flag", ["--junit", "--summary"])
def test_gate_reports_inside_the_backtest_folder_are_refused_before_work(tmp_path, flag):
    # The next backtest into OUTDIR replaced the folder and deleted OUTDIR/gate.xml.
    out = tmp_path / "bt"
    args = ["backtest", str(tmp_path / "missing.parquet"), "-o", str(out), flag]
    result = runner.invoke(app, [*args, str(out / "gate.xml")])
    text = " ".join(result.output.split())
    assert result.exit_code == 73, text
    assert "inside the output folder" in text and str(tmp_path / "gate.xml") in text


def test_a_finished_run_leaves_no_lock_files(tmp_path):
    args = ["sample", str(tmp_path / "s"), "--fcs", "1", "--scs", "1", "--dss", "2"]
    assert runner.invoke(app, [*args, "--days", "28", "--quiet"]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def _json_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines()]  # raises on a plain line


def test_json_logs_make_click_usage_text_json():
    for args in (["forecast", "x.parquet"], ["no-such-command"]):
        proc = subprocess.run(
            [sys.executable, "-m", "mmplan", "--log-format", "json", *args],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2
        events = _json_lines(proc.stderr)
        assert any("Usage" in str(e.get("text")) for e in events), proc.stderr


def test_json_logs_make_numpy_warnings_json():
    code = (
        "import numpy as np\nfrom mmplan.logs import set_format\nset_format('json')\n"
        "np.log(np.zeros(1))\nimport sys\nprint('plain text', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    events = _json_lines(proc.stderr)
    assert [e["event"] for e in events] == ["warning", "stderr"], proc.stderr
    assert events[0]["category"] == "RuntimeWarning" and events[1]["text"] == "plain text"


@pytest.mark.slow
def test_gate_without_rules_applies_the_default_gate(tmp_path):
    # `--gate` with no [gate] rules once printed "nothing to check", exited 0 and wrote a
    # JUnit file with no test case. The primary model here is the seasonal naive itself:
    # its skill is 0, which the default gate (skill > 0) fails.
    (tmp_path / "c.toml").write_text(
        '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nn_jobs = 1\n[backtest]\nwindows = 2\n'
    )
    junit = tmp_path / "gate.xml"
    args = ["backtest", str(GOOD / "history.parquet"), "-o", str(tmp_path / "bt"), "--gate"]
    result = runner.invoke(app, [*args, "--junit", str(junit), "-c", str(tmp_path / "c.toml")])
    assert result.exit_code == 1, result.output
    cases = ET.parse(junit).getroot().iter("testcase")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    levels = ["total", "origin_region", "origin", "lane"]
    rules = {"beat_naive_by": "skill > 0.0%", "min_coverage": "coverage_80 >= 65.0%"}
    rules["max_coverage"] = "coverage_80 <= 95.0%"
    assert names == {(f"mmplan.gate.{r}", f"{lv}: {t}") for r, t in rules.items() for lv in levels}
