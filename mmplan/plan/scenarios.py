"""Scenarios as data: changes to base demand and network, each planned as its own plan.

A scenario file (mmplan.scenario_file.ScenarioFile, worked example in configs/scenarios.toml) lists
scenarios; each is a demand column, an optional fleet budget and a list of changes, every
change on a date range (unset: every date):

- `demand`: rows matching origin / destination / region (the destination's) / lane, times
  `multiply`, plus `add` packages per row and date; a change naming one pair creates its
  rows where it has none, so `add` plans a new flow;
- `facility_down`: the facility's lanes carry nothing those dates; volume between other
  facilities re-routes where a path avoids it (or goes unserved); volume starting or ending
  at it is *closed-facility volume*, reported apart from unserved volume;
- `capacity`: a facility's capacity set or multiplied; `remove_lane`, `add_lane`, `lane`
  (truck capacity, costs, max_trucks).

Every date of every scenario is a date of the base plan with its own network and demand
(`_Dated`). A date nothing changes (same demand arrays, same network object) reuses the base
plan's solved date as is, so its rows equal the base plan's bit for bit; the others are
re-solved. Base dates and every scenario's changed dates are solved together, in parallel on
the engine, sharing `time_limit`. The base penalty per unserved package prices every
scenario, so their costs compare. A scenario whose dates cannot be planned keeps its status
and message in the comparison and does not stop the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mmplan.config import OptimizeConfig
from mmplan.errors import DataError, MmplanError
from mmplan.plan.assemble import METHOD, Plan, assemble
from mmplan.plan.demand import Day, Scenario, prepare_demand, scenario
from mmplan.plan.fleet import with_fleet
from mmplan.plan.marginal import Budgeted, add_marginal_values, plan_config
from mmplan.plan.network import Network
from mmplan.plan.parallel import Failed, solve_dates
from mmplan.scenario_file import (
    AddLane,
    CapacityChange,
    DemandChange,
    FacilityDown,
    LaneChange,
    RemoveLane,
    ScenarioDef,
    ScenarioFile,
)

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "BASE",
    "ScenarioPlan",
    "ScenarioResult",
    "plan_scenarios",
    "comparison",
    "scenario_networks",
]

BASE = "base"  # the plan without changes, first in the comparison


@dataclass
class ScenarioPlan:
    """One scenario's plan (None when it could not be planned), and what it re-solved."""

    name: str
    plan: Plan | None
    status: str  # the plan's status, or "FAILED"
    message: str = ""
    resolved_dates: list[str] = field(default_factory=list)
    reused_dates: list[str] = field(default_factory=list)
    closed: pl.DataFrame = field(default_factory=pl.DataFrame)  # closed-facility volume


@dataclass
class ScenarioResult:
    """The base plan and each scenario's, by name (base first), and their comparison."""

    plans: dict[str, ScenarioPlan]
    comparison: pl.DataFrame


_CLOSED = {
    "origin": pl.String,
    "destination": pl.String,
    "date": pl.Date,
    "facility": pl.String,
    "volume": pl.Float64,
}


@dataclass
class _Dated:
    """A scenario ready to solve: per base date its Day (None: no demand left), network,
    and whether anything changed on it."""

    spec: ScenarioDef
    days: list[Day | None]
    nets: list[Network]
    changed: list[bool]
    closed: pl.DataFrame
    net: Network  # the scenario's network on every date (added lanes included)


def _active(change: Any, date: Any) -> bool:
    return (change.start is None or change.start <= date) and (
        change.end is None or date <= change.end
    )


def _where(s: ScenarioDef, i: int, c: Any) -> str:
    return f"scenario '{s.name}', change {i + 1} ({c.type})"


