"""Terminal summaries (Rich) of scenario comparisons, simulations and promises.

Each `*_summary` turns a stage's result into the JSON-able dict that `--json` prints and the
JSON log's `summary` event carries; each `print_*` shows it on the console.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from mmplan.plan import ScenarioResult

__all__ = ["scenario_summary", "print_scenarios"]


def _money(value: Any) -> str:
    return "-" if value is None else f"{value + 0.0:,.0f}"


def _delta(value: Any) -> str:
    return "-" if value is None else f"{value + 0.0:+,.0f}"


def scenario_summary(result: ScenarioResult, outdir: str | Path) -> dict[str, Any]:
    """The comparison as rows, each scenario's folder, and the fleet's marginal values."""
    marginal = {}
    for name, sp in result.plans.items():
        if sp.plan is not None and sp.plan.summary.get("fleet", {}).get("marginal_value"):
            marginal[name] = {
                b: {"saved": v["saved"], "dates": len(v["per_date"]), "method": v["method"]}
                for b, v in sp.plan.summary["fleet"]["marginal_value"].items()
            }
    return {
        "output": str(outdir),
        "comparison": result.comparison.to_dicts(),
        "folders": {name: str(Path(outdir) / name) for name in result.plans},
        "fleet_marginal_value": marginal,
    }


def print_scenarios(console: Console, summary: dict[str, Any]) -> None:
    """One row per scenario: cost by component, trucks, unserved, binding, deltas vs base."""
    from rich.table import Table

    table = Table(title=f"scenarios -> {summary['output']}", show_edge=False)
    columns = (
        "scenario",
        "status",
        "re-solved",
        "total cost",
        "Δ cost",
        "trucks",
        "peak/day",
        "unserved",
        "closed",
        "binding",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("scenario", "binding") else "right")
    for r in summary["comparison"]:
        table.add_row(
            r["scenario"],
            r["status"],
            f"{r['dates_resolved']}/{r['dates_resolved'] + r['dates_reused']}",
            _money(r["total_cost"]),
            _delta(r["delta_total_cost"]),
            _money(r["trucks"]),
            _money(r["peak_trucks"]),
            _money(r["unserved_volume"]),
            _money(r["closed_facility_volume"]),
            r["binding_facilities"] or "-",
        )
    console.print(table)
    console.print(
        "cost by component (trucks, packages, handling, added capacity, unserved penalty) "
        f"and deltas vs base: {summary['output']}/comparison.parquet"
    )
    for r in summary["comparison"]:
        if r["status"] == "FAILED":
            console.print(f"scenario {r['scenario']} could not be planned: {r['message']}")
    for name, budgets in summary["fleet_marginal_value"].items():
        for budget, v in budgets.items():
            console.print(
                f"{name}: one more truck a day on the {budget} fleet budget saves "
                f"{v['saved']:,.0f} over {v['dates']} dates ({v['method']})"
            )
