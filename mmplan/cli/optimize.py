"""`mmplan optimize`: turn demand into a truck plan, one per scenario column."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from mmplan.config import Config

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
            help="Plan several demand columns at once, e.g. forecast,hi_80,hi_95, or the "
            "scenarios of a scenario file (a path ending .toml, e.g. configs/scenarios.toml): "
            "one plan folder per column or scenario inside the output folder, solved together."
        ),
    ] = None,
    relax: Annotated[bool, typer.Option("--relax", help="Solve the LP relaxation only.")] = False,
    grain: Annotated[
        str | None,
        typer.Option(
            help="Plan the forecast's day, week or month rows ([optimize] grain; default day). "
            "week/month: one plan per period, trucks as loads, with the fleet and capacity "
            "per period (fleet.parquet, capacity.parquet)."
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
    """Turn demand into a truck plan: trucks per lane per day, routes, binding capacity.

    Example: mmplan optimize out/forecast.parquet --nodes data/sample/nodes.parquet
    --lanes data/sample/lanes.parquet -o out/plan --column hi_80 (add --grain week for
    the weekly capacity plan of a long-range forecast)
    """
    columns = inputs.parse_scenarios(scenarios, column, quantile)
    from mmplan.cli import outputs, render_plan
    from mmplan.config import load_config
    from mmplan.io import check_output_folder, output_lock
    from mmplan.plan import optimize_scenarios

    flags = {"relax": True if relax else None, "column": column or quantile, "grain": grain}
    cfg = load_config(config, optimize=flags, engine=engine_flags(engine, scheduler))
    sfile = inputs.scenario_file(scenarios, cfg.optimize.grain)
    check_output_folder(outdir, (demand, nodes, lanes, config, sfile))
    if sfile is not None:
        return _scenario_file(
            demand, nodes, lanes, outdir, sfile, cfg, config, wait, quiet, json_out
        )
    with output_lock(outdir, wait):  # held while solving, so a second run fails fast
        started = time.perf_counter()
        picked = columns or [cfg.optimize.column]
        read = inputs.read_plan_inputs(demand, nodes, lanes, picked, cfg.optimize.grain)
        with engine_run(cfg.engine, stderr_console(quiet), "optimize", demand, config) as run:
            plans = run.call(
                optimize_scenarios, read.demand, read.nodes, read.lanes, cfg.optimize, read.planned
            )
        seconds = time.perf_counter() - started
        record = outputs.run_record(
            "optimize", cfg, seconds, demand=demand, nodes=nodes, lanes=lanes
        )
        folders = outputs.write_plans(outdir, plans, record, scenarios=bool(columns))
    _report(render_plan.plan_summaries(plans, folders), quiet, json_out, bool(columns))


def _report(summaries: dict[str, dict], quiet: bool, json_out: bool, scenarios: bool) -> None:
    """Each plan's summary to the JSON log and the console, and with --json to stdout."""
    from mmplan.cli import render_grain, render_plan

    for summary in summaries.values():
        emit("summary", command="optimize", **summary)
        render_plan.print_plan(stderr_console(quiet), summary)
        render_grain.print_grain(stderr_console(quiet), summary)
    if json_out:
        print(json.dumps(render_plan.plans_json(summaries, scenarios=scenarios), default=str))


def _scenario_file(
    demand: Path,
    nodes: Path,
    lanes: Path,
    outdir: Path,
    sfile: Path,
    cfg: Config,
    config: Path | None,
    wait: float,
    quiet: bool,
    json_out: bool,
) -> None:
    """`optimize --scenarios FILE.toml`: the base plan and one plan per scenario, compared."""
    from mmplan.cli import outputs, summaries
    from mmplan.io import output_lock
    from mmplan.plan import plan_scenarios

    with output_lock(outdir, wait):
        started = time.perf_counter()
        read = inputs.read_scenario_inputs(demand, nodes, lanes, sfile, cfg.optimize.column)
        p = read.plan
        console = stderr_console(quiet)
        with engine_run(cfg.engine, console, "optimize", demand, config, (sfile,)) as run:
            result = run.call(
                plan_scenarios,
                p.demand,
                p.nodes,
                p.lanes,
                cfg.optimize,
                read.scenarios,
                read.planned[cfg.optimize.column],
                planned=read.planned,
                source=str(sfile),
            )
        seconds = time.perf_counter() - started
        record = outputs.run_record(
            "optimize", cfg, seconds, demand=demand, nodes=nodes, lanes=lanes, scenarios=sfile
        )
        outputs.write_scenarios(outdir, result, record)
    summary = summaries.scenario_summary(result, outdir)
    emit("summary", command="optimize", **summary)
    summaries.print_scenarios(stderr_console(quiet), summary)
    if json_out:
        print(json.dumps(summary, default=str))
