"""`mmplan promise`: promised days per origin-destination pair from a plan's paths."""

from __future__ import annotations

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

__all__ = ["promise"]


@app.command()
@handled
def promise(
    plandir: Annotated[Path, typer.Argument(help="Plan folder (mmplan optimize -o).")],
    lanes: Annotated[Path, typer.Option(help="Lanes table with transit_days.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Promise table to write.")],
    nodes: Annotated[Path | None, typer.Option(help="Nodes (default: the plan's).")] = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Path days per pair and date from the plan's routes, and the promise covering a share.

    Example: mmplan promise out/plan --lanes data/sample/lanes.parquet -o out/promise.parquet
    """
    from mmplan.cli import outputs
    from mmplan.config import load_config
    from mmplan.io import check_output_file, output_lock, read_parquet, read_table
    from mmplan.plan.promise import promise as promise_stage

    cfg = load_config(config)
    check_output_file(output, (plandir / "flows.parquet", lanes, nodes, config))
    with output_lock(output, wait):
        nodes_path, _ = inputs.plan_network(plandir, nodes, lanes)
        node_table = read_table(nodes_path, "nodes")
        lane_table = read_table(lanes, "lanes", node_table)
        flows = read_parquet(plandir / "flows.parquet", what="plan flows")
        result = promise_stage(flows, node_table, lane_table, cfg.optimize, cfg.promise, str(lanes))
        record = outputs.run_record(
            "promise", cfg, 0.0, plan=plandir / "flows.parquet", lanes=lanes, nodes=nodes_path
        )
        outputs.write_table(result.table, output, record)
    summary = {"output": str(output), **result.summary}
    summarize("promise", summary, json_out)
    stderr_console(quiet).print(
        f"promise -> {output}: {summary['pairs_dates']:,} pair-dates, {summary['paths']:,} paths; "
        f"promised days covering {summary['share']:.0%} of each pair's volume, volume by days: "
        + ", ".join(f"{d} d {v:,.0f}" for d, v in summary["volume_by_promised_days"].items())
    )
