"""Cron-grade behaviour: killed runs never corrupt an output, and runs are deterministic."""

from __future__ import annotations

import multiprocessing as mp
import random
import signal
import time
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
TRIALS = 26  # per command; 52 in all


def _forecast_args(out: Path, cfg: Path) -> list[str]:
    return [
        "forecast",
        str(GOOD / "history.parquet"),
        "-o",
        str(out),
        "--config",
        str(cfg),
        "--quiet",
    ]


def _optimize_args(out: Path, cfg: Path) -> list[str]:
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
    ]


def _run_cli(args: list[str]) -> None:
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


def _snapshot(out: Path) -> dict[str, bytes]:
    files = [out] if out.is_file() else sorted(p for p in out.iterdir())
    return {p.name: p.read_bytes() for p in files}


def _assert_old_or_complete(out: Path, old: dict[str, bytes]) -> None:
    """The output is the old one, byte for byte, or a complete new one pyarrow reads."""
    assert out.exists(), "a killed run removed the previous output"
    now = _snapshot(out)
    if now == old:
        return
    assert set(now) == set(old)
    for path in [out] if out.is_file() else out.glob("*.parquet"):
        pq.read_table(path)  # raises on a partial file


def _kill_at_random_moments(make_args, tmp_path: Path, rng: random.Random) -> int:
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)
    out = tmp_path / "out"
    warm = CTX.Process(target=time.sleep, args=(0,))  # start the forkserver: not part of a run
    warm.start()
    warm.join()
    started = time.monotonic()
    first = CTX.Process(target=_run_cli, args=(make_args(out, cfg),))
    first.start()
    first.join()
    assert first.exitcode == 0  # a good output from an earlier run
    full = time.monotonic() - started
    old = _snapshot(out)
    replaced = killed = 0
    deadline = time.monotonic() + 240  # bounded in time whatever the machine's speed
    for _ in range(TRIALS):
        if time.monotonic() > deadline:
            break
        proc = CTX.Process(target=_run_cli, args=(make_args(out, cfg),))
        proc.start()
        proc.join(rng.uniform(0.0, 1.2) * full)
        proc.kill()  # SIGKILL: no cleanup handlers run
        proc.join()
        killed += proc.exitcode == -signal.SIGKILL
        _assert_old_or_complete(out, old)
        if _snapshot(out) != old:
            replaced += 1
            old = _snapshot(out)
    # A killed run may leave its temporary file behind (nothing runs after SIGKILL), never a
    # damaged target; the next run is unaffected by it.
    strays = [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert all(name.startswith(".out.") for name in strays)
    # Both outcomes happened: runs killed midway, and runs that finished and replaced it.
    assert killed >= 5 and replaced >= 1, (killed, replaced)
    return replaced


def test_sigkill_during_forecast_never_corrupts_the_output(tmp_path):
    _kill_at_random_moments(_forecast_args, tmp_path, random.Random(1))


def test_sigkill_during_optimize_never_corrupts_the_plan(tmp_path):
    _kill_at_random_moments(_optimize_args, tmp_path, random.Random(2))


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
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # imports, reading and building done; the dates are being solved
    started = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert time.perf_counter() - started < 5  # not the minutes the solves had left
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert [p.name for p in plan.iterdir()] == ["manifest.json"]


def test_an_interrupted_optimize_leaves_nothing_that_stops_the_next_one():
    # In a notebook, a Ctrl-C'd optimize() used to leave a global stop flag set: the next
    # single-model solve raised at once, and the abandoned dates resumed later.
    import _thread
    import threading

    sample = Path(__file__).parents[1] / "data" / "sample"
    history = pl.read_parquet(sample / "history.parquet")
    nodes, lanes = (pl.read_parquet(sample / f"{t}.parquet") for t in ("nodes", "lanes"))
    demand = history.filter(pl.col("date") > history["date"].max() - pl.duration(days=4))
    slow = OptimizeConfig(time_limit=60, relative_gap=0.0, workers=2)
    timer = threading.Timer(2.0, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        optimize(demand, nodes, lanes, slow, "volume")
    assert time.perf_counter() - started < 10
    one_day = demand.filter(pl.col("date") == demand["date"].max())
    plan = optimize(one_day, nodes, lanes, OptimizeConfig(time_limit=10), "volume")
    assert plan.summary["status"] in ("OPTIMAL", "FEASIBLE")