def check_names(s: ScenarioDef, net: Network, lanes: set[tuple[str, str]], regions: set) -> None:
    """DataError (65) for a change naming a facility, lane or region the data lacks."""
    names = set(net.names.tolist())
    for i, c in enumerate(s.change):
        facilities = {
            "facility": getattr(c, "facility", None),
            "origin": getattr(c, "origin", None),
            "destination": getattr(c, "destination", None),
        }
        if isinstance(c, DemandChange) and c.lane:
            # An origin-destination pair of the demand, routed over any path: both ends
            # must be facilities, but no truck lane need join them.
            o, d = (p.strip() for p in c.lane.split("->"))
            if o not in names or d not in names or o == d:
                raise DataError(
                    f"{_where(s, i, c)}: key 'lane' = {c.lane!r} does not name two "
                    "different facilities of the nodes table."
                )
        for key, value in facilities.items():
            if value is not None and value not in names:
                raise DataError(
                    f"{_where(s, i, c)}: key '{key}' = {value!r} is not a facility of the "
                    "nodes table."
                )
        if isinstance(c, DemandChange) and c.region is not None and c.region not in regions:
            raise DataError(f"{_where(s, i, c)}: key 'region' = {c.region!r} is not a region.")
        pair = (getattr(c, "origin", ""), getattr(c, "destination", ""))
        if isinstance(c, RemoveLane | LaneChange) and pair not in lanes:
            raise DataError(f"{_where(s, i, c)}: lane {pair[0]}->{pair[1]} is not in the lanes.")
        if isinstance(c, AddLane) and pair in lanes:
            raise DataError(
                f"{_where(s, i, c)}: lane {pair[0]}->{pair[1]} exists; change it with "
                'type = "lane".'
            )
        if isinstance(c, CapacityChange) and (c.capacity is None) == (c.multiply is None):
            raise DataError(f"{_where(s, i, c)}: give one of 'capacity' and 'multiply'.")


def _scenario_net(base: Network, s: ScenarioDef, config: OptimizeConfig) -> Network:
    """The base network with the scenario's added lanes appended and its fleet budget."""
    added = [c for c in s.change if isinstance(c, AddLane)]
    net = base
    if added:
        index = {str(n): i for i, n in enumerate(base.names)}
        lo = np.array([index[c.origin] for c in added], np.int64)
        ld = np.array([index[c.destination] for c in added], np.int64)
        owner = base.owner if base.owner is not None else base.lo
        net = replace(
            base,
            lo=np.concatenate([base.lo, lo]),
            ld=np.concatenate([base.ld, ld]),
            u=np.concatenate([base.u, [c.truck_capacity for c in added]]),
            f=np.concatenate([base.f, [c.cost_per_truck for c in added]]),
            c=np.concatenate([base.c, [c.cost_per_package for c in added]]),
            maxt=np.concatenate(
                [base.maxt, [np.inf if c.max_trucks is None else c.max_trucks for c in added]]
            ),
            owner=np.concatenate([owner, lo]),
        )
    if s.fleet is not None:
        net = with_fleet(net, s.fleet, f"scenario '{s.name}' fleet")
    return net


def scenario_networks(
    base: Network, s: ScenarioDef, dates: list[Any], config: OptimizeConfig
) -> dict[Any, Network]:
    """The scenario's network on each date, as its plan was made on (mmplan simulate routes
    a scenario's plan on these)."""
    net = _scenario_net(base, s, config)
    return {date: _date_net(base, net, s, date) for date in dates}


def _date_net(base: Network, net: Network, s: ScenarioDef, date: Any) -> Network:
    """The scenario's network on `date`: `base` itself when nothing changes it that day."""
    active = [c for c in s.change if not isinstance(c, DemandChange) and _active(c, date)]
    if not active and s.fleet is None:  # added lanes closed, as in the base network
        return base
    index = {str(n): i for i, n in enumerate(net.names)}
    n_base = len(base.lo)
    maxt, u, f, c_ = net.maxt.copy(), net.u.copy(), net.f.copy(), net.c.copy()
    cap = net.cap.copy()
    on = np.zeros(len(net.lo) - n_base, dtype=bool)  # added lanes open today
    lane_at = {(int(o), int(d)): a for a, (o, d) in enumerate(zip(net.lo, net.ld, strict=True))}
    for ch in active:
        if isinstance(ch, FacilityDown):
            k = index[ch.facility]
            maxt[(net.lo == k) | (net.ld == k)] = 0.0
        elif isinstance(ch, CapacityChange):
            k = index[ch.facility]
            cap[k] = ch.capacity if ch.capacity is not None else cap[k] * (ch.multiply or 0.0)
        else:
            a = lane_at[(index[ch.origin], index[ch.destination])]
            if isinstance(ch, RemoveLane):
                maxt[a] = 0.0
            elif isinstance(ch, AddLane):
                on[a - n_base] = True
            elif isinstance(ch, LaneChange):
                for arr, value in ((u, ch.truck_capacity), (f, ch.cost_per_truck)):
                    if value is not None:
                        arr[a] = value
                if ch.cost_per_package is not None:
                    c_[a] = ch.cost_per_package
                if ch.max_trucks is not None:
                    maxt[a] = ch.max_trucks
    maxt[n_base:][~on] = 0.0
    facility_down = {index[ch.facility] for ch in active if isinstance(ch, FacilityDown)}
    for k in facility_down:  # a closed facility's lanes stay closed whatever else changed
        maxt[(net.lo == k) | (net.ld == k)] = 0.0
    return replace(net, maxt=maxt, u=u, f=f, c=c_, cap=cap)


