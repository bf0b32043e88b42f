"""The simulation section: how a plan fares against the forecast's own distribution.

From the folder `mmplan simulate` writes (`--simulation OUT` on `mmplan report`): per plan
(the plan simulated and each `--compare` plan, routed on the same samples) the probability
of any unserved volume, the expected unserved volume and its shortfall cost, the mean and
P50/P90/P99 total cost and the service level (summary.json); the distribution of total
cost and of unserved volume per plan side by side (samples.parquet); which plan has the
lowest expected total cost; and the facilities and origin-destination pairs with the
lowest service level (facilities.parquet, pairs.parquet), one column per plan.

The section opens with what the simulation was made from (the plan and the forecast in
its provenance); the page's header warns when they are not the --plan or --forecast given
beside it (mmplan.report.checks).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.report import charts
from mmplan.report.checks import scenario_plans
from mmplan.report.inputs import SimulationInput, read_simulation
from mmplan.report.markup import esc, figures, number, paragraph, percent, short_sha, table
from mmplan.report.registry import Context, InputKind, Part, Section, register

__all__ = ["render_simulation", "plan_order", "cheapest_plan", "worst_service"]


def plan_order(sim: SimulationInput) -> list[str]:
    """The plans in the order simulated (the plan first, then each --compare plan), as
    samples.parquet holds them: summary.json's keys are sorted by name."""
    seen = sim.samples.get_column("plan").unique(maintain_order=True).to_list()
    return [*seen, *(p for p in sim.summary["plans"] if p not in seen)]


def cheapest_plan(summary: dict[str, Any], order: list[str]) -> str:
    """The plan with the lowest expected (mean) total cost; the first in `order` on a tie."""
    plans = summary["plans"]
    return min(order, key=lambda name: (plans[name]["cost_mean"], order.index(name)))


def worst_service(table: pl.DataFrame, keys: list[str], plans: list[str], n: int) -> pl.DataFrame:
    """The `n` rows (by `keys`) with the lowest service level under the first plan: their
    expected demand and unserved volume under it, and a service level per plan (columns
    `service:<plan>`, in `plans` order, so a plan named like a key cannot clash)."""
    service = table.with_columns(("service:" + pl.col("plan")).alias("plan"))
    wide = service.pivot(on="plan", index=keys, values="service_level", aggregate_function="first")
    first = table.filter(pl.col("plan") == plans[0]).select(*keys, "demand", "unserved")
    ranked = first.join(wide, on=keys, how="left")
    columns = [f"service:{p}" for p in plans]
    order = [pl.col(columns[0]), *(pl.col(k) for k in keys)]
    return ranked.sort(order, nulls_last=True).head(n).select(*keys, "demand", "unserved", *columns)


def _which_plan(ctx: Context, sha: str | None) -> str:
    """Which plan given beside the simulation it simulated, by its trucks' SHA-256: the
    --plan's file as read, or a scenario's as the scenario folder's manifest recorded it
    ("" when none is; the header warns then, see checks.notes)."""
    if not sha:
        return ""
    if ctx.hashes.get("plan/trucks.parquet") == sha:
        return " (the plan given with --plan)"
    named = [name for name, h in scenario_plans(ctx.inputs).items() if h == sha]
    return f" (scenario {esc(named[0])} of the folder given with --scenarios)" if named else ""


def _made_from(ctx: Context, plans: list[str]) -> str:
    record = ctx.inputs["simulation"].record() or {}
    made = record.get("inputs") or {}
    parts = []
    for key, what in (("plan", "plan"), ("demand", "forecast")):
        entry = made.get(key) or {}
        if entry.get("path"):
            sha = entry.get("sha256")
            if key == "plan":
                which = _which_plan(ctx, sha)
            else:
                given = sha is not None and ctx.hashes.get("forecast") == sha
                which = " (the forecast given with --forecast)" if given else ""
            parts.append(f"{what} <code>{esc(entry['path'])}</code> {short_sha(sha)}{which}")
    text = "Simulated " + (" against the ".join(parts) if parts else "(no provenance recorded)")
    if len(plans) > 1:
        text += f"; compared on the same samples with {esc(', '.join(plans[1:]))}"
    return f'<p class="note">{text}.</p>'


