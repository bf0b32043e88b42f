"""The scenario section: what each what-if costs against the base plan.

From the folder `mmplan optimize ... --scenarios FILE.toml` writes (`--scenarios DIR` on
`mmplan report`): its comparison.parquet, one row per scenario with the base first. The
page shows each scenario's status (a scenario that could not be planned keeps its row, its
status and message, and no figures), its cost by component, trucks, unserved volume and
its penalty, closed-facility volume, the most binding facilities and the deltas against
the base; a chart of cost by component per scenario and one of unserved and
closed-facility volume per scenario.

The cost chart leaves the unserved penalty out and says so: the penalty is set above the
cost of any path on purpose (README: Optimizing the plan), so one scenario short of
capacity would dwarf every other bar. The table and the unserved chart show it instead.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.report import charts
from mmplan.report.inputs import ScenariosInput, read_scenarios
from mmplan.report.markup import esc, figures, number, paragraph, table
from mmplan.report.registry import Context, InputKind, Part, Section, register

__all__ = ["render_scenarios", "planned", "COMPONENTS"]

# comparison.parquet's cost columns drawn in the chart, and their labels
COMPONENTS = (
    ("truck_cost", "trucks"),
    ("package_cost", "per package"),
    ("handling_cost", "handling"),
    ("extra_capacity_cost", "added capacity"),
)


def planned(comparison: pl.DataFrame) -> pl.DataFrame:
    """The scenarios that have a plan (a total cost); the others failed."""
    return comparison.filter(pl.col("total_cost").is_not_null())


def _delta(value: Any, base: Any, digits: int = 0) -> str:
    """A delta against the base with its sign, and as a share of the base's value."""
    if value is None:
        return "-"
    text = f"{value:+,.{digits}f}"
    if base:
        text += f" ({value / base:+.1%})"
    return esc(text)


def _tiles(comparison: pl.DataFrame, manifest: dict[str, Any] | None) -> str:
    done = planned(comparison)
    others = done.filter(pl.col("scenario") != comparison["scenario"][0])
    cheapest = others.sort("total_cost").head(1) if others.height else None
    source = ((manifest or {}).get("inputs") or {}).get("scenarios") or {}
    items = [
        ("scenarios besides the base", number(comparison.height - 1)),
        ("not planned", number(comparison.height - done.height)),
        ("base total cost", number(comparison["total_cost"][0])),
    ]
    if cheapest is not None and cheapest.height:
        row = cheapest.row(0, named=True)
        items.append((f"cheapest: {row['scenario']}", _delta(row["delta_total_cost"], None)))
    html = figures(items)
    if source.get("path"):
        html += paragraph(f"Scenario file: {source['path']}.", "note")
    return html


def _with_delta(value: Any, delta: Any, base: Any = None) -> str:
    """A figure with its delta against the base underneath (the base row has none)."""
    return f"{number(value)}<br><small>{_delta(delta, base)}</small>"


def _row(r: dict[str, Any], base: dict[str, Any], first: bool) -> list[str]:
    status = esc(r["status"]) + (f"<br><small>{esc(r['message'])}</small>" if r["message"] else "")
    if r["total_cost"] is None:  # not planned: its status and message, no figures
        return [esc(r["scenario"]), status, *["-"] * 11]
    dates = f"{r.get('dates_resolved', '-')} / {r.get('dates_reused', '-')}"
    total, trucks, unserved = (
        (number(r["total_cost"]), number(r["trucks"]), number(r["unserved_volume"]))
        if first
        else (
            _with_delta(r["total_cost"], r["delta_total_cost"], base["total_cost"]),
            _with_delta(r["trucks"], r["delta_trucks"]),
            _with_delta(r["unserved_volume"], r["delta_unserved_volume"]),
        )
    )
    return [
        esc(r["scenario"]),
        status,
        esc(dates),
        *(number(r[key]) for key, _ in COMPONENTS),
        number(r["unserved_penalty_cost"]),
        total,
        trucks,
        unserved,
        number(r["closed_facility_volume"]),
        esc(r["binding_facilities"] or "-"),
    ]


def _table(comparison: pl.DataFrame) -> str:
    rows = list(comparison.iter_rows(named=True))
    headers = [
        "scenario",
        "status",
        "dates re-solved / reused",
        *(f"cost: {label}" for _, label in COMPONENTS),
        "unserved penalty",
        "total cost (Δ vs base)",
        "trucks (Δ)",
        "unserved volume (Δ)",
        "closed-facility volume",
        "most binding facilities",
    ]
    note = paragraph(
        "One row per scenario, base first; under each figure its delta against the base. A "
        "scenario that could not be planned shows its status and message. Closed-facility "
        "volume starts or ends at a facility that is down: it is not counted as unserved.",
        "note",
    )
    body = [_row(r, rows[0], i == 0) for i, r in enumerate(rows)]
    # A wide table scrolls inside the section rather than stretching the page.
    return note + f'<div style="overflow-x:auto">{table(headers, body, numeric=range(2, 12))}</div>'


def _charts(comparison: pl.DataFrame) -> list[Part]:
    done = planned(comparison)
    names = done["scenario"].to_list()
    series = [(label, done[key].fill_null(0.0).to_list()) for key, label in COMPONENTS]
    cost = charts.stacked_bars("Cost by component per scenario", names, series, "cost")
    volume = charts.stacked_bars(
        "Unserved and closed-facility volume per scenario",
        names,
        [
            ("unserved", done["unserved_volume"].fill_null(0.0).to_list()),
            ("closed facility", done["closed_facility_volume"].fill_null(0.0).to_list()),
        ],
        "packages",
        stacked=False,
    )
    note = paragraph(
        "The cost chart leaves out the unserved penalty (in the table), which is priced "
        "above any path on purpose and would hide the other components."
        + (" Scenarios not planned are not drawn." if done.height < comparison.height else ""),
        "note",
    )
    return [Part(figure=cost), Part(note), Part(figure=volume)]


def render_scenarios(ctx: Context) -> Section:
    """Key figures, the comparison table, cost by component and unserved per scenario."""
    data: ScenariosInput = ctx.inputs["scenarios"].data
    comparison = data.comparison
    parts = [Part(_tiles(comparison, data.manifest)), Part(_table(comparison))]
    parts += _charts(comparison)
    return Section("scenarios", "Scenarios", parts)


register(InputKind("scenarios", read_scenarios, render_scenarios, order=43))
