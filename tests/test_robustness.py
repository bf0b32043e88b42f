"""Cron-grade behaviour: killed runs never corrupt an output, and runs are deterministic."""

from __future__ import annotations

import ctypes
import json
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import OptimizeConfig
from mmplan.forecasting import forecast
from mmplan.plan import optimize
from tests.conftest import fast_config, make_history

GOOD = Path(__file__).parent / "data" / "good"
FAST = '[forecast]\nmodel = "AutoTheta"\nhorizon = 14\nn_jobs = 1\n'
STOP_AT = "MMPLAN_STOP_AT"  # mmplan.logs.checkpoint's test hook
# The kill trials' earlier output comes from a cheap forecast; the killed runs write one that
# differs from it, so that "replaced" and "intact" can be told apart: twice the horizon for a
# forecast, another config (recorded in the manifest) for a plan.
EARLIER_FORECAST = '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nn_jobs = 1\n'
OTHER_FORECAST = EARLIER_FORECAST.replace("horizon = 7", "horizon = 14")
OTHER_PLAN = "[optimize]\ntime_limit = 90.0\n"
HANG_GUARD = 300.0  # seconds; only so that a hung run fails the test instead of the suite


def _forecast_args(out: Path, cfg: Path | None) -> list[str]:
    return [
        "forecast",
        str(GOOD / "history.parquet"),
        "-o",
        str(out),
        "--config",
        str(cfg),
        "--quiet",
    ]


def _optimize_args(out: Path, cfg: Path | None) -> list[str]:
    return [
        "optimize",
        str(GOOD / "demand.parquet"),
        "--nodes",
        str(GOOD / "nodes.parquet"),
        "--lanes",
        str(GOOD / "lanes.parquet"),
        "--column",
        "volume",
        "-o",
        str(out),
        "--quiet",
    ] + (["--config", str(cfg)] if cfg is not None else [])


def _run_cli(args: list[str], stop_at: str = "") -> None:
    # The forkserver's children inherit its environment, not the test's: set the hook here.
    # mmplan.logs reads it at the first checkpoint, which comes after this.
    os.environ[STOP_AT] = stop_at
    from mmplan.cli import app

    app(args, prog_name="mmplan")


# Each run is a real process running the real CLI, forked from a server that has already
# imported the heavy libraries, so a trial costs the run and not the imports.
CTX = mp.get_context("forkserver")
CTX.set_forkserver_preload(
    [
        "mmplan.cli",
        "mmplan.forecasting",
        "mmplan.plan",
        "statsforecast.models",
        "hierarchicalforecast.core",
        "ortools.linear_solver.python.model_builder",
    ]
)


def _state(pid: int) -> str:
    """The process's state letter from /proc (T when stopped), or "" once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]  # the command name in parentheses may hold spaces


def _wait_until_stopped(pid: int, running: Callable[[], bool], where: str) -> None:
    """Return once the run has stopped itself at checkpoint `where`; fail if it ended first."""
    guard = time.monotonic() + HANG_GUARD
    while _state(pid) not in ("T", "t"):
        if not running():
            pytest.fail(f"the run ended without reaching checkpoint {where}")
        if time.monotonic() > guard:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the run neither ended nor reached checkpoint {where}")
        time.sleep(0.01)


_LIBC = ctypes.CDLL(None, use_errno=True)


def signal_stopped_run(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to a run stopped at a checkpoint, to its main thread, then continue it.

    Sent to the process, the signal goes to whichever of its threads runs first after
    SIGCONT (a polars or OpenMP worker, say), and Python raises it in the main thread only
    at its next check, some bytecodes past the checkpoint: in CI it landed after a
    cleanup the checkpoint's signal is meant to meet. Sent to the main thread (tgkill, as
    a terminal's Ctrl-C usually lands), it is raised in the checkpoint itself."""
    if _LIBC.tgkill(pid, pid, int(sig)) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill {pid} {sig.name}")
    os.kill(pid, signal.SIGCONT)


