"""Monte Carlo of a plan against the forecast's distribution (`mmplan simulate`).

Demand samples come from mmplan.plan.sampling (`sample_demand`): every level drawn from its
own interval top-down, so lanes add up to their origin and origins to the total in every
sample, and correlated across dates.

Recourse per sample (`simulate`): each date's LP with the plan's trucks and added capacity
fixed (flows and unserved volume only; mmplan.plan.recourse, with its demand at the
samples' largest) is built once and loaded into one GLOP solver; each sample changes only
the right-hand sides of the conservation rows and the unserved bounds and is re-solved from
the previous sample's basis with the dual simplex. Dates run in worker processes. Without
spot trucks the LP keeps only the lanes the plan has trucks on. Unserved volume is priced at
[simulate] shortfall_cost, not the model's penalty; with spot_premium set, trucks above the
plan's can be hired at that multiple of cost_per_truck (fractional: it is an LP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mmplan.config import OptimizeConfig, SimulateConfig
from mmplan.errors import DataError
from mmplan.plan.network import Network, index_network
from mmplan.plan.recourse import RecourseTask, solve_dates
from mmplan.plan.sampling import JOINT_MODEL, DemandSamples, sample_demand
from mmplan.plan.scenarios import scenario_networks
from mmplan.scenario_file import ScenarioDef

__all__ = [
    "DemandSamples",
    "PlanTables",
    "SimulationResult",
    "sample_demand",
    "simulate",
    "simulate_plans",
]


@dataclass
class PlanTables:
    """What a simulation reads of a plan: its trucks and facility rows, and for a scenario's
    plan the scenario whose network it was planned on."""

    trucks: pl.DataFrame
    nodes: pl.DataFrame
    scenario: ScenarioDef | None = None


@dataclass
class SimulationResult:
    """Per plan and sample its cost and unserved volume; service per pair and facility."""

    samples: pl.DataFrame
    pairs: pl.DataFrame
    facilities: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _lane_index(net: Network) -> dict[tuple[int, int], int]:
    return {(int(o), int(d)): a for a, (o, d) in enumerate(zip(net.lo, net.ld, strict=True))}


def _truck_vector(net: Network, index: dict[str, int], day: pl.DataFrame, name: str) -> np.ndarray:
    """The plan's trucks on one date, per lane of that date's network."""
    lane = _lane_index(net)
    trucks = np.zeros(len(net.lo))
    for o, d, t in day.select("origin", "destination", "trucks").iter_rows():
        a = lane.get((index.get(o, -1), index.get(d, -1)))
        if a is None:
            raise DataError(
                f"plan {name}: trucks.parquet has trucks on {o}->{d}, which is not a lane of "
                "the network it is simulated on (give the --lanes it was planned with)."
            )
        trucks[a] = t
    return trucks


def _networks(
    net: Network, plan: PlanTables, dates: list[Any], optimize: OptimizeConfig
) -> dict[Any, Network]:
    """The network of each of the plan's dates (and the simulation's): the base one, or
    for a scenario's plan the scenario's on that date (mmplan.plan.scenarios)."""
    every = sorted({*dates, *plan.trucks["date"].unique().to_list()})
    if plan.scenario is None:
        return dict.fromkeys(every, net)
    return scenario_networks(net, plan.scenario, every, optimize)


def _plan_tasks(
    name: str,
    plan: PlanTables,
    nets: dict[Any, Network],
    rows: pl.DataFrame,
    volume: np.ndarray,
    config: SimulateConfig,
) -> tuple[list[tuple[Any, np.ndarray, RecourseTask]], float]:
    """One plan's recourse task per date with demand (and the demand rows it routes), and
    the plan's truck cost (trucks x cost_per_truck of their date's network), paid whatever
    the demand."""
    index = {str(n): i for i, n in enumerate(next(iter(nets.values())).names)}
    tasks, fixed = [], 0.0
    for date, net in nets.items():
        day = plan.trucks.filter(pl.col("date") == date)
        trucks = _truck_vector(net, index, day, name)
        fixed += float(trucks @ net.f)
        part = rows.filter(pl.col("date") == date)
        r = part["_r"].to_numpy()
        if len(r) == 0:
            continue
        q_env = volume[:, r].max(axis=0)
        keep = q_env > 0
        if not keep.any():
            continue
        added = np.zeros(net.n)
        dn = plan.nodes.filter(pl.col("date") == date)
        for node, z in dn.select("node", "added_capacity").iter_rows():
            added[index[node]] = z or 0.0
        po = np.array([index[o] for o in part["origin"].to_list()], np.int64)[keep]
        pt = np.array([index[t] for t in part["destination"].to_list()], np.int64)[keep]
        task = RecourseTask(net, po, pt, q_env[keep], trucks, added, config, volume[:, r[keep]])
        tasks.append((date, r[keep], task))
    return tasks, fixed


def simulate(
    plans: dict[str, PlanTables],
    demand: DemandSamples,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    optimize: OptimizeConfig,
    config: SimulateConfig,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> SimulationResult:
    """Route every demand sample on each plan's trucks; see the module docstring. Every
    plan's dates are solved together, in worker processes."""
    net = index_network(nodes, lanes, optimize)
    index = {str(n): i for i, n in enumerate(net.names)}
    unknown = sorted(
        {*demand.rows["origin"].to_list(), *demand.rows["destination"].to_list()} - set(index)
    )
    if unknown:
        raise DataError(
            f"forecast names facilities that are not in the nodes: {', '.join(unknown[:5])}."
        )
    rows = demand.rows.with_row_index("_r")
    dates = sorted(set(rows["date"].to_list()))
    S = demand.volume.shape[0]
    tasks: list[tuple[str, Any, np.ndarray, RecourseTask]] = []
    fixed: dict[str, float] = {}
    for name, plan in plans.items():
        mine, fixed[name] = _plan_tasks(
            name, plan, _networks(net, plan, dates, optimize), rows, demand.volume, config
        )
        tasks += [(name, *task) for task in mine]

    def done(ended: int, j: int) -> None:
        if progress is not None:
            progress(ended, len(tasks), f"{tasks[j][0]}: {tasks[j][1]}")

    outs = solve_dates([t for *_, t in tasks], optimize.workers, done)
    per_plan = []
    for name in plans:
        short = np.zeros_like(demand.volume)
        cost, spot = np.zeros(S), np.zeros(S)
        for (owner, _, r, _), out in zip(tasks, outs, strict=True):
            if owner == name:
                short[:, r] = out.unserved
                cost += out.cost
                spot += out.spot_trucks
        per_plan.append((name, cost + fixed[name], fixed[name], short, spot))
    return _result(per_plan, demand, config)