def _pair(c: DemandChange) -> tuple[str, str] | None:
    """The one origin-destination pair a change names (`lane`, or `origin` and
    `destination`), or None when it matches a set of rows."""
    if c.lane is not None:
        o, t = (p.strip() for p in c.lane.split("->"))
        return o, t
    if c.origin is not None and c.destination is not None:
        return c.origin, c.destination
    return None


def _new_rows(d: pl.DataFrame, c: DemandChange, regions: pl.DataFrame) -> pl.DataFrame:
    """Zero-volume rows for the dates of `d` in the change's range on which the pair it
    names has none, so that its `add` creates volume there: a planner adding a new
    customer's flow means packages, not "nothing, since there was nothing before"."""
    pair = _pair(c)
    if pair is None or c.add <= 0:
        return d
    dates = d.select("date").unique()
    if c.start is not None:
        dates = dates.filter(pl.col("date") >= c.start)
    if c.end is not None:
        dates = dates.filter(pl.col("date") <= c.end)
    have = d.filter((pl.col("origin") == pair[0]) & (pl.col("destination") == pair[1]))
    missing = dates.join(have.select("date"), on="date", how="anti")
    if missing.is_empty():
        return d
    region = regions.filter(pl.col("node") == pair[1])["_region"]
    rows = missing.sort("date").with_columns(
        origin=pl.lit(pair[0]),
        destination=pl.lit(pair[1]),
        volume=pl.lit(0.0),
        _region=pl.lit(region[0] if len(region) else None, dtype=d.schema["_region"]),
    )
    return pl.concat([d, rows.select(d.columns)])


def _demand(d: pl.DataFrame, s: ScenarioDef, regions: pl.DataFrame) -> pl.DataFrame:
    """Base rows (date, origin, destination, volume) with the scenario's demand changes;
    a change naming one pair adds its rows on the dates it has none (`_new_rows`)."""
    d = d.join(regions, left_on="destination", right_on="node", how="left", maintain_order="left")
    for c in s.change:
        if not isinstance(c, DemandChange):
            continue
        d = _new_rows(d, c, regions)
        mask = pl.lit(True)
        for key, value in (
            ("origin", c.origin),
            ("destination", c.destination),
            ("_region", c.region),
        ):
            if value is not None:
                mask &= pl.col(key) == value
        if c.lane is not None:
            o, t = _pair(c) or ("", "")
            mask &= (pl.col("origin") == o) & (pl.col("destination") == t)
        if c.start is not None:
            mask &= pl.col("date") >= c.start
        if c.end is not None:
            mask &= pl.col("date") <= c.end
        new = pl.max_horizontal(pl.col("volume") * c.multiply + c.add, pl.lit(0.0))
        d = d.with_columns(volume=pl.when(mask).then(new).otherwise(pl.col("volume")))
    return d.drop("_region")


