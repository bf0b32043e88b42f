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
fixed (flows and unserved volume only, mmplan.plan.model with its demand at the samples'
largest) is built once; between samples only the right-hand sides of the conservation rows
and the unserved bounds change (OR-Tools' setters on the same model, no rebuild). Without
spot trucks the LP keeps only the lanes the plan has trucks on. Unserved volume is priced at
[simulate] shortfall_cost, not the model's penalty; with spot_premium set, trucks above the
plan's can be hired at that multiple of cost_per_truck (fractional: it is an LP).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from mmplan.config import OptimizeConfig, SimulateConfig
from mmplan.errors import DataError
from mmplan.plan.model import build_model, pair_rows
from mmplan.plan.network import Network, index_network
from mmplan.plan.solve import by_destination, helper, run
from mmplan.plan.threads import map_on_threads

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
    """What a simulation reads of a plan: its trucks and facility rows."""

    trucks: pl.DataFrame
    nodes: pl.DataFrame


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


@dataclass
class _DateLP:
    """One date's fixed-truck LP, built once, and where each pair's demand enters it."""

    h: Any
    s_cols: np.ndarray
    y_cols: np.ndarray
    rows_o: np.ndarray
    rows_d: np.ndarray
    changed_rows: np.ndarray
    n_rows: int
    plan_y: np.ndarray
    f_y: np.ndarray
    offset: float  # what the LP's objective counts that is not recourse (spot: plan trucks)
    spot: bool = False


def _date_lp(
    net: Network,
    po: np.ndarray,
    pt: np.ndarray,
    q_env: np.ndarray,
    trucks: np.ndarray,
    added: np.ndarray,
    config: SimulateConfig,
) -> _DateLP:
    """The date's LP with the plan's trucks (per lane) and added capacity (per node) fixed."""
    if config.spot_premium is None:
        # Lanes without trucks carry nothing: the LP keeps only the plan's lanes (on the
        # default sample network that is 10x fewer columns and 20x faster).
        keep = trucks > 0
        owner = net.owner if net.owner is not None else net.lo
        net = replace(
            net,
            lo=net.lo[keep],
            ld=net.ld[keep],
            u=net.u[keep],
            f=net.f[keep],
            c=net.c[keep],
            maxt=net.maxt[keep],
            owner=owner[keep],
        )
        trucks = trucks[keep]
    rev = by_destination(po, pt)
    n2 = net.reversed() if rev else net
    a, b = (pt, po) if rev else (po, pt)
    m = build_model(n2, a, b, q_env, config.shortfall_cost, strong=False)
    lb, ub, obj = m.lb.copy(), m.ub.copy(), m.obj.copy()
    plan_y = trucks[m.y_lane]
    lb[m.y_cols] = plan_y
    obj[m.y_cols] = 0.0
    offset = 0.0
    if config.spot_premium is not None:
        ub[m.y_cols] = np.maximum(
            np.where(np.isfinite(net.maxt[m.y_lane]), net.maxt[m.y_lane], np.inf), plan_y
        )
        obj[m.y_cols] = config.spot_premium * net.f[m.y_lane]
        offset = float(obj[m.y_cols] @ plan_y)
    else:
        ub[m.y_cols] = plan_y
    zc = m.n_x + m.n_y + np.arange(m.n_z)
    lb[zc] = ub[zc] = np.minimum(added[m.z_node], m.ub[zc])
    rows_o, rows_d = pair_rows(m, n2, a, b)
    return _DateLP(
        helper(m, False, lb=lb, ub=ub, obj=obj),
        m.s_cols,
        m.y_cols,
        rows_o,
        rows_d,
        np.unique(np.concatenate([rows_o, rows_d])),
        m.A.shape[0],
        plan_y,
        net.f[m.y_lane],
        offset,
        config.spot_premium is not None,
    )


def _solve_samples(lp: _DateLP, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample (rows of q): the LP's recourse cost, unserved per pair, spot trucks. The
    model is the date's one; between samples only row bounds and unserved upper bounds
    change. (An MPSolver keeping GLOP's basis between samples was measured too: no faster
    on the sample network, and its solve holds the GIL, where this one runs in parallel.)"""
    h = lp.h
    n = q.shape[0]
    cost, spot = np.zeros(n), np.zeros(n)
    short = np.zeros_like(q)
    rows = lp.changed_rows.tolist()
    s_cols = lp.s_cols.tolist()
    for i in range(n):
        rhs = np.bincount(lp.rows_o, q[i], lp.n_rows) - np.bincount(lp.rows_d, q[i], lp.n_rows)
        for r in rows:
            h.set_constraint_lower_bound(r, rhs[r])
            h.set_constraint_upper_bound(r, rhs[r])
        for col, v in zip(s_cols, q[i].tolist(), strict=True):
            h.set_var_upper_bound(col, v)
        res = run(h, "GLOP", 600.0)
        if res.values is None:
            raise RuntimeError(f"the fixed-truck LP found no solution ({res.status})")
        cost[i] = res.objective - lp.offset
        short[i] = np.clip(res.values[lp.s_cols], 0.0, q[i])
        spot[i] = float((res.values[lp.y_cols] - lp.plan_y).clip(min=0).sum())
    return cost, short, spot


def _fixed_cost(net: Network, index: dict[str, int], trucks: pl.DataFrame) -> float:
    """The plan's truck cost (trucks x cost_per_truck), paid whatever the demand."""
    lane = {(int(o), int(d)): a for a, (o, d) in enumerate(zip(net.lo, net.ld, strict=True))}
    total = 0.0
    for o, d, t in trucks.select("origin", "destination", "trucks").iter_rows():
        total += float(net.f[lane[(index[o], index[d])]]) * t
    return total


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
    """Route every demand sample on each plan's trucks; see the module docstring."""
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
    lane = {(int(o), int(d)): a for a, (o, d) in enumerate(zip(net.lo, net.ld, strict=True))}
    S = demand.volume.shape[0]
    per_plan = []
    for name, plan in plans.items():
        tasks = []
        for date in dates:
            part = rows.filter(pl.col("date") == date)
            r = part["_r"].to_numpy()
            q_env = demand.volume[:, r].max(axis=0)
            keep = q_env > 0
            trucks = np.zeros(len(net.lo))
            day = plan.trucks.filter(pl.col("date") == date)
            for o, d, t in day.select("origin", "destination", "trucks").iter_rows():
                trucks[lane[(index[o], index[d])]] = t
            added = np.zeros(net.n)
            dn = plan.nodes.filter(pl.col("date") == date)
            for node, z in dn.select("node", "added_capacity").iter_rows():
                added[index[node]] = z or 0.0
            po = np.array([index[o] for o in part["origin"].to_list()], np.int64)[keep]
            pt = np.array([index[t] for t in part["destination"].to_list()], np.int64)[keep]
            tasks.append((r[keep], po, pt, q_env[keep], trucks, added))

        def one(
            i: int, tasks: list[Any] = tasks, name: str = name
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            r, po, pt, q_env, trucks, added = tasks[i]
            if len(r) == 0:
                return np.zeros(S), np.zeros((S, 0)), np.zeros(S)
            lp = _date_lp(net, po, pt, q_env, trucks, added, config)
            out = _solve_samples(lp, demand.volume[:, r])
            if progress is not None:
                progress(i + 1, len(tasks), f"{name}: {dates[i]}")
            return out

        outs = map_on_threads(one, len(tasks), optimize.workers)
        short = np.zeros_like(demand.volume)
        cost = np.zeros(S)
        spot = np.zeros(S)
        for (r, *_), (c, s, k) in zip(tasks, outs, strict=True):
            short[:, r] = s
            cost += c
            spot += k
        fixed = _fixed_cost(net, index, plan.trucks)
        per_plan.append((name, cost + fixed, fixed, short, spot))
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