def _snapshot(out: Path) -> dict[str, bytes]:
    files = [out] if out.is_file() else sorted(p for p in out.iterdir())
    return {p.name: p.read_bytes() for p in files}


def _assert_complete_forecast(out: Path) -> None:
    """A whole forecast from the killed run's config: readable, 14 days per series."""
    from mmplan.io import read_provenance

    table = pl.from_arrow(pq.read_table(out))  # raises on a partial file
    assert table.group_by("unique_id").len()["len"].unique().to_list() == [14]
    assert read_provenance(out)["config"]["forecast"]["horizon"] == 14


def _assert_complete_plan(out: Path) -> None:
    """A whole plan from the killed run's config: every file its manifest lists, unchanged."""
    from mmplan.io import sha256_file

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["optimize"]["time_limit"] == 90.0
    assert set(_snapshot(out)) == set(manifest["files"]) | {"manifest.json"}
    for name, digest in manifest["files"].items():
        assert sha256_file(out / name) == digest, name
    for path in out.glob("*.parquet"):
        pq.read_table(path)


# (checkpoint, what a SIGKILL there leaves at the output). "intact": the earlier output, byte
# for byte; "replaced": the killed run's complete output; "moved aside": nothing at the
# output and the earlier output whole beside it, which the next run's lock puts back.
FORECAST_KILLS = [
    ("forecast.fitting", "intact"),
    ("forecast.reconciling", "intact"),
    ("write_parquet.renaming", "intact"),
    ("write_parquet.renamed", "replaced"),
]
OPTIMIZE_KILLS = [
    # Not optimize.solving: these dates solve faster than the main thread looks at them.
    ("optimize.date-solved", "intact"),
    ("write_parquet.renaming", "intact"),  # the first table, inside the new folder
    ("write_text.renaming:2", "intact"),  # the manifest (summary.json is the first)
    ("output_folder.swapping", "intact"),
    ("output_folder.old-moved", "moved aside"),
    ("output_folder.swapped", "replaced"),
]


def _kill_at_checkpoints(command: str, kills: list[tuple[str, str]], tmp_path: Path) -> None:
    make_args = {"forecast": _forecast_args, "optimize": _optimize_args}[command]
    complete = {"forecast": _assert_complete_forecast, "optimize": _assert_complete_plan}[command]
    from mmplan.io import output_lock

    earlier, other = tmp_path / "earlier.toml", tmp_path / "other.toml"
    earlier.write_text(EARLIER_FORECAST)
    other.write_text(OTHER_FORECAST if command == "forecast" else OTHER_PLAN)
    out = tmp_path / "out"
    first = CTX.Process(
        target=_run_cli, args=(make_args(out, earlier if command == "forecast" else None),)
    )
    first.start()
    first.join()
    assert first.exitcode == 0  # a good output from an earlier run
    for where, outcome in kills:
        old = _snapshot(out)
        proc = CTX.Process(target=_run_cli, args=(make_args(out, other), where))
        proc.start()
        _wait_until_stopped(proc.pid, proc.is_alive, where)
        proc.kill()  # SIGKILL, even to a stopped process: no cleanup handlers run
        proc.join()
        assert proc.exitcode == -signal.SIGKILL, where
        if outcome == "intact":
            assert _snapshot(out) == old, f"killed at {where}: the earlier output changed"
        elif outcome == "replaced":
            assert _snapshot(out) != old, where
            complete(out)
        else:
            assert not out.exists(), where
            [aside] = tmp_path.glob(".out.*.old")
            assert _snapshot(aside) == old, where
            with output_lock(out):  # what the next run does first
                assert _snapshot(out) == old, f"killed at {where}: not put back"
        # A killed run may leave its temporary file behind (nothing runs after SIGKILL),
        # never a damaged target.
        strays = [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))]
        assert all(name.startswith(".out.") for name in strays), strays
    # The next run is unaffected by the leftovers, and tidies them.
    last = CTX.Process(target=_run_cli, args=(make_args(out, other),))
    last.start()
    last.join()
    assert last.exitcode == 0
    complete(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))] == []


