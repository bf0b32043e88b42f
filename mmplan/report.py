"""Run summaries: a small dict per command (for --json) and its Rich rendering on stderr.

Summaries are computed from the outputs, never from stage internals, so what a planner
reads is what was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["forecast_summary", "print_forecast"]


def forecast_summary(result: pl.DataFrame, output: str | Path) -> dict[str, Any]:
    """Counts per level and model, the horizon and the forecast total."""
    lanes = result.filter(pl.col("level") == "lane")
    return {
        "output": str(output),
        "series": result.get_column("unique_id").n_unique(),
        "lanes": lanes.get_column("unique_id").n_unique(),
        "dates": [str(result["date"].min()), str(result["date"].max())],
        "levels": dict(result.group_by("level").agg(pl.col("unique_id").n_unique()).iter_rows()),
        "models": dict(
            lanes.group_by("model").agg(pl.col("unique_id").n_unique()).sort("model").iter_rows()
        ),
        "total_forecast": float(result.filter(pl.col("level") == "total")["forecast"].sum()),
    }


def print_forecast(console: Any, summary: dict[str, Any]) -> None:
    """Rich summary of a forecast run."""
    from rich.table import Table

    table = Table(title=f"forecast -> {summary['output']}", show_edge=False)
    table.add_column("lane model")
    table.add_column("lanes", justify="right")
    for model, n in summary["models"].items():
        table.add_row(model, f"{n:,}")
    console.print(table)
    console.print(
        f"{summary['series']:,} series ({summary['lanes']:,} lanes), dates "
        f"{summary['dates'][0]} .. {summary['dates'][1]}, total forecast "
        f"{summary['total_forecast']:,.0f} packages"
    )
