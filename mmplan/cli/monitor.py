"""`mmplan monitor`: a forecast scored against the actuals that followed it; drift, plan
overflow and `[monitor]` alerts, for cron."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from mmplan.cli.app import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    QuietOpt,
    WaitOpt,
    app,
    handled,
    stderr_console,
)
from mmplan.errors import EXIT_CHECK_FAILED
from mmplan.logs import emit

__all__ = ["monitor"]


@app.command()
@handled
def monitor(
    forecast: Annotated[Path, typer.Option(help="Forecast table (Parquet) to score.")],
    actuals: Annotated[Path, typer.Option(help="History covering the forecast's dates.")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for scores and alerts.")],
    plan: Annotated[Path | None, typer.Option(help="Plan folder made from the forecast.")] = None,
    lanes: Annotated[
        Path | None, typer.Option(help="Lanes table of the plan (truck capacity).")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="metrics.json of the backtest: the expected WAPE.")
    ] = None,
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 when an alert fires.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Write alert rules as JUnit XML.")] = None,
    summary_md: Annotated[
        Path | None, typer.Option("--summary", help="Write a markdown summary for CI.")
    ] = None,
    append: Annotated[
        Path | None, typer.Option("--append", help="Monitoring store (folder) to add scores to.")
    ] = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Score a forecast against the actuals since it was made: WAPE, bias, coverage and skill
    per level, step and series, drift, plan overflow, and [monitor] alerts.

    Writes OUTDIR/scores.parquet, alerts.parquet, summary.json (and plan_lanes.parquet,
    plan_facilities.parquet with --plan).

    Example: mmplan monitor --forecast out/forecast.parquet --actuals history.parquet
    -o out/monitor --baseline out/backtest/metrics.json --gate --append out/monitoring
    """
    from mmplan.cli import inputs, outputs, render
    from mmplan.config import load_config
    from mmplan.evaluate.monitor import monitor as run_monitor
    from mmplan.io import output_lock

    paths = {"forecast": forecast, "actuals": actuals, "plan": plan, "lanes": lanes}
    paths |= {"baseline": baseline, "store": append}
    cfg = load_config(config)
    outputs.check_monitor_outputs(outdir, junit, summary_md, append, (*paths.values(), config))
    with output_lock(outdir, wait):
        started = time.perf_counter()
        setup = inputs.read_monitor_inputs(paths, cfg, config, gate)
        result = run_monitor(setup)
        seconds = time.perf_counter() - started
        files = {k: v for k, v in paths.items() if k not in ("plan", "store")}
        files["plan_trucks"] = plan / "trucks.parquet" if plan else None
        record = outputs.run_record("monitor", setup.config, seconds, **files)
        outputs.write_monitor(outdir, result, record)
        if append is not None:
            outputs.append_store(append, result, record, wait)
    summary = render.monitor_summary(result, outdir)
    emit("summary", command="monitor", **summary, gate_passed=result.passed)
    outputs.write_gate_reports(result, summary, seconds, junit, summary_md, "monitor")
    if json_out:
        print(json.dumps(summary, default=str))
    render.print_monitor(stderr_console(quiet), summary)
    render.print_gate(stderr_console(quiet), result.gates, result.passed, "monitor")
    if gate and not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)