def _closed(d: pl.DataFrame, s: ScenarioDef) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows that start or end at a facility down that day, split off."""
    closed = []
    for c in s.change:
        if not isinstance(c, FacilityDown):
            continue
        mask = (pl.col("origin") == c.facility) | (pl.col("destination") == c.facility)
        if c.start is not None:
            mask &= pl.col("date") >= c.start
        if c.end is not None:
            mask &= pl.col("date") <= c.end
        closed.append(d.filter(mask).with_columns(facility=pl.lit(c.facility)))
        d = d.filter(~mask)
    frame = pl.concat([f.select(list(_CLOSED)) for f in closed]) if closed else None
    return d, frame if frame is not None else pl.DataFrame(schema=_CLOSED)


def _dated(
    base: Scenario,
    s: ScenarioDef,
    demand: pl.DataFrame,
    column: str,
    regions: pl.DataFrame,
    config: OptimizeConfig,
) -> _Dated:
    """The scenario per base date: demand arrays, network, and whether it changed."""
    net = _scenario_net(base.net, s, config)
    d, closed = _closed(_demand(prepare_demand(demand, column, base.net), s, regions), s)
    d = d.filter(pl.col("volume") > 0)
    index = {str(name): i for i, name in enumerate(base.net.names)}
    days: list[Day | None] = []
    nets, changed = [], []
    for bday in base.days:
        part = d.filter(pl.col("date") == bday.date)
        day = None
        if part.height:
            day = Day(
                bday.date,
                np.array([index[o] for o in part["origin"].to_list()], np.int64),
                np.array([index[t] for t in part["destination"].to_list()], np.int64),
                part["volume"].to_numpy(),
            )
        dnet = _date_net(base.net, net, s, bday.date)
        same = day is not None and all(
            np.array_equal(a, b) for a, b in zip(day[1:], bday[1:], strict=True)
        )
        days.append(day)
        nets.append(dnet)
        changed.append(not (same and dnet is base.net))
    return _Dated(s, days, nets, changed, closed, net)


def plan_scenarios(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    scenarios: ScenarioFile,
    column: str,
    *,
    planned: dict[str, str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    engine: Engine | None = None,
    source: str | None = None,
) -> ScenarioResult:
    """The base plan of `column` and one plan per scenario, with their comparison.

    `planned` maps a scenario's `column` to the demand table's column that holds it (a
    plain table plans `volume` for "forecast"); DataError (65) for a change naming what
    the data lacks, naming `source` (the scenario file) when given."""
    planned = planned or {}
    started = time.perf_counter()
    base = scenario(demand, nodes, lanes, config, column)
    lane_set = set(zip(lanes["origin"].to_list(), lanes["destination"].to_list(), strict=True))
    regions = nodes.select("node", pl.col("region").alias("_region"))
    dated = []
    for s in scenarios.scenario:
        try:  # the scenario file's error, not the demand's: say which file
            check_names(s, base.net, lane_set, set(regions["_region"].to_list()))
            col = planned.get(s.column, s.column) if s.column else column
            if col not in demand.columns:
                raise DataError(
                    f"scenario '{s.name}': key 'column' = {s.column!r} is not in demand."
                )
        except DataError as exc:
            raise DataError(f"{source}: {exc.message}" if source else exc.message) from None
        dated.append(_dated(base, s, demand, col, regions, config))
    tasks: list[tuple[Day, Network]] = [(d, base.net) for d in base.days]
    for sd in dated:
        tasks += [(d, n) for d, n, ch in zip(sd.days, sd.nets, sd.changed, strict=True) if ch and d]
    outcomes = solve_dates(
        [n for _, n in tasks],
        [d for d, _ in tasks],
        base.penalty,
        plan_config(config, [sd.net for sd in dated] + [base.net]),
        started,
        progress,
        engine,
        catch=True,
    )
    failed = [o for o in outcomes[: len(base.days)] if isinstance(o, Failed)]
    if failed:
        from mmplan.errors import InfeasibleError

        raise InfeasibleError(f"the base plan failed on {failed[0].date}: {failed[0].message}")
    base_out = outcomes[: len(base.days)]
    plan = assemble(base.net, base_out, base.penalty, config, column, base.scale, started, METHOD)
    dates = [str(d.date) for d in base.days]
    result = {BASE: ScenarioPlan(BASE, plan, plan.summary["status"], reused_dates=[])}
    result[BASE].resolved_dates = dates
    rest = iter(outcomes[len(base.days) :])
    for sd in dated:
        mine = [
            next(rest) if ch else base_out[i] if d is not None else None
            for i, (d, ch) in enumerate(zip(sd.days, sd.changed, strict=True))
        ]
        result[sd.spec.name] = _assemble_one(sd, mine, base, config, column, started)
    # One more truck a day where a budget binds, for every plan in one batch: what is left
    # of the run's limit, not a second one.
    budgeted = [Budgeted(plan, [base.net] * len(base.days), base.days)] + [
        Budgeted(
            sp.plan,
            [n for d, n in zip(sd.days, sd.nets, strict=True) if d is not None],
            [d for d in sd.days if d is not None],
        )
        for sd in dated
        if (sp := result[sd.spec.name]).plan is not None
    ]
    add_marginal_values(budgeted, base.penalty, config, engine, started)
    return ScenarioResult(result, comparison(result))


def _assemble_one(
    sd: _Dated,
    outcomes: list[Any],
    base: Scenario,
    config: OptimizeConfig,
    column: str,
    started: float,
) -> ScenarioPlan:
    """One scenario's plan from its dates' outcomes (reused or re-solved)."""
    s = sd.spec
    keep = [i for i, o in enumerate(outcomes) if o is not None]
    resolved = [str(base.days[i].date) for i in keep if sd.changed[i]]
    reused = [str(base.days[i].date) for i in keep if not sd.changed[i]]
    bad = [outcomes[i] for i in keep if isinstance(outcomes[i], Failed)]
    if bad:
        msg = f"{bad[0].date}: {bad[0].message}"
        return ScenarioPlan(s.name, None, "FAILED", msg, resolved, reused, sd.closed)
    try:
        plan = assemble(
            sd.net,
            [outcomes[i] for i in keep],
            base.penalty,
            config,
            s.column or column,
            base.scale,
            started,
            METHOD,
            nets=[sd.nets[i] for i in keep],
        )
    except MmplanError as exc:
        return ScenarioPlan(s.name, None, "FAILED", exc.message, resolved, reused, sd.closed)
    closed_volume = float(sd.closed["volume"].sum())
    plan.summary["totals"]["closed_facility_volume"] = closed_volume
    plan.summary["scenario"] = {
        "name": s.name,
        "description": s.description,
        "changes": [c.model_dump(mode="json") for c in s.change],
        "fleet": s.fleet.model_dump(mode="json") if s.fleet is not None else None,
        "resolved_dates": resolved,
        "reused_dates": reused,
        "closed_facility_volume": closed_volume,
    }
    return ScenarioPlan(s.name, plan, plan.summary["status"], "", resolved, reused, sd.closed)


def _binding(plan: Plan, top: int = 3) -> str:
    nodes = plan.nodes.filter(pl.col("capacity").is_not_null())
    ranked = (
        nodes.group_by("node")
        .agg(
            pl.col("utilization").max().alias("u"),
            pl.col("shadow_price").mean().alias("p"),
        )
        .filter(pl.col("u") >= 0.999)
        .sort(["p", "u", "node"], descending=[True, True, False], nulls_last=True)
        .head(top)
    )
    return ", ".join(ranked["node"].to_list())


def comparison(plans: dict[str, ScenarioPlan]) -> pl.DataFrame:
    """One row per scenario (base first): cost by component, trucks, unserved volume and
    penalty, closed-facility volume, most binding facilities, and deltas vs base."""
    rows = []
    for sp in plans.values():
        row: dict[str, Any] = {
            "scenario": sp.name,
            "status": sp.status,
            "message": sp.message,
            "dates_resolved": len(sp.resolved_dates),
            "dates_reused": len(sp.reused_dates),
        }
        t = sp.plan.summary["totals"] if sp.plan is not None else {}
        for key in (
            "truck_cost",
            "package_cost",
            "handling_cost",
            "extra_capacity_cost",
            "unserved_penalty_cost",
        ):
            row[key] = t.get(key)
        row["total_cost"] = sp.plan.summary["objective"] if sp.plan is not None else None
        row["trucks"] = t.get("trucks")
        row["peak_trucks"] = sp.plan.summary["fleet"]["peak"] if sp.plan is not None else None
        row["unserved_volume"] = t.get("unserved_volume")
        row["closed_facility_volume"] = float(sp.closed["volume"].sum()) if sp.closed.width else 0.0
        row["binding_facilities"] = _binding(sp.plan) if sp.plan is not None else None
        rows.append(row)
    frame = pl.DataFrame(rows, infer_schema_length=None)
    frame = frame.with_columns(pl.col(pl.Null).cast(pl.Float64))
    for key in ("total_cost", "trucks", "unserved_volume", "unserved_penalty_cost"):
        frame = frame.with_columns((pl.col(key) - pl.col(key).first()).alias(f"delta_{key}"))
    return frame