@pytest.mark.slow
def test_sigkill_during_forecast_never_corrupts_the_output(tmp_path):
    _kill_at_checkpoints("forecast", FORECAST_KILLS, tmp_path)


@pytest.mark.slow
def test_sigkill_during_optimize_never_corrupts_the_plan(tmp_path):
    _kill_at_checkpoints("optimize", OPTIMIZE_KILLS, tmp_path)


@pytest.mark.slow
def test_forecast_is_identical_with_one_or_two_worker_processes():
    h = make_history(n_lanes=8, days=120, seed=5)
    one = forecast(h, fast_config(model="AutoTheta", n_jobs=1))
    two = forecast(h, fast_config(model="AutoTheta", n_jobs=2))
    assert one.equals(two)


def test_optimize_is_identical_with_one_or_two_workers():
    demand = pl.read_parquet(GOOD / "demand.parquet")
    nodes, lanes = pl.read_parquet(GOOD / "nodes.parquet"), pl.read_parquet(GOOD / "lanes.parquet")
    a = optimize(demand, nodes, lanes, OptimizeConfig(workers=1), column="volume")
    b = optimize(demand, nodes, lanes, OptimizeConfig(workers=2), column="volume")
    for name in ("trucks", "flows", "nodes", "unserved"):
        assert getattr(a, name).equals(getattr(b, name)), name


def test_same_inputs_give_identical_parquet_data(tmp_path):
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    outs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for out in outs:
        assert CliRunner().invoke(app, _forecast_args(out, cfg)).exit_code == 0
    a, b = (pq.read_table(p) for p in outs)
    assert a.equals(b)  # the data; metadata differs only in timings


@pytest.mark.slow
def test_ctrl_c_stops_optimize_and_keeps_the_previous_plan(tmp_path):
    # SCIP catches SIGINT itself and merely ends the date it is solving, so Ctrl-C once
    # let the run go on for minutes and then replace the previous plan with its own.
    import subprocess
    import sys

    sample = Path(__file__).parents[1] / "data" / "sample"
    history = pl.read_parquet(sample / "history.parquet")
    last = history["date"].max()
    demand = history.filter(pl.col("date") > last - pl.duration(days=8)).select(
        "origin", "destination", "date", "volume"
    )
    demand.write_parquet(tmp_path / "demand.parquet")
    # A zero gap keeps SCIP busy on every date until the time limit.
    (tmp_path / "slow.toml").write_text("[optimize]\ntime_limit = 120.0\nrelative_gap = 0.0\n")
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "manifest.json").write_text("{}")  # an earlier run's output
    args = [sys.executable, "-m", "mmplan", "optimize", str(tmp_path / "demand.parquet")]
    args += ["--nodes", str(sample / "nodes.parquet"), "--lanes", str(sample / "lanes.parquet")]
    args += ["-o", str(plan), "--config", str(tmp_path / "slow.toml"), "--quiet"]
    # The run stops itself deep in the solves (the 20th look of the main thread, a tenth of
    # a second apart, at solves in flight: SCIP is at work), and is Ctrl-C'd there. Were
    # Ctrl-C lost in a solver, the run would go on: it would stop again once a date is solved.
    env = os.environ | {STOP_AT: "optimize.solving:20,optimize.date-solved"}
    with open(tmp_path / "stderr.txt", "w+") as err:
        proc = subprocess.Popen(args, stderr=err, text=True, env=env)
        try:
            _wait_until_stopped(proc.pid, lambda: proc.poll() is None, "optimize.solving:20")
            signal_stopped_run(proc.pid, signal.SIGINT)  # delivered as the run goes on
            guard = time.monotonic() + HANG_GUARD
            while proc.poll() is None:
                assert _state(proc.pid) not in ("T", "t"), "a date was solved after Ctrl-C"
                assert time.monotonic() < guard, "Ctrl-C did not end the run"
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()
        err.seek(0)
        message = err.read()
    assert proc.returncode == 130, message
    assert "interrupted" in message
    assert [p.name for p in plan.iterdir()] == ["manifest.json"]


