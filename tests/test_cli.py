"""Every command through Typer's CliRunner, and every exit code it can give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import mmplan.forecasting
from mmplan.cli import app
from mmplan.io import output_lock, read_provenance

runner = CliRunner()
COMMANDS = [
    "sample",
    "validate",
    "forecast",
    "backtest",
    "optimize",
    "simulate",
    "promise",
    "monitor",
    "report",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: mmplan " + command in " ".join(result.output.split())


def test_root_help_lists_commands_and_is_fast():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
    # A fresh interpreter: `mmplan --help` must not import the heavy libraries.
    code = (
        "import sys; from mmplan.cli import app; "
        "heavy = [m for m in ('polars', 'statsforecast', 'ortools', 'pandas', "
        "'hierarchicalforecast') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "mmplan", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("mmplan ")


def test_unknown_option_is_usage_error(history_file):
    result = runner.invoke(app, ["forecast", str(history_file), "--bogus"])
    assert result.exit_code == 2


# --- forecast -------------------------------------------------------------------------------


def test_forecast_writes_table_with_provenance(tmp_path, history_file, fast_toml, history):
    out = tmp_path / "fc.parquet"
    result = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(out),
            "--config",
            str(fast_toml),
            "--horizon",
            "5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    fc = pl.read_parquet(out)
    assert fc["date"].n_unique() == 5
    summary = json.loads(result.stdout)
    assert summary["lanes"] == history.select("origin", "destination").unique().height
    record = read_provenance(out)
    assert record["command"] == "forecast"
    assert record["config"]["forecast"]["horizon"] == 5  # the flag overrides the file
    assert len(record["inputs"]["history"]["sha256"]) == 64
    assert {"mmplan", "polars", "statsforecast", "hierarchicalforecast"} <= set(record["versions"])


def test_cli_output_equals_library_api(tmp_path, history_file, fast_toml, history):
    from mmplan.config import load_config

    out = tmp_path / "fc.parquet"
    result = runner.invoke(
        app, ["forecast", str(history_file), "-o", str(out), "--config", str(fast_toml)]
    )
    assert result.exit_code == 0, result.output
    expected = mmplan.forecasting.forecast(history, load_config(fast_toml))
    assert pl.read_parquet(out).equals(expected)


def test_forecast_missing_input_is_66(tmp_path):
    result = runner.invoke(
        app, ["forecast", str(tmp_path / "nope.parquet"), "-o", str(tmp_path / "f.parquet")]
    )
    assert result.exit_code == 66
    assert "not found" in result.output and "Traceback" not in result.output


def test_forecast_not_parquet_is_66(tmp_path):
    bad = tmp_path / "history.parquet"
    bad.write_text("date,origin,destination,volume\n2025-01-01,A,B,3\n")
    result = runner.invoke(app, ["forecast", str(bad), "-o", str(tmp_path / "f.parquet")])
    assert result.exit_code == 66
    assert "CSV" in result.output


def test_forecast_bad_data_is_65_and_names_rows(tmp_path, history):
    bad = tmp_path / "history.parquet"
    history.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([4, 9]))
        .then(-3.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    ).write_parquet(bad)
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["forecast", str(bad), "-o", str(out)])
    assert result.exit_code == 65
    text = " ".join(result.output.split())
    assert "volume" in text and "2 rows: 4, 9" in text
    assert not out.exists()


def test_forecast_bad_config_is_78(tmp_path, history_file):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[forecast]\nhorizn = 3\n")
    result = runner.invoke(
        app,
        ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet"), "--config", str(cfg)],
    )
    assert result.exit_code == 78
    assert "horizn" in result.output and "horizon" in result.output


def test_forecast_horizon_zero_is_usage_error(tmp_path, history_file):
    result = runner.invoke(
        app, ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet"), "--horizon", "0"]
    )
    assert result.exit_code == 2


def test_forecast_output_in_missing_folder_is_73(tmp_path, history_file, fast_toml):
    out = tmp_path / "missing" / "f.parquet"
    result = runner.invoke(
        app, ["forecast", str(history_file), "-o", str(out), "--config", str(fast_toml)]
    )
    assert result.exit_code == 73
    assert "does not exist" in result.output


def test_forecast_output_in_read_only_folder_is_73(tmp_path, history_file, fast_toml):
    if os.geteuid() == 0:  # root writes anywhere it can chmod; /sys refuses even root
        target = Path("/sys/mmplan-forecast.parquet")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "f.parquet"
    result = runner.invoke(
        app, ["forecast", str(history_file), "-o", str(target), "--config", str(fast_toml)]
    )
    assert result.exit_code == 73, result.output
    assert str(target.parent) in result.output


def test_failed_run_keeps_the_previous_output(tmp_path, history_file, fast_toml, history):
    out = tmp_path / "f.parquet"
    assert (
        runner.invoke(
            app, ["forecast", str(history_file), "-o", str(out), "--config", str(fast_toml)]
        ).exit_code
        == 0
    )
    before = out.read_bytes()
    bad = tmp_path / "bad.parquet"
    history.with_columns(volume=pl.lit(float("nan"))).write_parquet(bad)
    result = runner.invoke(app, ["forecast", str(bad), "-o", str(out)])
    assert result.exit_code == 65
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_locked_output_is_75_naming_the_holder(tmp_path, history_file, fast_toml):
    out = tmp_path / "f.parquet"
    with output_lock(out):
        result = runner.invoke(
            app, ["forecast", str(history_file), "-o", str(out), "--config", str(fast_toml)]
        )
    assert result.exit_code == 75
    assert f"pid {os.getpid()}" in " ".join(result.output.split())
    assert not out.exists()


def hold_lock(out: Path) -> subprocess.Popen:
    """Another process holding the lock on `out` until its stdin closes (or it is killed);
    returns once it holds it."""
    code = (
        "import sys; from mmplan.io import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('held', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.slow
def test_wait_waits_for_the_lock(tmp_path, history_file, fast_toml):
    import logging

    out = tmp_path / "f.parquet"
    holder = hold_lock(out)
    held_at_first_try = []

    class ReleaseAfterTheFirstFailedTry(logging.Handler):
        # mmplan.io logs each try that finds the lock taken, before it sleeps and tries again.
        def emit(self, record: logging.LogRecord) -> None:
            if "not acquired" in record.getMessage() and not held_at_first_try:
                held_at_first_try.append(holder.poll() is None)
                holder.stdin.close()  # now the holder lets go

    logger = logging.getLogger("mmplan.io")
    level = logger.level
    logger.setLevel(logging.DEBUG)  # setLevel, not the attribute: it clears the level caches
    handler = ReleaseAfterTheFirstFailedTry()
    logger.addHandler(handler)
    try:
        result = runner.invoke(
            app,
            ["forecast", str(history_file), "-o", str(out), "--config", str(fast_toml)]
            + ["--wait", "60"],
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        holder.kill()
        holder.wait()
    assert held_at_first_try == [True]  # the run found the lock taken, and waited
    assert result.exit_code == 0, result.output  # then ran once the holder let go
    assert pq.read_table(out).num_rows > 0


@pytest.mark.slow
def test_killed_holder_does_not_leave_a_stale_lock(tmp_path, history_file, fast_toml):
    out = tmp_path / "f.parquet"
    holder = hold_lock(out)
    holder.kill()
    holder.wait()
    result = runner.invoke(
        app, ["forecast", str(history_file), "-o", str(out), "--config", str(fast_toml)]
    )
    assert result.exit_code == 0, result.output


def test_internal_error_is_70_with_traceback_file(tmp_path, history_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(mmplan.forecasting, "forecast", broken)
    result = runner.invoke(app, ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet")])
    assert result.exit_code == 70
    text = " ".join(result.output.split())
    assert "bug" in text and "Traceback" not in text
    crash = Path(text.split("traceback is in ")[1].split(";")[0])
    assert "RuntimeError: boom" in crash.read_text()
    debug = runner.invoke(
        app, ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet"), "--debug"]
    )
    assert debug.exit_code == 70 and "RuntimeError: boom" in debug.output


# --- validate -------------------------------------------------------------------------------


def test_validate_clean_table_is_0(history_file):
    result = runner.invoke(app, ["validate", str(history_file)])
    assert result.exit_code == 0
    assert "valid history table" in result.output


def test_validate_lists_every_problem_and_exits_65(tmp_path, history):
    bad = pl.concat([history, history.head(2)]).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("origin")).alias("origin"),
        pl.when(pl.int_range(pl.len()) == 1)
        .then(float("inf"))
        .otherwise(pl.col("volume"))
        .alias("volume"),
    )
    path = tmp_path / "bad.parquet"
    bad.write_parquet(path)
    result = runner.invoke(app, ["validate", str(path), "--kind", "history", "--json"])
    assert result.exit_code == 65
    problems = json.loads(result.stdout)["problems"]
    text = " | ".join(problems)
    assert "nulls in a key column" in text
    assert "non-finite volume" in text
    assert "duplicated (lane, date)" in text


def test_validate_lanes_against_nodes(tmp_path):
    nodes = pl.DataFrame(
        {
            "node": ["A", "B"],
            "kind": ["FC", "DS"],
            "region": ["R", "R"],
            "capacity": [None, 10.0],
            "handling_cost": [0.1, 0.1],
        }
    )
    lanes = pl.DataFrame(
        {
            "origin": ["A", "A"],
            "destination": ["B", "C"],
            "truck_capacity": [100.0, 0.0],
            "cost_per_truck": [50.0, 50.0],
        }
    )
    nodes.write_parquet(tmp_path / "nodes.parquet")
    lanes.write_parquet(tmp_path / "lanes.parquet")
    result = runner.invoke(
        app,
        ["validate", str(tmp_path / "lanes.parquet"), "--nodes", str(tmp_path / "nodes.parquet")],
    )
    assert result.exit_code == 65
    text = " ".join(result.output.split())
    assert "not in the nodes table (e.g. C)" in text
    assert "truck capacity that is not a positive number" in text


def test_validate_unknown_kind_is_usage_error(history_file):
    assert runner.invoke(app, ["validate", str(history_file), "--kind", "plan"]).exit_code == 2


def test_validate_checks_the_config_it_is_given(history_file, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[forecast]\nhorizon = -1\n")
    result = runner.invoke(app, ["validate", str(history_file), "--config", str(bad)])
    assert result.exit_code == 78 and str(bad) in result.output


def test_validate_missing_file_is_66(tmp_path):
    assert runner.invoke(app, ["validate", str(tmp_path / "x.parquet")]).exit_code == 66


def test_validate_unrecognised_table_is_65(tmp_path):
    path = tmp_path / "other.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 65 and "--kind" in result.output


def test_validate_shows_provenance_of_an_output(tmp_path, history_file, fast_toml):
    out = tmp_path / "f.parquet"
    runner.invoke(app, ["forecast", str(history_file), "-o", str(out), "--config", str(fast_toml)])
    result = runner.invoke(app, ["validate", str(out)])
    assert result.exit_code == 0
    assert "made by mmplan" in result.output and "sha256" in result.output


def test_validate_catches_incoherent_forecast(tmp_path, history, fast_toml):
    from mmplan.config import load_config

    fc = mmplan.forecasting.forecast(history, load_config(fast_toml))
    broken = fc.with_columns(
        pl.when(pl.col("level") == "total")
        .then(pl.col("forecast") + 100)
        .otherwise(pl.col("forecast"))
        .alias("forecast"),
        pl.when(pl.col("level") == "total")
        .then(pl.col("hi_95") + 100)
        .otherwise(pl.col("hi_95"))
        .alias("hi_95"),
        pl.when(pl.col("level") == "total")
        .then(pl.col("hi_80") + 100)
        .otherwise(pl.col("hi_80"))
        .alias("hi_80"),
    )
    path = tmp_path / "f.parquet"
    broken.write_parquet(path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 65
    assert "do not add up" in " ".join(result.output.split())


# --- logs -----------------------------------------------------------------------------------


def test_log_format_json_writes_one_event_per_line(tmp_path, history_file, fast_toml):
    out = tmp_path / "f.parquet"
    result = runner.invoke(
        app,
        [
            "--log-format",
            "json",
            "forecast",
            str(history_file),
            "-o",
            str(out),
            "--config",
            str(fast_toml),
        ],
    )
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["event"] for e in events] == ["start", "summary", "done"]
    assert events[1]["lanes"] == 10 and events[2]["exit_code"] == 0
    bad = runner.invoke(
        app, ["--log-format", "json", "forecast", str(tmp_path / "x.parquet"), "-o", str(out)]
    )
    errors = [json.loads(line) for line in bad.stderr.splitlines()]
    assert bad.exit_code == 66 and errors[-1]["event"] == "error"
    assert errors[-1]["exit_code"] == 66 and "not found" in errors[-1]["message"]


def test_not_a_terminal_means_plain_lines(tmp_path, history_file, fast_toml):
    result = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(tmp_path / "f.parquet"),
            "--config",
            str(fast_toml),
        ],
        env={"NO_COLOR": "1"},
    )
    assert result.exit_code == 0
    assert "\x1b[" not in result.stderr  # no colour, no progress bar escapes
    assert result.stdout == ""  # stdout carries only machine output (--json)
    quiet = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(tmp_path / "g.parquet"),
            "--config",
            str(fast_toml),
            "--quiet",
        ],
    )
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_messages_with_brackets_are_printed_verbatim(tmp_path, history_file):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[forecast]\nhierarchy = [["country"]]\n')
    result = runner.invoke(
        app,
        ["forecast", str(history_file), "-o", str(tmp_path / "f.parquet"), "--config", str(cfg)],
    )
    assert result.exit_code == 78
    assert "[forecast].hierarchy names country" in " ".join(result.output.split())
    odd = tmp_path / "[run]" / "h[1].parquet"
    result = runner.invoke(app, ["forecast", str(odd), "-o", str(tmp_path / "f.parquet")])
    assert result.exit_code == 66 and str(odd) in "".join(result.output.split("\n"))


def test_folder_outputs_carry_a_manifest(tmp_path):
    from mmplan.io import sha256_file

    out = tmp_path / "net"
    result = runner.invoke(
        app,
        [
            "sample",
            str(out),
            "--fcs",
            "1",
            "--scs",
            "2",
            "--dss",
            "4",
            "--days",
            "60",
            "--regions",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "sample" and "mmplan" in manifest["versions"]
    assert set(manifest["files"]) == {"history.parquet", "nodes.parquet", "lanes.parquet"}
    for name, digest in manifest["files"].items():
        assert sha256_file(out / name) == digest


def test_validate_demand_uses_the_configured_column(tmp_path):
    good = Path(__file__).parent / "data" / "good" / "demand.parquet"
    assert runner.invoke(app, ["validate", str(good), "--kind", "demand"]).exit_code == 0
    cfg = tmp_path / "c.toml"
    cfg.write_text('[optimize]\ncolumn = "hi_80"\n')
    result = runner.invoke(app, ["validate", str(good), "--kind", "demand", "--config", str(cfg)])
    assert result.exit_code == 65 and "column 'hi_80': is missing" in result.output
