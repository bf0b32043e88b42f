"""`mmplan forecast`: forecast every lane and level of the hierarchy, reconciled."""

from __future__ import annotations

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
    summarize,
)

__all__ = ["forecast"]


@app.command()
@handled
def forecast(
    history: Annotated[Path, typer.Argument(help="History table (Parquet).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Forecast Parquet to write.")],
    horizon: Annotated[int | None, typer.Option(help="Days ahead to forecast.")] = None,
    champions: Annotated[
        Path | None,
        typer.Option(help="champions.parquet from `mmplan backtest` with select = true."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="calibration.parquet from `mmplan backtest`: scale each level's intervals "
            "by the factors the backtest measured."
        ),
    ] = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Forecast every lane and every level of the hierarchy, reconciled, with intervals.

    Example: mmplan forecast data/sample/history.parquet -o out/forecast.parquet --horizon 28
    """
    from mmplan.cli import inputs, outputs, render
    from mmplan.config import load_config
    from mmplan.forecasting import forecast as run_forecast
    from mmplan.forecasting import hierarchy_notes
    from mmplan.forecasting.temporal import grain_summary
    from mmplan.io import check_output_file, output_lock, write_parquet

    cfg = load_config(config, forecast={"horizon": horizon}, engine=engine_flags(engine, scheduler))
    check_output_file(output, (history, champions, calibration, config))
    with output_lock(output, wait):
        started = time.perf_counter()
        # Inputs first: a missing file is exit 66 without waiting for a cluster.
        read = inputs.read_forecast_inputs(history, champions, calibration, cfg)
        with engine_run(cfg.engine, stderr_console(quiet), "forecast", history, config) as run:
            result = run.call(
                run_forecast,
                read.history,
                cfg,
                champions=read.champions,
                calibration=read.calibration,
            )
        seconds = time.perf_counter() - started
        paths = {"history": history, "champions": champions, "calibration": calibration}
        write_parquet(result, output, outputs.run_record("forecast", cfg, seconds, **paths))
    notes = hierarchy_notes(cfg.forecast, read.history.columns)
    grains = grain_summary(result, cfg.forecast)
    summary = render.forecast_summary(result, output, read.calibration, notes, grains)
    summarize("forecast", summary, json_out)
    render.print_forecast(stderr_console(quiet), summary)
