"""Monte Carlo of a plan against the forecast's distribution (`mmplan simulate`).

Demand samples (`sample_demand`), coherent across the hierarchy and correlated in time:

    parent (the lanes' origin) o, date t:  P_ot = max(F_ot + σ_ot ε_ot, 0),
        σ_ot = (hi_p - lo_p) / (2 z_p) of the origin's forecast row (z_p the normal quantile
        of the interval p, [simulate] interval), ε_o· an AR(1) series across dates with
        lag-1 autocorrelation ρ ([simulate] autocorrelation) and unit variance;
    lane l of o:  V_lt = P_ot · w_l m_lt / Σ_k∈o w_k m_kt,   w_l = F_lt / F_ot its share,
        m_lt = exp(τ_l ζ_lt - τ_l²/2) the lane's own noise, ζ AR(1) like ε, and
        τ_l = sqrt(max(σ_l² - w_l² σ_o², 0)) / F_l the part of the lane's own interval its
        parent's does not explain.

Lanes add up to their parent exactly in every sample, so every level above adds up too;
origins are drawn independently of each other. Without origin rows in the forecast, a
parent's σ is the sum of its lanes' (fully correlated, the cautious choice).

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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from mmplan.config import OptimizeConfig, SimulateConfig
from mmplan.errors import DataError
from mmplan.plan.network import Network, index_network
from mmplan.plan.recourse import RecourseTask, solve_dates
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

JOINT_MODEL = (
    "each origin's volume normal with sigma from its lo/hi width (truncated at 0), split over "
    "its lanes by their shares with the lanes' own lognormal noise; lag-1 autocorrelated "
    "across dates; lanes add up to their origin"
)


@dataclass
class DemandSamples:
    """Lane demand rows (date, origin, destination, forecast) and their samples."""

    rows: pl.DataFrame
    volume: np.ndarray  # (samples, rows)
    parents: pl.DataFrame  # origin, date, forecast
    parent_volume: np.ndarray  # (samples, parents)
    seed: int


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


def _ar1(rng: np.random.Generator, shape: tuple[int, int, int], rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along the last axis."""
    eta = rng.standard_normal(shape)
    out = np.empty(shape)
    out[..., 0] = eta[..., 0]
    scale = math.sqrt(1.0 - rho * rho)
    for t in range(1, shape[-1]):
        out[..., t] = rho * out[..., t - 1] + scale * eta[..., t]
    return out


def _interval(forecast: pl.DataFrame, p: int) -> tuple[str, str, float]:
    lo, hi = f"lo_{p}", f"hi_{p}"
    missing = [c for c in (lo, hi) if c not in forecast.columns]
    if missing:
        raise DataError(
            f"forecast has no column {', '.join(missing)} for [simulate] interval = {p}; its "
            "intervals are "
            + (", ".join(c for c in forecast.columns if c.startswith("hi_")) or "none")
            + ". Set [simulate] interval to one of them."
        )
    return lo, hi, NormalDist().inv_cdf(0.5 + p / 200)


def sample_demand(
    forecast: pl.DataFrame, config: SimulateConfig, samples: int, seed: int
) -> DemandSamples:
    """`samples` coherent demand samples from a forecast table (see the module docstring)."""
    if "level" not in forecast.columns or forecast.filter(pl.col("level") == "lane").is_empty():
        raise DataError("the forecast table has no lane-level rows to sample.")
    lo, hi, z = _interval(forecast, config.interval)
    sigma = ((pl.col(hi) - pl.col(lo)).clip(lower_bound=0) / (2 * z)).alias("sigma")
    lanes = (
        forecast.filter(pl.col("level") == "lane")
        .select("origin", "destination", "date", pl.col("forecast").clip(lower_bound=0), sigma)
        .sort("origin", "destination", "date")
    )
    parents = lanes.group_by("origin", "date").agg(
        pl.col("forecast").sum(), pl.col("sigma").sum().alias("lane_sigma")
    )
    own = forecast.filter(pl.col("level") == "origin").select(
        "origin", "date", sigma.alias("own_sigma")
    )
    parents = (
        parents.join(own, on=["origin", "date"], how="left")
        .with_columns(sigma=pl.coalesce("own_sigma", "lane_sigma"))
        .select("origin", "date", "forecast", "sigma")
        .sort("origin", "date")
    )
    dates = sorted(set(lanes["date"].to_list()))
    t_of = {d: i for i, d in enumerate(dates)}
    o_of = {o: i for i, o in enumerate(sorted(set(parents["origin"].to_list())))}
    rng = np.random.default_rng(seed)
    rho = config.autocorrelation
    eps = _ar1(rng, (samples, len(o_of), len(dates)), rho)
    p_o = np.array([o_of[o] for o in parents["origin"].to_list()])
    p_t = np.array([t_of[d] for d in parents["date"].to_list()])
    pf, ps = parents["forecast"].to_numpy(), parents["sigma"].to_numpy()
    parent_volume = np.maximum(pf + ps * eps[:, p_o, p_t], 0.0)
    # Lanes: shares of the parent with their own noise.
    series = lanes.select("origin", "destination").unique(maintain_order=True)
    s_of = {k: i for i, k in enumerate(series.iter_rows())}
    keys = list(zip(lanes["origin"].to_list(), lanes["destination"].to_list(), strict=True))
    l_s = np.array([s_of[k] for k in keys])
    l_t = np.array([t_of[d] for d in lanes["date"].to_list()])
    p_index = {(o, d): i for i, (o, d) in enumerate(zip(p_o, p_t, strict=True))}
    l_p = np.array(
        [p_index[(o_of[o], t)] for o, t in zip(lanes["origin"].to_list(), l_t, strict=True)]
    )
    lf, lsig = lanes["forecast"].to_numpy(), lanes["sigma"].to_numpy()
    w = np.divide(lf, pf[l_p], out=np.zeros(len(lf)), where=pf[l_p] > 0)
    resid = np.sqrt(np.maximum(lsig**2 - (w * ps[l_p]) ** 2, 0.0))
    tau = np.divide(resid, lf, out=np.zeros(len(lf)), where=lf > 0)
    tau = np.minimum(tau, 3.0)  # a lane forecast near zero with a wide interval
    zeta = _ar1(rng, (samples, len(s_of), len(dates)), rho)[:, l_s, l_t]
    wm = w * np.exp(tau * zeta - tau**2 / 2)
    group = sp.csr_matrix(
        (np.ones(len(l_p)), (np.arange(len(l_p)), l_p)), shape=(len(l_p), len(pf))
    )
    total = np.asarray(wm @ group)
    share = np.divide(wm, total[:, l_p], out=np.zeros_like(wm), where=total[:, l_p] > 0)
    volume = parent_volume[:, l_p] * share
    return DemandSamples(lanes.drop("sigma"), volume, parents.drop("sigma"), parent_volume, seed)


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
