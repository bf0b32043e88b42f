"""`mmplan validate`: check any mmplan table against its contract."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mmplan.cli.app import ConfigOpt, DebugOpt, JsonOpt, QuietOpt, app, handled, stderr_console
from mmplan.errors import EXIT_DATA
from mmplan.logs import emit

if TYPE_CHECKING:
    import polars as pl

__all__ = ["validate"]


@app.command()
@handled
def validate(
    file: Annotated[Path, typer.Argument(help="Any mmplan table (Parquet).")],
    kind: Annotated[
        str | None,
        typer.Option(
            help="history, forecast, nodes, lanes, demand, champions, calibration, or an "
            "output: trucks, flows, plan_nodes, unserved, metrics, points; guessed when omitted."
        ),
    ] = None,
    nodes: Annotated[
        Path | None, typer.Option(help="Nodes table, to check that lanes name known facilities.")
    ] = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check a table against its contract and report every problem found (exit 65 if any).

    With --config (itself checked: a broken one is exit 78), a demand table is checked for
    the column [optimize].column names.

    Example: mmplan validate data/sample/lanes.parquet --nodes data/sample/nodes.parquet
    """
    import json

    from mmplan.cli import render
    from mmplan.cli.inputs import check_kind
    from mmplan.config import load_config
    from mmplan.io import read_parquet, read_provenance, read_table
    from mmplan.tables import table_kind
    from mmplan.tables import validate as validate_table

    check_kind(kind)
    cfg = load_config(config)
    df = read_parquet(file)
    record = read_provenance(file)
    found = table_kind(df, kind, (record or {}).get("command"), file)
    # A --nodes file that is not a nodes table would skip the facility check: refuse it.
    node_table = read_table(nodes, "nodes") if nodes is not None else None
    column = _planned_column(df, cfg.optimize.column if config is not None else "volume")
    gap = cfg.forecast.max_history_gap_days
    problems = validate_table(df, found, node_table, column, max_gap_days=gap)
    summary = render.validation_summary(file, found, df.height, problems)
    emit("summary", command="validate", **summary)
    if json_out:
        print(json.dumps(summary | {"provenance": record}, default=str))
    render.print_validation(stderr_console(quiet), summary, record)
    if problems:
        raise typer.Exit(EXIT_DATA)


def _planned_column(df: pl.DataFrame, column: str) -> str:
    """The demand column optimize would plan for `column`: as `plan.demand.demand_rows`
    picks it, a plain table (not a forecast) plans `volume` when "forecast" is asked and
    absent."""
    import polars as pl

    is_forecast = {"unique_id", "level"} <= set(df.columns) and df.schema["level"] == pl.String
    if not is_forecast and column == "forecast" and "forecast" not in df.columns:
        return "volume"
    return column
