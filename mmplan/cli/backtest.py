"""`mmplan backtest`: rolling-origin backtest of the forecast pipeline, and CI gates."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from mmplan.cli.app import (
    ConfigOpt,
    DebugOpt,
    EngineOpt,
    JsonOpt,
    QuietOpt,
    SchedulerOpt,
    WaitOpt,
    app,
    engine_flags,
    engine_run,
    handled,
    stderr_console,
)
from mmplan.errors import EXIT_CHECK_FAILED
from mmplan.logs import emit

__all__ = ["backtest"]


@app.command()
@handled
def backtest(
    history: Annotated[Path, typer.Argument(help="History table (Parquet).")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for points and metrics.")],
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 when a [gate] rule fails.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Write gate rules as JUnit XML.")] = None,
    summary_md: Annotated[
        Path | None, typer.Option("--summary", help="Write a markdown summary for CI.")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="metrics.json of an earlier run, for max_regression.")
    ] = None,
    windows: Annotated[
        int | None, typer.Option(min=1, help="Rolling-origin cutoffs ([backtest].windows).")
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(min=1, help="Days scored after each cutoff.")
    ] = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Rolling-origin backtest of the forecast pipeline, scored by pooled WAPE; CI gates.

    Writes OUTDIR/points.parquet, metrics.parquet, metrics.json, calibration.parquet (interval
    factors for `mmplan forecast --calibration`) and, with [backtest] select = true,
    champions.parquet.

    Example: mmplan backtest data/sample/history.parquet -o out/backtest --gate --junit gate.xml
    """
    from mmplan.cli import inputs, outputs, render
    from mmplan.config import load_config
    from mmplan.evaluate import run_backtest
    from mmplan.io import output_lock

    flags = {"windows": windows, "horizon": horizon}
    cfg = load_config(config, backtest=flags, engine=engine_flags(engine, scheduler))
    prior = inputs.read_baseline(baseline)
    outputs.check_backtest_outputs(outdir, junit, summary_md, (history, baseline, config))
    console = stderr_console(quiet)
    with output_lock(outdir, wait):
        started = time.perf_counter()
        setup = inputs.read_backtest_inputs(history, cfg, config, prior, gate)
        with engine_run(cfg.engine, console, "backtest", history, config) as run:
            result = run.call(run_backtest, setup)
        seconds = time.perf_counter() - started
        record = outputs.run_record(
            "backtest", setup.config, seconds, history=history, baseline=baseline
        )
        outputs.write_backtest(outdir, result, record)
    summary = render.backtest_summary(result, outdir, inputs.backtest_notes(setup))
    emit("summary", command="backtest", **summary, gate_passed=result.passed)
    outputs.write_gate_reports(result, summary, seconds, junit, summary_md)
    if json_out:
        print(json.dumps(summary, default=str))
    render.print_backtest(console, summary)
    render.print_gate(console, result.gates, result.passed)
    if gate and not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)
