"""`mmplan report`: one self-contained HTML page from a history, forecast, backtest, plan,
scenario comparison, simulation, promise table and monitoring run."""

from __future__ import annotations

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
    summarize,
)

__all__ = ["report"]


@app.command()
@handled
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")],
    history: Annotated[Path | None, typer.Option(help="History table (Parquet).")] = None,
    forecast: Annotated[Path | None, typer.Option(help="Forecast table (Parquet).")] = None,
    backtest: Annotated[
        Path | None, typer.Option(help="Backtest folder (what `mmplan backtest` writes).")
    ] = None,
    plan: Annotated[
        Path | None, typer.Option(help="Plan folder (what `mmplan optimize` writes).")
    ] = None,
    scenarios: Annotated[
        Path | None,
        typer.Option(help="Scenario folder (what `mmplan optimize --scenarios FILE.toml` writes)."),
    ] = None,
    simulation: Annotated[
        Path | None, typer.Option(help="Simulation folder (what `mmplan simulate` writes).")
    ] = None,
    promise: Annotated[
        Path | None, typer.Option(help="Promise table (what `mmplan promise` writes).")
    ] = None,
    monitor: Annotated[
        Path | None, typer.Option(help="Monitoring folder (what `mmplan monitor` writes).")
    ] = None,
    series: Annotated[
        list[str] | None,
        typer.Option(
            metavar="LANE_ID",
            help="Also draw this forecast series: a lane ORIGIN/DESTINATION (or ORIGIN->"
            "DESTINATION) or a series id such as origin:FC01. Repeat for more.",
        ),
    ] = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write one HTML page a planner can open offline: fan charts, backtest accuracy, the
    plan's binding capacity and cost, scenarios side by side, the plan's Monte Carlo, its
    delivery promises, monitoring alerts and drift, and where every input came from.

    Example: mmplan report -o out/report.html --history data/sample/history.parquet
    --forecast out/forecast.parquet --backtest out/backtest --plan out/plan
    --scenarios out/scenarios --simulation out/sim --monitor out/monitor
    """
    from mmplan.cli import inputs, render
    from mmplan.config import load_config
    from mmplan.io import check_output_file, output_lock, write_text
    from mmplan.report import build_report

    given = {"history": history, "forecast": forecast, "backtest": backtest, "plan": plan}
    given |= {"scenarios": scenarios, "simulation": simulation, "promise": promise}
    given["monitor"] = monitor
    paths = {kind: path for kind, path in given.items() if path is not None}
    inputs.check_report_request(paths, series)
    cfg = load_config(config)
    check_output_file(output, (*paths.values(), config))
    with output_lock(output, wait):
        started = time.perf_counter()
        page = build_report(paths, cfg, series or [])
        write_text(page.html, output)
    summary = render.report_summary(output, page, time.perf_counter() - started)
    render.print_report(stderr_console(quiet), summary)
    summarize("report", summary, json_out)
