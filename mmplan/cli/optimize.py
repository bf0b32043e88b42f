"""`mmplan optimize`: turn demand into a truck plan, one per scenario column."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from mmplan.cli import inputs
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
from mmplan.logs import emit

__all__ = ["optimize"]


@app.command()
@handled
def optimize(
    demand: Annotated[
        Path, typer.Argument(help="Forecast table, or origin/destination/date/volume.")
    ],
    nodes: Annotated[Path, typer.Option(help="Nodes table (Parquet).")],
    lanes: Annotated[Path, typer.Option(help="Lanes table (Parquet).")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Plan folder to write.")],
    column: Annotated[
        str | None, typer.Option(help="Demand column to plan for, e.g. forecast or hi_80.")
    ] = None,
    quantile: Annotated[
        str | None, typer.Option(help="Interval bound to plan for: hi_80 (same as --column).")
    ] = None,
    scenarios: Annotated[
        str | None,
        typer.Option(
            help="Plan several demand columns at once, e.g. forecast,hi_80,hi_95: one plan "
            "folder per column inside the output folder, solved together."
        ),
    ] = None,
    relax: Annotated[bool, typer.Option("--relax", help="Solve the LP relaxation only.")] = False,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Turn demand into a truck plan: trucks per lane per day, routes, binding capacity.

    Example: mmplan optimize out/forecast.parquet --nodes data/sample/nodes.parquet
    --lanes data/sample/lanes.parquet -o out/plan --column hi_80
    """
    columns = inputs.parse_scenarios(scenarios, column, quantile)
    from mmplan.cli import outputs, render
    from mmplan.config import load_config
    from mmplan.io import check_output_folder, output_lock
    from mmplan.plan import optimize_scenarios

    flags = {"relax": True if relax else None, "column": column or quantile}
    cfg = load_config(config, optimize=flags, engine=engine_flags(engine, scheduler))
    check_output_folder(outdir, (demand, nodes, lanes, config))
    with output_lock(outdir, wait):  # held while solving, so a second run fails fast
        started = time.perf_counter()
        read = inputs.read_plan_inputs(demand, nodes, lanes, columns or [cfg.optimize.column])
        with engine_run(cfg.engine, stderr_console(quiet), "optimize", demand, config) as run:
            plans = run.call(
                optimize_scenarios, read.demand, read.nodes, read.lanes, cfg.optimize, read.planned
            )
        seconds = time.perf_counter() - started
        record = outputs.run_record(
            "optimize", cfg, seconds, demand=demand, nodes=nodes, lanes=lanes
        )
        folders = outputs.write_plans(outdir, plans, record, scenarios=bool(columns))
    summaries = render.plan_summaries(plans, folders)
    for summary in summaries.values():
        emit("summary", command="optimize", **summary)
        render.print_plan(stderr_console(quiet), summary)
    if json_out:
        print(json.dumps(render.plans_json(summaries, scenarios=bool(columns)), default=str))
