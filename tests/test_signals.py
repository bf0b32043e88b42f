"""Ctrl-C (SIGINT) and SIGTERM during forecast, backtest and optimize: exit 130 and 143,
nothing written, the previous output intact, and no lock, holder or temporary file left
behind; after the output's rename, the same exit codes and a message saying it was written.

Each run stops itself at a checkpoint (mmplan.logs.checkpoint), is signalled there and
continued, so the signal lands at the same point however fast the machine is.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.test_robustness import (
    CTX,
    EARLIER_FORECAST,
    GOOD,
    HANG_GUARD,
    OTHER_FORECAST,
    OTHER_PLAN,
    _assert_complete_forecast,
    _assert_complete_plan,
    _forecast_args,
    _optimize_args,
    _run_cli,
    _snapshot,
    _wait_until_stopped,
    signal_stopped_run,
)

BACKTEST = EARLIER_FORECAST + "[backtest]\nwindows = 2\n"
OTHER_BACKTEST = OTHER_FORECAST + "[backtest]\nwindows = 2\n"
SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
FORECAST_POINTS = ["forecast.fitting", "forecast.reconciling", "write_parquet.renaming"]
BACKTEST_POINTS = [
    "forecast.fitting",
    "write_parquet.renaming",
    "write_text.renaming",  # metrics.json
    "output_folder.swapping",
    "output_folder.old-moved",  # the earlier output is put back
]


OPTIMIZE_POINTS = [
    "optimize.date-started",  # a solving thread, as it begins a date
    "optimize.date-solved",  # one date solved, the other in flight or waiting
    "write_parquet.renaming",  # the first table, inside the new folder
    "output_folder.swapping",  # just before the plan folder's rename
]
# The earlier output and the signalled run's config (its manifest tells the two apart).
CONFIGS = {
    "forecast": (EARLIER_FORECAST, OTHER_FORECAST),
    "backtest": (BACKTEST, OTHER_BACKTEST),
    "optimize": (EARLIER_FORECAST, OTHER_PLAN),
}


def _backtest_args(out: Path, cfg: Path) -> list[str]:
    history = str(GOOD / "history.parquet")
    return ["backtest", history, "-o", str(out), "--config", str(cfg), "--quiet"]


ARGS = {"forecast": _forecast_args, "backtest": _backtest_args, "optimize": _optimize_args}


def _signal_at_checkpoints(command: str, points: list[str], tmp_path: Path) -> None:
    make_args = ARGS[command]
    earlier, other = tmp_path / "earlier.toml", tmp_path / "other.toml"
    earlier.write_text(CONFIGS[command][0])
    other.write_text(CONFIGS[command][1])
    out = tmp_path / "out"
    first = CTX.Process(target=_run_cli, args=(make_args(out, earlier),))
    first.start()
    first.join()
    assert first.exitcode == 0
    old = _snapshot(out)
    # One signal per checkpoint, taking turns (both at each doubled the suite's slowest
    # tests): SIGINT and SIGTERM share one cleanup path, and each command sees both.
    start = sorted(ARGS).index(command)
    for i, where in enumerate(points):
        sig, code = SIGNALS[(start + i) % len(SIGNALS)]
        proc = CTX.Process(target=_run_cli, args=(make_args(out, other), where))
        proc.start()
        assert proc.pid is not None
        try:
            _wait_until_stopped(proc.pid, proc.is_alive, where)
            signal_stopped_run(proc.pid, sig)  # delivered once the run goes on
            proc.join(HANG_GUARD)
        finally:
            if proc.is_alive():
                proc.kill()  # a hung run fails the test, not the suite
                proc.join()
        assert proc.exitcode == code, (where, sig)
        assert _snapshot(out) == old, f"{sig.name} at {where}: the earlier output changed"
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert left == [], f"{sig.name} at {where} left {left}"


@pytest.mark.slow
def test_signals_during_forecast_exit_130_and_143_and_leave_nothing(tmp_path):
    _signal_at_checkpoints("forecast", FORECAST_POINTS, tmp_path)


@pytest.mark.slow
def test_signals_during_backtest_exit_130_and_143_and_leave_nothing(tmp_path):
    _signal_at_checkpoints("backtest", BACKTEST_POINTS, tmp_path)


@pytest.mark.slow
def test_signals_during_optimize_exit_130_and_143_and_leave_nothing(tmp_path):
    _signal_at_checkpoints("optimize", OPTIMIZE_POINTS, tmp_path)


def _run_cli_logged(args: list[str], stop_at: str, stderr: str) -> None:
    """`_run_cli` with the run's stderr (its messages) going to file `stderr`."""
    fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    _run_cli(args, stop_at)


@pytest.mark.parametrize(
    "command, where",
    [
        ("forecast", "write_parquet.renamed"),
        ("optimize", "output_folder.swapped"),
        # The lock's release, the last thing a run does: a signal there skipped it and
        # left the lock files behind.
        ("forecast", "output_lock.releasing"),
        ("optimize", "output_lock.releasing"),
    ],
)
def test_a_signal_after_the_rename_says_the_output_was_written(tmp_path, command, where):
    # The message claimed "no output was written" while the new output stood complete.
    complete = {"forecast": _assert_complete_forecast, "optimize": _assert_complete_plan}
    cfg = tmp_path / "other.toml"
    cfg.write_text(CONFIGS[command][1])
    for sig, code in SIGNALS:
        out, err = tmp_path / f"out-{sig.name}", tmp_path / f"stderr-{sig.name}.txt"
        proc = CTX.Process(target=_run_cli_logged, args=(ARGS[command](out, cfg), where, str(err)))
        proc.start()
        assert proc.pid is not None
        try:
            _wait_until_stopped(proc.pid, proc.is_alive, where)
            signal_stopped_run(proc.pid, sig)
            proc.join(HANG_GUARD)
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join()
        message = " ".join(err.read_text().split())
        assert proc.exitcode == code, (sig, message)
        assert "no output was written" not in message
        assert f"{out} was written completely" in message, message
        complete[command](out)
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert left == [], f"{sig.name} at {where} left {left}"