def _tiles(sim: SimulationInput) -> str:
    s = sim.summary
    demand = s.get("demand") or {}
    items = [
        ("samples", number(s.get("samples"))),
        ("seed", number(s.get("seed"))),
        ("plans", number(len(s["plans"]))),
        ("shortfall cost per package", number(s.get("shortfall_cost"), 2)),
        ("forecast total", number(demand.get("forecast_total"))),
        ("sampled mean total", number(demand.get("sampled_mean_total"))),
        ("sampled sd total", number(demand.get("sampled_sd_total"))),
    ]
    return figures(items)


def _plans_table(summary: dict[str, Any], order: list[str]) -> str:
    best = cheapest_plan(summary, order)
    rows = [
        [
            esc(name) + (" <strong>(lowest expected cost)</strong>" if name == best else ""),
            percent(p["p_any_unserved"]),
            number(p["expected_unserved_volume"]),
            number(p["expected_shortfall_cost"]),
            number(p.get("expected_spot_trucks"), 1),
            number(p["cost_mean"]),
            number(p["cost_p50"]),
            number(p["cost_p90"]),
            number(p["cost_p99"]),
            percent(p["service_level"], 2),
        ]
        for name, p in ((n, summary["plans"][n]) for n in order)
    ]
    headers = [
        "plan",
        "P(any unserved)",
        "expected unserved",
        "expected shortfall cost",
        "expected spot trucks",
        "mean total cost",
        "P50",
        "P90",
        "P99",
        "service level",
    ]
    verdict = ""
    if len(rows) > 1:
        verdict = paragraph(
            f"{best} minimises expected total cost (its trucks, routing, and shortfall at "
            f"{summary.get('shortfall_cost', '?')} per package) over these samples.",
        )
    return verdict + table(headers, rows, numeric=range(1, 10))


def _distributions(sim: SimulationInput, plans: list[str]) -> list[Part]:
    samples = sim.samples
    cost = [(p, samples.filter(pl.col("plan") == p)["total_cost"].to_list()) for p in plans]
    short = [(p, samples.filter(pl.col("plan") == p)["unserved_volume"].to_list()) for p in plans]
    return [
        Part(figure=charts.boxes("Total cost per sample, by plan", cost, "total cost")),
        Part(figure=charts.boxes("Unserved volume per sample, by plan", short, "packages")),
    ]


def _worst(table_: pl.DataFrame, keys: list[str], plans: list[str], n: int, title: str) -> str:
    worst = worst_service(table_, keys, plans, n)
    rows = [
        [
            esc(" → ".join(str(r[k]) for k in keys)),
            number(r["demand"]),
            number(r["unserved"]),
            *(percent(r[f"service:{p}"], 2) for p in plans),
        ]
        for r in worst.iter_rows(named=True)
    ]
    headers = [" → ".join(keys), "expected demand", f"expected unserved: {plans[0]}"]
    headers += [f"service: {p}" for p in plans]
    title = f"{title} by service level under {plans[0]} (lowest {n})"
    return f"<h3>{esc(title)}</h3>" + table(headers, rows, numeric=range(1, 3 + len(plans)))


def render_simulation(ctx: Context) -> Section:
    """What it was made from, key figures, the plans side by side, cost and unserved
    distributions, the worst facilities and pairs by service level."""
    loaded = ctx.inputs["simulation"]
    sim: SimulationInput = loaded.data
    plans = plan_order(sim)
    n = ctx.config.worst_series
    parts = [Part(_made_from(ctx, plans)), Part(_tiles(sim))]
    parts.append(Part(_plans_table(sim.summary, plans)))
    parts += _distributions(sim, plans)
    note = paragraph(
        "Service level: 1 - expected unserved / expected demand; a facility counts the pairs "
        "starting or ending at it.",
        "note",
    )
    parts.append(Part(note + _worst(sim.facilities, ["facility"], plans, n, "Facilities")))
    pairs = _worst(sim.pairs, ["origin", "destination"], plans, n, "Origin-destination pairs")
    parts.append(Part(pairs))
    return Section("simulation", "Simulation", parts)


register(InputKind("simulation", read_simulation, render_simulation, order=46))