def _result(per_plan: list[Any], demand: DemandSamples, config: SimulateConfig) -> SimulationResult:
    """The samples, pairs and facilities tables and the summary of every plan."""
    S = demand.volume.shape[0]
    total_demand = demand.volume.sum(axis=1)
    sample_rows, pair_rows_, fac_rows = [], [], []
    summary: dict[str, Any] = {
        "samples": S,
        "seed": demand.seed,
        "joint_model": JOINT_MODEL,
        "shortfall_cost": config.shortfall_cost,
        "spot_premium": config.spot_premium,
        "demand": {
            "forecast_total": float(demand.rows["forecast"].sum()),
            "sampled_mean_total": float(total_demand.mean()),
            "sampled_sd_total": float(total_demand.std(ddof=1)) if S > 1 else 0.0,
        },
        "plans": {},
    }
    keys = demand.rows.select("origin", "destination")
    for name, cost, fixed, short, spot in per_plan:
        unserved = short.sum(axis=1)
        any_short = unserved > 1e-6 * np.maximum(total_demand, 1.0)
        sample_rows.append(
            pl.DataFrame(
                {
                    "plan": [name] * S,
                    "sample": np.arange(S),
                    "total_cost": cost,
                    "truck_cost": np.full(S, fixed),
                    "shortfall_cost": unserved * config.shortfall_cost,
                    "spot_trucks": spot,
                    "demand": total_demand,
                    "unserved_volume": unserved,
                }
            )
        )
        long = keys.with_columns(
            demand=pl.Series(demand.volume.mean(axis=0)),
            unserved=pl.Series(short.mean(axis=0)),
            short=pl.Series((short > 1e-9).mean(axis=0)),
        )
        pairs = long.group_by("origin", "destination").agg(
            pl.col("demand").sum(),
            pl.col("unserved").sum(),
            pl.col("short").max().alias("p_short_any_date"),
        )
        pairs = pairs.with_columns(
            plan=pl.lit(name),
            service_level=1 - pl.col("unserved") / pl.col("demand").clip(lower_bound=1e-12),
        ).sort("origin", "destination")
        pair_rows_.append(pairs)
        ends = pl.concat(
            [
                long.select(pl.col("origin").alias("facility"), "demand", "unserved"),
                long.select(pl.col("destination").alias("facility"), "demand", "unserved"),
            ]
        )
        fac = ends.group_by("facility").agg(pl.col("demand").sum(), pl.col("unserved").sum())
        fac_rows.append(
            fac.with_columns(
                plan=pl.lit(name),
                service_level=1 - pl.col("unserved") / pl.col("demand").clip(lower_bound=1e-12),
            ).sort("facility")
        )
        summary["plans"][name] = {
            "p_any_unserved": float(any_short.mean()),
            "expected_unserved_volume": float(unserved.mean()),
            "expected_shortfall_cost": float(unserved.mean() * config.shortfall_cost),
            "expected_spot_trucks": float(spot.mean()),
            "cost_mean": float(cost.mean()),
            "cost_p50": float(np.quantile(cost, 0.5)),
            "cost_p90": float(np.quantile(cost, 0.9)),
            "cost_p99": float(np.quantile(cost, 0.99)),
            "truck_cost": fixed,
            "service_level": float(1 - unserved.sum() / max(total_demand.sum(), 1e-12)),
            "worst_pairs": pairs.sort("service_level")
            .head(5)
            .select("origin", "destination", "service_level")
            .to_dicts(),
        }
    order = ["plan"]
    return SimulationResult(
        samples=pl.concat(sample_rows),
        pairs=pl.concat(pair_rows_).select(
            order
            + ["origin", "destination", "demand", "unserved", "service_level", "p_short_any_date"]
        ),
        facilities=pl.concat(fac_rows).select(
            order + ["facility", "demand", "unserved", "service_level"]
        ),
        summary=summary,
    )


def simulate_plans(
    plans: dict[str, PlanTables],
    forecast: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    optimize: OptimizeConfig,
    config: SimulateConfig,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    engine: Any = None,
) -> SimulationResult:
    """`config.samples` samples of `forecast` (seed `config.seed`), routed on every plan's
    trucks: the same samples for every plan, so plans compare side by side."""
    del engine  # the samples run on this machine's `workers` threads
    demand = sample_demand(forecast, config, config.samples, config.seed)
    return simulate(plans, demand, nodes, lanes, optimize, config, progress=progress)
