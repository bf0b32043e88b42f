"""`mmplan simulate`: Monte Carlo of a plan (and others beside it) against a forecast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mmplan.cli import inputs
from mmplan.cli.app import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    QuietOpt,
    WaitOpt,
    app,
    handled,
    stderr_console,
    summarize,
)

__all__ = ["simulate"]


@app.command()
@handled
def simulate(
    plandir: Annotated[Path, typer.Argument(help="Plan folder (mmplan optimize -o).")],
    demand: Annotated[Path, typer.Option(help="The forecast table the plan was made from.")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder to write.")],
    samples: Annotated[
        int | None, typer.Option(help="Demand samples ([simulate] samples).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; same seed, same samples.")] = None,
    compare: Annotated[
        list[Path] | None, typer.Option(help="Another plan folder to simulate beside it.")
    ] = None,
    nodes: Annotated[Path | None, typer.Option(help="Nodes (default: the plan's).")] = None,
    lanes: Annotated[Path | None, typer.Option(help="Lanes (default: the plan's).")] = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Route demand samples drawn from the forecast's distribution on the plan's trucks.

    Example: mmplan simulate out/plan --demand out/forecast.parquet -o out/sim --samples 200
    --seed 1 --compare out/plan-hi80
    """
    from mmplan.cli import outputs, summaries
    from mmplan.config import load_config
    from mmplan.io import check_output_folder, output_lock
    from mmplan.plan.simulation import simulate_plans

    cfg = load_config(config, simulate={"samples": samples, "seed": seed})
    plans = [plandir, *(compare or [])]
    check_output_folder(outdir, (demand, nodes, lanes, config, *plans))
    with output_lock(outdir, wait):
        started = time.perf_counter()
        read = inputs.read_simulate_inputs(plans, demand, nodes, lanes)
        args = (read.plans, read.forecast, read.nodes, read.lanes, cfg.optimize, cfg.simulate)
        result = simulate_plans(*args)
        record = outputs.run_record(
            "simulate",
            cfg,
            time.perf_counter() - started,
            plan=plandir / "trucks.parquet",
            demand=demand,
            nodes=read.nodes_path,
            lanes=read.lanes_path,
        )
        outputs.write_simulation(outdir, result, record)
    summary = summaries.simulation_summary(result, outdir)
    summarize("simulate", summary, json_out)
    summaries.print_simulation(stderr_console(quiet), summary)
