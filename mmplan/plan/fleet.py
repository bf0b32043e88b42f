"""Fleet budgets: trucks in use per day, network-wide and per origin facility.

A truck counts once per dispatch: the trucks in use on a date are Σ_a y_a over the date's
lanes, and an origin facility's are Σ_{a leaves it} y_a. `[optimize] fleet` bounds them,

    Σ_a y_a <= F,        Σ_{a ∈ out(o)} y_a <= F_o   for each facility o with a budget,

rows of every date's MIP (`fleet_rows`). A rounded heuristic plan may break them; the
fallback (`within_fleet`) is the LP's trucks rounded down, which keeps both rows. A plan
reports the fleet it needs (`fleet_needed`: trucks per date and the peak), and, for a
budget that binds, its marginal value: the cost saved by one more truck a day, measured by
re-solving the dates it binds on with the budget one higher (`plus_one`), not read from the
LP with trucks fixed (whose duals price capacity, not whole trucks).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from mmplan.config import FleetConfig
from mmplan.errors import DataError
from mmplan.plan.network import Network

__all__ = [
    "with_fleet",
    "fleet_rows",
    "fleet_ok",
    "fleet_needed",
    "binding_budgets",
    "has_budget",
    "budget_record",
    "plus_one",
]

TOTAL = "total"  # the network-wide budget's name in summaries


def with_fleet(net: Network, fleet: FleetConfig, source: str) -> Network:
    """`net` with the budgets of `fleet`; DataError (65) for a facility the nodes lack."""
    index = {str(n): i for i, n in enumerate(net.names)}
    unknown = sorted(set(fleet.origin) - set(index))
    if unknown:
        raise DataError(
            f"{source}: fleet budget names facilities that are not in the nodes table: "
            + ", ".join(unknown)
            + ". Name facilities of the nodes table."
        )
    per_node = np.full(net.n, np.inf)
    for name, limit in fleet.origin.items():
        per_node[index[name]] = float(limit)
    total = math.inf if fleet.total is None else float(fleet.total)
    owner = net.owner if net.owner is not None else net.lo
    return replace(net, fleet_total=total, fleet_node=per_node, owner=owner)


def has_budget(net: Network) -> bool:
    """Whether `net` limits the trucks in use at all."""
    return bool(_budgets(net))


def _budgets(net: Network) -> list[tuple[str, np.ndarray, float]]:
    """(name, lane mask, limit) of every finite budget."""
    out = []
    lanes = len(net.lo)
    if math.isfinite(net.fleet_total):
        out.append((TOTAL, np.ones(lanes, dtype=bool), net.fleet_total))
    if net.fleet_node is not None and net.owner is not None:
        for node in np.flatnonzero(np.isfinite(net.fleet_node)):
            out.append((str(net.names[node]), net.owner == node, float(net.fleet_node[node])))
    return out


def fleet_rows(net: Network, y_lane: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Per budget: the positions among `y_lane` (a model's truck columns) it counts, and its
    limit."""
    return [(np.flatnonzero(mask[y_lane]), limit) for _, mask, limit in _budgets(net)]


def fleet_ok(net: Network, y_lane: np.ndarray, y: np.ndarray) -> bool:
    """Do the trucks `y` on `y_lane` keep every budget?"""
    return all(float(y[pos].sum()) <= limit + 1e-6 for pos, limit in fleet_rows(net, y_lane))


def fleet_needed(trucks: pl.DataFrame) -> dict[str, Any]:
    """The fleet a plan needs: trucks dispatched per date (a truck counts once per
    dispatch), the peak and its date, and each origin facility's peak."""
    per_date = trucks.group_by("date").agg(pl.col("trucks").sum()).sort("date")
    per_origin = (
        trucks.group_by("origin", "date")
        .agg(pl.col("trucks").sum())
        .group_by("origin")
        .agg(pl.col("trucks").max())
        .sort("origin")
    )
    peak = per_date.sort("trucks", descending=True, maintain_order=True).head(1)
    return {
        "trucks_per_date": {str(d): float(t) for d, t in per_date.iter_rows()},
        "peak": float(peak["trucks"][0]) if peak.height else 0.0,
        "peak_date": str(peak["date"][0]) if peak.height else None,
        "peak_per_origin": {str(o): float(t) for o, t in per_origin.iter_rows()},
    }


def budget_record(net: Network, trucks: pl.DataFrame) -> dict[str, Any]:
    """The budgets `net` plans under and the dates each binds on, for summary.json."""
    origin = {}
    if net.fleet_node is not None:
        origin = {
            str(net.names[i]): net.fleet_node[i]
            for i in np.flatnonzero(np.isfinite(net.fleet_node))
        }
    return {
        "total": net.fleet_total if math.isfinite(net.fleet_total) else None,
        "origin": origin,
        "binding_dates": {k: [str(d) for d in v] for k, v in binding_budgets(net, trucks).items()},
    }


def binding_budgets(net: Network, trucks: pl.DataFrame) -> dict[str, list[Any]]:
    """Per budget name, the dates on which the plan uses all of it."""
    out: dict[str, list[Any]] = {}
    for name, _, limit in _budgets(net):
        rows = trucks if name == TOTAL else trucks.filter(pl.col("origin") == name)
        used = rows.group_by("date").agg(pl.col("trucks").sum())
        dates = used.filter(pl.col("trucks") >= limit - 1e-6)["date"].sort().to_list()
        if dates:
            out[name] = dates
    return out


def plus_one(net: Network, budget: str) -> Network:
    """`net` with the budget named `budget` one truck a day higher."""
    if budget == TOTAL:
        return replace(net, fleet_total=net.fleet_total + 1)
    assert net.fleet_node is not None
    per_node = net.fleet_node.copy()
    per_node[int(np.flatnonzero(net.names == budget)[0])] += 1
    return replace(net, fleet_node=per_node)
