"""The adversarial pass (tests/data/adversarial.md): flags at their bounds, hostile file
names, outputs aimed at inputs and signals at instrumented points that mmplan already
handles. Cases that are files live in the bad-input corpus (tests/data/bad/); the cases
mmplan gets wrong today are in tests/test_adversarial_defects.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from tests.test_robustness import signal_stopped_run

GOOD = Path(__file__).parent / "data" / "good"
FAST = '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nn_jobs = 1\n'
STOP_AT = "MMPLAN_STOP_AT"  # mmplan.logs.checkpoint's test hook
HANG_GUARD = 300.0  # seconds; only so that a hung run fails the test instead of the suite
TINY = ["--fcs", "1", "--scs", "1", "--dss", "2", "--days", "28"]
runner = CliRunner()


def _run(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _optimize(tmp: Path, **replace: Path) -> list[str]:
    inputs = {r: GOOD / f"{r}.parquet" for r in ("demand", "nodes", "lanes")} | replace
    return [
        "optimize",
        str(inputs["demand"]),
        "--nodes",
        str(inputs["nodes"]),
        "--lanes",
        str(inputs["lanes"]),
        "-o",
        str(tmp / "plan"),
    ]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["sample", "OUT", "--seed", "-1", *TINY], 2, "--seed -1 is not allowed"),
        (["sample", "OUT", "--start", "2024-02-30", *TINY], 2, "is not a date"),
        (["sample", "OUT", "--days", "27"], 2, "greater than or equal to 28"),
        (["validate", str(GOOD / "lanes.parquet"), "--kind", "bogus"], 2, "not a table kind"),
        (
            ["forecast", str(GOOD / "history.parquet"), "-o", "OUT", "--horizon", "0"],
            2,
            "equal to 1",
        ),
        (
            ["forecast", str(GOOD / "history.parquet"), "-o", "OUT", "--horizon", "100000"],
            2,
            "1096",
        ),
    ],
    ids=["seed-negative", "start-not-a-date", "days-27", "kind-bogus", "horizon-0", "horizon-1e5"],
)
def test_flags_at_their_bounds_are_usage_errors(tmp_path, args, code, words):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    exit_code, text = _run(args)
    assert exit_code == code, text
    assert words in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scenarios", ["", ",", "volume,volume"])
def test_empty_or_repeated_scenarios_are_usage_errors(tmp_path, scenarios):
    exit_code, text = _run([*_optimize(tmp_path), "--scenarios", scenarios])
    assert exit_code == 2, text
    assert "name distinct columns" in text
    assert not (tmp_path / "plan").exists()


def test_a_seed_beyond_64_bits_still_gives_a_sample(tmp_path):
    exit_code, text = _run(["sample", str(tmp_path / "s"), "--seed", str(2**64), *TINY])
    assert exit_code == 0, text
    assert (tmp_path / "s" / "history.parquet").is_file()


def test_more_backtest_windows_than_the_history_holds_is_refused_before_fitting(tmp_path):
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    args = ["backtest", str(GOOD / "history.parquet"), "-o", str(tmp_path / "bt")]
    exit_code, text = _run([*args, "--windows", "1000", "--config", str(cfg)])
    assert exit_code == 78, text
    assert "windows = 1000" in text and "days of history" in text
    assert not (tmp_path / "bt").exists()


@pytest.mark.parametrize("link", [False, True], ids=["same-path", "symlink-to-input"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path, link):
    history = tmp_path / "history.parquet"
    shutil.copy(GOOD / "history.parquet", history)
    before = history.read_bytes()
    out = history
    if link:
        out = tmp_path / "link.parquet"
        out.symlink_to(history.name)
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    exit_code, text = _run(["forecast", str(history), "-o", str(out), "--config", str(cfg)])
    assert exit_code == 73, text
    assert "it is an input of this run" in text
    assert history.read_bytes() == before


@pytest.mark.parametrize(
    "name", ["my history.parquet", "历史 Zürich.parquet", "new\nline.parquet", "-h.parquet"]
)
def test_hostile_but_legal_file_names_are_read(tmp_path, name, monkeypatch):
    shutil.copy(GOOD / "history.parquet", tmp_path / name)
    monkeypatch.chdir(tmp_path)
    exit_code, text = _run(["validate", "--", name])  # "--": a name may start with "-"
    assert exit_code == 0, text
    assert "valid history table" in text


def test_rich_markup_in_a_file_name_is_printed_as_written(tmp_path):
    missing = tmp_path / "[bold red]history[/bold red].parquet"
    exit_code, text = _run(["validate", str(missing)])
    assert exit_code == 66, text
    assert "[bold red]history[/bold red].parquet" in text


@pytest.mark.parametrize("kind", ["fifo", "dev-null", "folder"])
def test_inputs_that_are_not_files_are_unreadable(tmp_path, kind):
    path = {"fifo": tmp_path / "h.parquet", "dev-null": Path("/dev/null"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # reading it would block forever
    exit_code, text = _run(["validate", str(path)])
    assert exit_code == 66, text


def test_lanes_allowed_no_trucks_leave_every_package_unserved(tmp_path):
    lanes = pl.read_parquet(GOOD / "lanes.parquet").with_columns(
        max_trucks=pl.lit(0, dtype=pl.Int64)
    )
    lanes.write_parquet(tmp_path / "lanes.parquet")
    exit_code, text = _run(_optimize(tmp_path, lanes=tmp_path / "lanes.parquet"))
    assert exit_code == 0, text
    trucks = pl.read_parquet(tmp_path / "plan" / "trucks.parquet")
    unserved = pl.read_parquet(tmp_path / "plan" / "unserved.parquet")
    demand = pl.read_parquet(GOOD / "demand.parquet")
    assert trucks["trucks"].sum() == 0
    assert unserved["volume"].sum() == pytest.approx(demand["volume"].sum())


def test_an_infinite_time_limit_plans_as_usual(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optimize]\ntime_limit = inf\n")
    exit_code, text = _run([*_optimize(tmp_path), "--config", str(cfg)])
    assert exit_code == 0, text
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert summary["status"] == "OPTIMAL"


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def signal_sample_at(outdir: Path, where: str, sig: signal.Signals) -> subprocess.CompletedProcess:
    """Run `mmplan sample` into `outdir`, stop it at checkpoint `where`, send `sig`."""
    args = [sys.executable, "-m", "mmplan", "sample", str(outdir), "--seed", "2", *TINY]
    proc = subprocess.Popen(
        args, stderr=subprocess.PIPE, text=True, env=os.environ | {STOP_AT: where}
    )
    guard = time.monotonic() + HANG_GUARD
    try:
        while _state(proc.pid) not in ("T", "t"):
            if proc.poll() is not None:
                pytest.fail(f"the run ended without reaching checkpoint {where}")
            assert time.monotonic() < guard, f"the run never reached {where}"
            time.sleep(0.01)
        signal_stopped_run(proc.pid, sig)
        _, err = proc.communicate(timeout=HANG_GUARD)
    finally:
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, "", err)


def earlier_sample(outdir: Path) -> dict[str, bytes]:
    exit_code, text = _run(["sample", str(outdir), "--seed", "1", *TINY])
    assert exit_code == 0, text
    return {p.name: p.read_bytes() for p in outdir.iterdir()}


@pytest.mark.slow
def test_ctrl_c_while_sample_writes_its_files_keeps_the_earlier_sample(tmp_path):
    outdir = tmp_path / "s"
    before = earlier_sample(outdir)
    done = signal_sample_at(outdir, "write_parquet.renaming:2", signal.SIGINT)
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr
    assert {p.name: p.read_bytes() for p in outdir.iterdir()} == before
