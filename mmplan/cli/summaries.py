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
    from mmplan.plan.simulation import SimulationResult

__all__ = ["scenario_summary", "print_scenarios", "simulation_summary", "print_simulation"]


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
            if v["saved"] is None:  # the plan left no time for the re-solves
                console.print(f"{name}: one more truck a day on the {budget} budget: {v['method']}")
                continue
            console.print(
                f"{name}: one more truck a day on the {budget} fleet budget saves "
                f"{v['saved']:,.0f} over {v['dates']} dates ({v['method']})"
            )


def simulation_summary(result: SimulationResult, outdir: str | Path) -> dict[str, Any]:
    """summary.json and where the tables went."""
    return {"output": str(outdir), **result.summary}


def print_simulation(console: Console, summary: dict[str, Any]) -> None:
    """Per plan: P(any unserved), expected unserved and its cost, cost percentiles."""
    from rich.table import Table

    d = summary["demand"]
    console.print(
        f"simulate -> {summary['output']}: {summary['samples']} samples (seed {summary['seed']}); "
        f"total demand mean {d['sampled_mean_total']:,.0f} (forecast {d['forecast_total']:,.0f}, "
        f"sd {d['sampled_sd_total']:,.0f}); shortfall priced at {summary['shortfall_cost']:g} "
        "per package"
    )
    table = Table(show_edge=False)
    for col in ("plan", "P(unserved)", "E unserved", "E shortfall", "P50", "P90", "P99", "service"):
        table.add_column(col, justify="left" if col == "plan" else "right")
    for name, p in summary["plans"].items():
        table.add_row(
            name,
            f"{p['p_any_unserved']:.0%}",
            _money(p["expected_unserved_volume"]),
            _money(p["expected_shortfall_cost"]),
            _money(p["cost_p50"]),
            _money(p["cost_p90"]),
            _money(p["cost_p99"]),
            f"{p['service_level']:.2%}",
        )
    console.print(table)
