"""The Dask engine gives the local run's results, and its failures have their exit codes.

One `distributed.LocalCluster` (2 worker processes, 1 thread each) serves the whole module:
forecast, backtest and optimize run on it and on this machine, and the frames must be
equal exactly, not approximately (every series and every date is solved independently).
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import START, fast_config, make_history
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import Config, EngineConfig, OptimizeConfig, load_config
from mmplan.engine import DaskEngine, LocalEngine, open_engine
from mmplan.errors import EXIT_CONFIG, EXIT_LOCKED, EXIT_USAGE, ConfigError, UsageError
from mmplan.evaluate import backtest
from mmplan.forecasting import forecast
from mmplan.plan import optimize

GOOD = Path(__file__).parent / "data" / "good"
runner = CliRunner()


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def dask(scheduler):
    # Three series per task, so every model's series are split over several tasks.
    with open_engine(EngineConfig(kind="dask", scheduler=scheduler, series_per_task=3)) as eng:
        yield eng


@pytest.mark.slow
def test_dask_engine_knows_its_workers_and_keeps_order(dask):
    assert isinstance(dask, DaskEngine) and dask.slots == 2
    assert dask.chunk_size(100) == 3 and dask.chunk_size(4) == 2 and dask.chunk_size(1) == 1

    def slow_identity(x):  # the later items finish first
        time.sleep(x)
        return x

    items = [0.4, 0.3, 0.0, 0.2, 0.0, 0.1]
    seen = []
    assert dask.map(slow_identity, items, seen.append) == items
    assert sorted(seen) == list(range(len(items)))


@pytest.mark.slow
def test_a_task_error_reaches_the_client_as_itself(dask):
    from mmplan.errors import DataError

    def fail(x):
        raise DataError(f"bad item {x}")

    with pytest.raises(DataError, match="bad item"):
        dask.map(fail, [1, 2, 3])


@pytest.mark.slow
def test_forecast_on_dask_equals_local(dask):
    # Regular series with event regressors (MSTL's ARIMA trend takes X_df), a sparse lane
    # with conformal intervals, a short lane, a closed one, and MinTrace(wls_var), which
    # needs the in-sample fitted values: every path of the base forecasts.
    history = make_history(n_lanes=12, days=150)
    events = {"promo": [START + dt.timedelta(days=k) for k in range(10, 170, 21)]}
    cfg = fast_config(model="MSTL", events=events, reconciliation="MinTrace(wls_var)")
    local = forecast(history, cfg)
    assert {"MSTL", "CrostonOptimized/sparse", "SeasonalNaive/short", "Zero/closed"} <= set(
        local["model"]
    )
    ticks = []
    remote = forecast(history, cfg, engine=dask, progress=lambda *a: ticks.append(a))
    assert_frame_equal(local, remote, check_exact=True)
    # Progress moves chunk by chunk, up to every open series.
    fitting = [done for done, total, label in ticks if label.startswith("fitting")]
    assert fitting == sorted(fitting) and fitting[-1] == ticks[-1][1]
    assert len(fitting) > local["model"].n_unique()


@pytest.mark.slow
def test_backtest_on_dask_equals_local(dask):
    history = make_history(n_lanes=8, days=120)
    cfg = Config(forecast=fast_config(), backtest={"windows": 2, "step": 7})
    local = backtest(history, cfg)
    remote = backtest(history, cfg, engine=dask)
    assert_frame_equal(local.points, remote.points, check_exact=True)
    assert_frame_equal(local.metrics, remote.metrics, check_exact=True)


def four_days_of_demand() -> pl.DataFrame:
    good = pl.read_parquet(GOOD / "demand.parquet").filter(pl.col("date") == pl.col("date").min())
    return pl.concat(
        good.with_columns(pl.col("date") + dt.timedelta(days=k), pl.col("volume") * (1 + 0.25 * k))
        for k in range(4)
    )


@pytest.mark.slow
def test_optimize_on_dask_equals_local(dask):
    nodes, lanes = pl.read_parquet(GOOD / "nodes.parquet"), pl.read_parquet(GOOD / "lanes.parquet")
    demand = four_days_of_demand()
    cfg = OptimizeConfig(time_limit=60, relative_gap=1e-9, workers=2)
    local = optimize(demand, nodes, lanes, cfg, column="volume")
    remote = optimize(demand, nodes, lanes, cfg, column="volume", engine=dask)
    assert local.summary["status"] == "OPTIMAL" == remote.summary["status"]
    for table in ("trucks", "flows", "nodes", "unserved"):
        assert_frame_equal(getattr(local, table), getattr(remote, table), check_exact=True)
    assert remote.summary["objective"] == local.summary["objective"]
    assert remote.trucks["date"].n_unique() == 4


@pytest.mark.slow
def test_forecast_cli_on_dask_writes_the_local_table(scheduler, tmp_path, history_file, fast_toml):
    args = ["forecast", str(history_file), "--config", str(fast_toml), "-q"]
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "a.parquet")]).exit_code == 0
    result = runner.invoke(
        app,
        [*args, "-o", str(tmp_path / "b.parquet"), "--engine", "dask", "--scheduler", scheduler],
    )
    assert result.exit_code == 0, result.output
    assert_frame_equal(
        pl.read_parquet(tmp_path / "a.parquet"), pl.read_parquet(tmp_path / "b.parquet")
    )


# --- failures and their exit codes ---------------------------------------------------------


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["forecast", "backtest", "optimize"])
def test_unreachable_scheduler_is_exit_75(command, tmp_path, history_file):
    config = tmp_path / "quick.toml"
    config.write_text("[engine]\nconnect_timeout = 0.5\n")
    address = f"tcp://127.0.0.1:{unused_port()}"
    if command == "optimize":
        target = [str(GOOD / "demand.parquet"), "--nodes", str(GOOD / "nodes.parquet")]
        target += ["--lanes", str(GOOD / "lanes.parquet"), "--column", "volume"]
    else:
        target = [str(history_file)]
    result = runner.invoke(
        app,
        [command, *target, "-o", str(tmp_path / "out"), "--config", str(config)]
        + ["--engine", "dask", "--scheduler", address],
    )
    assert result.exit_code == EXIT_LOCKED, result.output
    assert address in result.output and "try again later" in result.output
    # It gave up after the configured connect_timeout, not the 10 s default.
    assert "after 0.5 s" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_dask_without_an_address_blames_the_flag_or_the_file(tmp_path, history_file):
    out = str(tmp_path / "fc.parquet")
    result = runner.invoke(app, ["forecast", str(history_file), "-o", out, "--engine", "dask"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "--engine" in result.output and "--scheduler" in result.output

    config = tmp_path / "dask.toml"
    config.write_text('[engine]\nkind = "dask"\n')
    result = runner.invoke(app, ["forecast", str(history_file), "-o", out, "-c", str(config)])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert str(config) in result.output and "engine.scheduler" in result.output


def test_engine_keys_are_checked(tmp_path):
    with pytest.raises(UsageError, match="--scheduler 'no address'"):
        load_config(engine={"scheduler": "no address"})
    config = tmp_path / "c.toml"
    config.write_text('[engine]\nkind = "dask"\nscheduler = "h:8786"\nseries_per_task = 0\n')
    with pytest.raises(ConfigError, match="engine.series_per_task"):
        load_config(config)
    assert EngineConfig(kind="dask", scheduler="tcp://[::1]:8786").scheduler


def test_scheduler_flag_alone_means_dask_and_contradicts_local(tmp_path, history_file):
    out = str(tmp_path / "fc.parquet")
    result = runner.invoke(
        app,
        ["forecast", str(history_file), "-o", out, "--engine", "local", "--scheduler", "h:8786"],
    )
    assert result.exit_code == EXIT_USAGE and "--engine dask" in result.output
    config = tmp_path / "quick.toml"
    config.write_text("[engine]\nconnect_timeout = 0.5\n")
    address = f"127.0.0.1:{unused_port()}"
    result = runner.invoke(
        app, ["forecast", str(history_file), "-o", out, "-c", str(config), "--scheduler", address]
    )
    assert result.exit_code == EXIT_LOCKED, result.output  # it tried the cluster


def test_local_engine_is_the_default():
    with open_engine() as eng:
        assert isinstance(eng, LocalEngine) and not eng.distributed
        assert eng.map(abs, [-1, 2, -3]) == [1, 2, 3]
        assert eng.chunk_size(1234) == 1234 and eng.jobs_per_task(-1) == -1


@pytest.mark.slow
def test_help_does_not_import_dask():
    code = (
        "import sys; from mmplan.cli import app; import mmplan.forecasting, mmplan.plan; "
        "print([m for m in ('dask', 'distributed') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_workers_dying_mid_run_is_exit_75(dask):
    # Last in the module: it kills the workers (their nannies restart them).
    import os

    from mmplan.errors import EngineUnavailableError

    def die(x):
        os._exit(1)

    with pytest.raises(EngineUnavailableError, match="try again later") as err:
        dask.map(die, [1])
    assert err.value.exit_code == EXIT_LOCKED
    # Let the nannies finish restarting the workers before the cluster is closed. On a busy
    # machine a restart (a fresh interpreter importing the libraries) can take a minute; the
    # timeout only keeps a cluster that never comes back from hanging the suite.
    dask.client.wait_for_workers(2, timeout=600)
