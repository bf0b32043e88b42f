"""The plan tables and summary from the dates' solved models.

Each date's solution is split into per-pair paths, checked (mmplan.plan.check), and turned
into rows of the four plan tables (trucks, flows, nodes, unserved); the summary adds up the
cost parts, which must equal the objective, and states the gap, status and timings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from mmplan.config import OptimizeConfig
from mmplan.plan.check import Loads, check_plan
from mmplan.plan.fleet import budget_record, fleet_needed, fleet_ok
from mmplan.plan.model import Model
from mmplan.plan.network import NOISE, Network
from mmplan.plan.paths import PairFlows, decompose
from mmplan.plan.solve import NOT_RUN, DateOutcome, DayOutcome, clean
from mmplan.plan.unserved import unserved_reasons

# The method summary.json names: dates solved separately (the benchmarks compare it with a
# single model of all dates, benchmarks/plain_model.py).
METHOD = "decomposed"

_TRUCKS = {
    "origin": pl.String,
    "destination": pl.String,
    "date": pl.Date,
    "trucks": pl.Float64,
    "volume": pl.Float64,
    "utilization": pl.Float64,
    "cost": pl.Float64,
}
_FLOWS = {
    "origin": pl.String,
    "destination": pl.String,
    "lane_origin": pl.String,
    "lane_destination": pl.String,
    "date": pl.Date,
    "volume": pl.Float64,
}
_NODES = {
    "node": pl.String,
    "date": pl.Date,
    "throughput": pl.Float64,
    "capacity": pl.Float64,
    "added_capacity": pl.Float64,
    "utilization": pl.Float64,
    "shadow_price": pl.Float64,
}
_UNSERVED = {"origin": pl.String, "destination": pl.String, "date": pl.Date, "volume": pl.Float64}


@dataclass
class Plan:
    """An optimized plan: the four plan tables and the summary written to summary.json."""

    trucks: pl.DataFrame
    flows: pl.DataFrame
    nodes: pl.DataFrame
    unserved: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    # Tables beside the four, by file name (a week or month plan's fleet and capacity).
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass
class _CheckedDay:
    """One date's plan after the check, pairs in the network's own direction."""

    date: Any
    model: Model
    values: np.ndarray
    po: np.ndarray
    pt: np.ndarray
    q: np.ndarray
    y: np.ndarray  # trucks per y lane of the model
    zfull: np.ndarray  # capacity added per facility
    s: np.ndarray  # unserved volume per pair
    flows: PairFlows
    loads: Loads

    @property
    def objective(self) -> float:
        return float(self.model.obj @ self.values) + self.model.offset


class _TruckRows(NamedTuple):
    frame: pl.DataFrame
    truck_cost: float
    package_cost: float


def _repair(
    net: Network, m: Model, v: np.ndarray, flows: PairFlows, dst: np.ndarray, whole: bool
) -> PairFlows:
    """Primal residuals of a first-order LP solver (PDLP) gone: a pair whose flows overload
    a lane's trucks or a facility's capacity (by solver noise, 0.02 packages on a sample
    plan) has all its flows scaled down by the worst overload, the rest unserved, so loads
    fit exactly and every pair's flow still conserves. Updates `v`'s unserved in place.
    With `whole` trucks the rounded ones count: a 1e-9 truck is integral to the solver and
    carries a tiny demand, but the plan has none."""
    fp, fl, fv = flows
    lanes = len(net.lo)
    trucks = np.zeros(lanes)
    trucks[m.y_lane] = np.round(v[m.y_cols]) if whole else v[m.y_cols]
    load = np.bincount(fl, weights=fv, minlength=lanes)
    lane_room = np.divide(trucks * net.u, load, out=np.ones(lanes), where=load > 0)
    z = np.bincount(m.z_node, weights=v[m.n_x + m.n_y : m.n_x + m.n_y + m.n_z], minlength=net.n)
    worst = np.minimum(lane_room, 1.0)[fl]
    for end in (net.lo, net.ld):
        thr = np.bincount(end[fl], weights=fv, minlength=net.n)
        room = np.divide(net.cap + z, thr, out=np.ones(net.n), where=thr > 0)
        worst = np.minimum(worst, np.minimum(room, 1.0)[end[fl]])
    if worst.min(initial=1.0) >= 1.0:
        return flows
    factor = np.ones(len(m.group))
    np.minimum.at(factor, fp, worst * (1 - 1e-12))
    factor = np.where(factor < 1.0, factor, 1.0)
    # A pair's served volume is what its flows bring into its destination.
    arrives = net.ld[fl] == dst[fp]
    served = np.bincount(fp[arrives], weights=fv[arrives], minlength=len(factor))
    v[m.s_cols] += served * (1.0 - factor)
    return PairFlows(fp, fl, fv * factor[fp])


def _conserve(
    net: Network, m: Model, v: np.ndarray, flows: PairFlows, dst: np.ndarray, q: np.ndarray
) -> PairFlows:
    """Every pair's unserved volume made exactly its demand less what its paths bring into
    its destination, so served + unserved = demand whatever the solver's tolerances left
    (an absolute 1e-6 is most of a pair's demand when volumes are tiny). A pair its paths
    would over-serve by noise has them scaled to its demand. Updates `v`'s unserved in place."""
    fp, fl, fv = flows
    arrives = net.ld[fl] == dst[fp]
    served = np.bincount(fp[arrives], weights=fv[arrives], minlength=len(q))
    factor = np.divide(q, served, out=np.ones(len(q)), where=served > q)
    v[m.s_cols] = q - np.minimum(served, q)
    return PairFlows(fp, fl, fv * factor[fp])


def _checked_day(
    net: Network, date_outcome: DateOutcome, config: OptimizeConfig, scale: float
) -> _CheckedDay:
    """Paths from the day's flows, the flows rebuilt from them, and the independent check."""
    date, rev, a, b, q, out = date_outcome
    m, v = out.model, out.values
    n2 = net.reversed() if rev else net
    flows = decompose(m, v, n2, a, b, q, scale)
    v = v.copy()
    flows = _conserve(n2, m, v, _repair(n2, m, v, flows, b, not config.relax), b, q)
    fp, fl, fv = flows
    # Rebuild the commodity flows from the paths: a cycle the solver left in a plan
    # carries nothing anywhere, so it goes, with its cost.
    code = m.x_key * len(net.lo) + m.x_lane
    order = np.argsort(code)
    at = order[np.searchsorted(code[order], m.group[fp] * len(net.lo) + fl)]
    v[: m.n_x] = np.bincount(at, weights=fv, minlength=m.n_x)
    v = clean(m, v, n2, whole=not config.relax)
    po, pt = date_outcome.po, date_outcome.pt
    y = v[m.y_cols]
    z = v[m.n_x + m.n_y : m.n_x + m.n_y + m.n_z]
    s = v[m.s_cols]
    loads = check_plan(
        net,
        str(date),
        po,
        pt,
        q,
        m.y_lane,
        y,
        np.bincount(m.z_node, weights=z, minlength=net.n),
        s,
        flows,
        scale,
        integral=not config.relax,
    )
    zfull = np.bincount(m.z_node, weights=z, minlength=net.n)
    return _CheckedDay(date, m, v, po, pt, q, y, zfull, s, flows, loads)


# What the MIP solver answers when it returned a plan (anything else: it gave none).
_SOLVED = ("OPTIMAL", "FEASIBLE", NOT_RUN)  # NOT_RUN: no time left, not a solver failure


def _day_summary(
    day: _CheckedDay, out: DayOutcome, penalty: float, config: OptimizeConfig
) -> dict[str, Any]:
    """The date's entry in summary["per_date"]: status, which phase produced the plan, what
    the MIP solver returned, the date's time share, and whether it reached relative_gap."""
    day_obj = day.objective
    day_pen = penalty * float(day.s.sum())
    gap = max(day_obj - out.bound, 0.0) / max(day_obj - day_pen, 1e-9)
    return {
        "status": out.status,
        "phase": out.phase,
        "mip_status": out.mip_status,
        "objective": round(day_obj, 4),
        "best_bound": round(out.bound, 4),
        "operating_gap": round(gap, 6),
        "reached_gap": bool(config.relax or out.mip_status.startswith("OPTIMAL"))
        or gap <= config.relative_gap * (1 + 1e-9),
        "seconds": round(sum(out.timings.values()), 3),
        "started": round(out.started, 4),
        "time_share": round(out.time_share, 4),
        "timings": {k: round(t, 3) for k, t in out.timings.items()},
        "deterministic": bool(config.deterministic and not out.timed_out),
    }


def _downgrades(per_day: dict[str, dict[str, Any]], relax: bool) -> dict[str, Any]:
    """Which phase produced the dates' plans, the dates whose MIP solver gave no plan (they
    fell back to a heuristic's), and the dates that stopped short of relative_gap."""
    phases: dict[str, int] = {}
    for entry in per_day.values():
        phases[entry["phase"]] = phases.get(entry["phase"], 0) + 1
    return {
        "phases": phases,
        "fallback_dates": {}
        if relax
        else {
            d: e["mip_status"]
            for d, e in per_day.items()
            if e["mip_status"].split()[0] not in _SOLVED
        },
        "short_of_time_dates": [d for d, e in per_day.items() if not e["reached_gap"]],
        # deterministic: every date's phases stopped on work limits, not on the clock.
        "deterministic": all(e["deterministic"] for e in per_day.values()),
        "nondeterministic_dates": [d for d, e in per_day.items() if not e["deterministic"]],
    }


def _truck_rows(net: Network, day: _CheckedDay, scale: float) -> _TruckRows:
    """Trucks, volume, utilization and cost of every lane the date uses: with trucks above
    solver noise, or carrying volume above noise relative to the demand (an LP plan of tiny
    volumes has tiny fractional trucks)."""
    y, load = day.y, day.loads.lane
    used = (y > NOISE) | ((y > 0) & (load[day.model.y_lane] > NOISE * scale))
    lanes_used = day.model.y_lane[used]
    truck_cost = net.f[lanes_used] * y[used]
    pkg_cost = net.c[lanes_used] * load[lanes_used]
    frame = pl.DataFrame(
        {
            "origin": net.names[net.lo[lanes_used]],
            "destination": net.names[net.ld[lanes_used]],
            "date": [day.date] * len(lanes_used),
            "trucks": y[used],
            "volume": load[lanes_used],
            "utilization": load[lanes_used] / (y[used] * net.u[lanes_used]),
            "cost": truck_cost + pkg_cost,
        },
        schema_overrides={"date": pl.Date},
    )
    return _TruckRows(frame, float(truck_cost.sum()), float(pkg_cost.sum()))


def _flow_rows(net: Network, day: _CheckedDay) -> pl.DataFrame:
    """Volume per demand pair and lane."""
    fp, fl, fv = day.flows
    return (
        pl.DataFrame(
            {
                "origin": net.names[day.po[fp]],
                "destination": net.names[day.pt[fp]],
                "lane_origin": net.names[net.lo[fl]],
                "lane_destination": net.names[net.ld[fl]],
                "date": [day.date] * len(fp),
                "volume": fv,
            },
            schema_overrides={"date": pl.Date},
        )
        .group_by(
            "origin",
            "destination",
            "lane_origin",
            "lane_destination",
            "date",
            maintain_order=True,
        )
        .agg(pl.col("volume").sum())
    )


def _node_rows(net: Network, day: _CheckedDay, duals: np.ndarray | None) -> pl.DataFrame:
    """Throughput, capacity, utilization and shadow price of every facility in use."""
    m, thr, zfull = day.model, day.loads.throughput, day.zfull
    shadow = np.full(net.n, np.nan)
    if duals is not None and len(m.cap_rows):
        # Dual of "throughput <= capacity" is <= 0 in a min problem; report the value
        # of one more unit of capacity as a positive saving per package per day.
        shadow[m.cap_node] = np.maximum(-duals[m.cap_rows], 0.0)
        shadow[np.isfinite(net.cap) & np.isnan(shadow)] = 0.0
    active = thr > 0
    cap_total = net.cap + zfull
    return pl.DataFrame(
        {
            "node": net.names[active],
            "date": [day.date] * int(active.sum()),
            "throughput": thr[active],
            "capacity": np.where(np.isfinite(net.cap), net.cap, np.nan)[active],
            "added_capacity": zfull[active],
            "utilization": np.where(
                np.isfinite(cap_total) & (cap_total > 0),
                thr / np.where(cap_total > 0, cap_total, 1),
                np.nan,
            )[active],
            "shadow_price": shadow[active],
        },
        schema_overrides={"date": pl.Date},
    ).with_columns(pl.col("capacity", "utilization", "shadow_price").fill_nan(None))


def _unserved_rows(net: Network, day: _CheckedDay) -> pl.DataFrame:
    """Volume of every pair not served, above noise relative to the pair's own demand (a
    cut-off relative to the largest demand would drop a small pair's whole demand)."""
    s = day.s
    lost = s > NOISE * day.q
    return pl.DataFrame(
        {
            "origin": net.names[day.po[lost]],
            "destination": net.names[day.pt[lost]],
            "date": [day.date] * int(lost.sum()),
            "volume": s[lost],
        },
        schema_overrides={"date": pl.Date},
    )


def assemble(
    net: Network,
    outcomes: list[DateOutcome],
    penalty: float,
    config: OptimizeConfig,
    column: str,
    scale: float,
    started: float,
    method: str,
    *,
    nets: Sequence[Network] | None = None,
) -> Plan:
    """The checked plan tables and summary of one demand column's dates; `nets` gives each
    date its own network (a scenario's changes), `net` otherwise serves them all."""
    trucks, flows, node_rows, unserved = [], [], [], []
    totals = {
        "truck_cost": 0.0,
        "package_cost": 0.0,
        "handling_cost": 0.0,
        "extra_capacity_cost": 0.0,
        "unserved_penalty_cost": 0.0,
    }
    objective = bound = 0.0
    statuses, timings = {}, {"build": 0.0, "heuristic": 0.0, "solve": 0.0, "duals": 0.0}
    per_day: dict[str, dict[str, Any]] = {}
    heuristic_total = 0.0
    for i, date_outcome in enumerate(outcomes):
        out = date_outcome.day
        dnet = nets[i] if nets is not None else net
        day = _checked_day(dnet, date_outcome, config, scale)
        if not fleet_ok(dnet, day.model.y_lane, day.y):
            raise RuntimeError(f"the plan of {day.date} breaks a fleet budget")
        for key, t in out.timings.items():
            timings[key] = timings.get(key, 0.0) + t
        statuses[str(day.date)] = out.status
        per_day[str(day.date)] = _day_summary(day, out, penalty, config)
        objective += day.objective
        bound += out.bound
        heuristic_total += out.heuristic if math.isfinite(out.heuristic) else 0.0
        truck_rows = _truck_rows(dnet, day, scale)
        trucks.append(truck_rows.frame)
        flows.append(_flow_rows(dnet, day))
        node_rows.append(_node_rows(dnet, day, out.duals))
        unserved.append(_unserved_rows(dnet, day))
        totals["truck_cost"] += truck_rows.truck_cost
        totals["package_cost"] += truck_rows.package_cost
        totals["handling_cost"] += float((dnet.handling * day.loads.throughput).sum())
        totals["extra_capacity_cost"] += float((dnet.extra_cost * day.zfull).sum())
        totals["unserved_penalty_cost"] += float(penalty * day.s.sum())
    parts_sum = sum(totals.values())
    if abs(parts_sum - objective) > 1e-5 * max(1.0, abs(objective)):
        raise RuntimeError(f"objective {objective} differs from the sum of its parts {parts_sum}")
    plan = Plan(
        trucks=_concat(trucks, _TRUCKS),
        flows=_concat(flows, _FLOWS),
        nodes=_concat(node_rows, _NODES),
        unserved=_concat(unserved, _UNSERVED),
    )
    plan.summary = _summary(
        plan,
        config,
        method=method,
        column=column,
        objective=objective,
        bound=bound,
        statuses=statuses,
        timings=timings,
        per_day=per_day,
        heuristic_total=heuristic_total,
        totals=totals,
        penalty=penalty,
        started=started,
        demand=float(sum(float(o.q.sum()) for o in outcomes)),
        dates=len(outcomes),
    )
    plan.summary["fleet"] = {
        **fleet_needed(plan.trucks),
        "budget": budget_record(net, plan.trucks),
    }
    # Per pair, whether the penalty, part-full trucks or capacity left it unserved.
    why = unserved_reasons(net, plan.unserved, penalty)
    plan.summary["unserved_reasons"], plan.summary["unserved_pairs"] = why["reasons"], why["pairs"]
    return plan


def _summary(
    plan: Plan,
    config: OptimizeConfig,
    *,
    method: str,
    column: str,
    objective: float,
    bound: float,
    statuses: dict[str, str],
    timings: dict[str, float],
    per_day: dict[str, dict[str, Any]],
    heuristic_total: float,
    totals: dict[str, float],
    penalty: float,
    started: float,
    demand: float,
    dates: int,
) -> dict[str, Any]:
    """summary.json: status, objective and bound, gaps, timings, per date, and totals."""
    gap = (objective - bound) / abs(objective) if objective else 0.0
    worst = "OPTIMAL"
    for st in statuses.values():
        if st != "OPTIMAL":
            worst = "FEASIBLE"
    return {
        "status": worst if not config.relax else ("OPTIMAL" if worst == "OPTIMAL" else worst),
        "problem": "LP relaxation" if config.relax else "MIP",
        "method": method,
        "objective": objective,
        "best_bound": bound,
        "gap": max(gap, 0.0),
        # The same gap measured against the cost without unserved penalties: forced
        # unserved volume is in objective and bound alike, and can hide a loose plan.
        "operating_gap": max(objective - bound, 0.0)
        / max(objective - totals["unserved_penalty_cost"], 1e-9)
        if objective
        else 0.0,
        "solver": config.lp_solver if config.relax else config.solver,
        "seconds": time.perf_counter() - started,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "dates": dates,
        "time_limit": config.time_limit,
        "deterministic_requested": config.deterministic,
        **_downgrades(per_day, config.relax),
        "per_date": per_day,
        "column": column,
        "grain": config.grain,
        "heuristic_objective": heuristic_total if not config.relax else None,
        "shadow_prices": (
            "LP relaxation duals"
            if config.relax
            else "duals of the LP with trucks fixed at the MIP solution"
        ),
        "throughput": "packages sorted: the larger of volume arriving and leaving on lanes",
        "unserved_penalty": penalty,
        "totals": {
            **totals,
            "demand": demand,
            "unserved_volume": float(plan.unserved["volume"].sum()),
            "trucks": float(plan.trucks["trucks"].sum()),
            "lanes_used": plan.trucks.select("origin", "destination").unique().height,
        },
    }


def _concat(frames: list[pl.DataFrame], schema: dict[str, Any]) -> pl.DataFrame:
    frames = [f.cast(schema) for f in frames if f.height]  # type: ignore[arg-type]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)