@pytest.mark.slow
def test_an_interrupted_optimize_leaves_nothing_that_stops_the_next_one():
    # In a notebook, a Ctrl-C'd optimize() used to leave a global stop flag set: the next
    # single-model solve raised at once, and the abandoned dates resumed later.
    import _thread

    sample = Path(__file__).parents[1] / "data" / "sample"
    history = pl.read_parquet(sample / "history.parquet")
    nodes, lanes = (pl.read_parquet(sample / f"{t}.parquet") for t in ("nodes", "lanes"))
    demand = history.filter(pl.col("date") > history["date"].max() - pl.duration(days=4))
    # A short limit: the solve left running after Ctrl-C goes on in the background until
    # its share of the limit is spent, loading the cores under the tests that follow (the
    # Ctrl-C and signal tests after this one failed with 20 s).
    one_at_a_time = OptimizeConfig(workers=1, time_limit=4.0)
    solved: list[int] = []

    def ctrl_c_once_a_date_is_solved(done: int, total: int, label: str) -> None:
        # Called on the solving thread: the main thread is waiting for it, as at a terminal.
        solved.append(done)
        if done == 1:
            _thread.interrupt_main()

    # Python's own Ctrl-C handler, as in a notebook, whatever an earlier test left installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            optimize(
                demand,
                nodes,
                lanes,
                one_at_a_time,
                "volume",
                progress=ctrl_c_once_a_date_is_solved,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    one_day = demand.filter(pl.col("date") == demand["date"].max())
    plan = optimize(one_day, nodes, lanes, OptimizeConfig(time_limit=10), "volume")
    assert plan.summary["status"] in ("OPTIMAL", "FEASIBLE")
    # The interrupted run started no new date: at most the one in flight at Ctrl-C finished.
    assert max(solved) in (1, 2), solved


@pytest.mark.slow
@pytest.mark.parametrize("days", [8, 60])
def test_ctrl_c_during_a_solve_exits_130_without_aborting(tmp_path, days):
    # SCIP solves, which OR-Tools cannot interrupt, went on on daemon threads while the
    # interpreter finalized: "terminate called without an active exception", SIGABRT (134).
    import subprocess
    import sys

    sample = Path(__file__).parents[1] / "data" / "sample"
    history = pl.read_parquet(sample / "history.parquet")
    last = history["date"].max()
    demand = history.filter(pl.col("date") > last - pl.duration(days=days))
    demand.select("origin", "destination", "date", "volume").write_parquet(tmp_path / "d.parquet")
    (tmp_path / "slow.toml").write_text("[optimize]\ntime_limit = 600.0\nrelative_gap = 0.0\n")
    plan = tmp_path / "plan"
    args = [sys.executable, "-m", "mmplan", "optimize", str(tmp_path / "d.parquet")]
    args += ["--nodes", str(sample / "nodes.parquet"), "--lanes", str(sample / "lanes.parquet")]
    args += ["-o", str(plan), "--config", str(tmp_path / "slow.toml"), "--quiet"]
    env = os.environ | {STOP_AT: "optimize.solving:5"}
    with open(tmp_path / "stderr.txt", "w+") as err:
        proc = subprocess.Popen(args, stderr=err, text=True, env=env, cwd=tmp_path)
        try:
            _wait_until_stopped(proc.pid, lambda: proc.poll() is None, "optimize.solving:5")
            signal_stopped_run(proc.pid, signal.SIGINT)
            proc.wait(HANG_GUARD)
        finally:
            proc.kill()
            proc.wait()
        err.seek(0)
        message = err.read()
    assert proc.returncode == 130, message
    assert "terminate called" not in message
    assert "interrupted; no output was written." in message
    assert not plan.exists()
    # The lock file itself stays (mmplan.io's filelock keeps it); its holder note must not.
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != ".plan.lock")
    assert left == ["d.parquet", "slow.toml", "stderr.txt"]
