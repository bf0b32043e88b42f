"""Truck and routing plan: a fixed-charge multicommodity network design MIP per date.

Formulation, solved independently for every date (days share no variables):

    Sets      N facilities, T ⊆ N transit facilities (kind in config.transit_kinds),
              A lanes a = (i, j), P demand pairs p = (o, t) with volume d_p,
              K commodities: one per origin o (or per destination, whichever is fewer that
              day; the destination case is the same model on the reversed network).
    Variables x_ka >= 0  volume of commodity k on lane a      (only where lane a can carry k:
                         i = k or i ∈ T, and j ∈ T or j is a destination of k)
              y_a ∈ Z+   trucks on lane a,      y_a <= max_trucks_a
              z_n >= 0   capacity added at n,   z_n <= extra_capacity_n
              s_p >= 0   unserved volume of pair p, s_p <= d_p
    Flow      Σ_a∈out(n) x_ka - Σ_a∈in(n) x_ka = Σ_t (d_kt - s_kt)  at n = k
                                                 = -(d_kn - s_kn)     at n ≠ k
    Trucks    Σ_k x_ka <= u_a y_a                    (u_a = truck_capacity)
              x_ka <= min(b_ka, u_a) y_a             (strong linking; b_ka = the most of k
                                                      that can use a: d_kj if j ∉ T, else
                                                      Σ d_kt over t reachable from j)
    Capacity  θ_n >= Σ_a∈in(n) Σ_k x_ka,  θ_n >= Σ_a∈out(n) Σ_k x_ka,  θ_n <= cap_n + z_n
              throughput θ_n = packages sorted at n: the larger of the volume arriving and
              the volume leaving on lanes (as `mmplan sample` sizes capacities; a package
              passing through counts once, one starting or ending at n counts once)
    Fleet     Σ_a y_a <= F,  Σ_{a ∈ out(o)} y_a <= F_o   ([optimize.fleet]; trucks in use
              per day network-wide and per origin facility o, when set)
    Objective min Σ_a f_a y_a + Σ_ka c_a x_ka + Σ_n h_n θ_n + Σ_n e_n z_n + Σ_p π s_p

Unserved volume is allowed at penalty π, by default one more than the dearest path a package
can take (the longest simple path, |T|+1 lanes, priced at the top lane costs with a whole
truck each, plus handling and added capacity at every facility on it), so volume goes
unserved only when capacity truly runs out.

Besides strong linking, lanes into a delivery station get residual-capacity cuts
x_ka - r·y_a <= b - r·ceil(b/u_a), r = b - (ceil(b/u_a) - 1)·u_a, for commodities needing more
than one truck; a demand D_kt ending at a transit facility t with a lane a = (k, t) gets the
rounding cut y_a + (Σ_{b∈in(t), b≠a} x_kb + s_kt) / (f·u_a) >= ceil(D_kt/u_a), f = frac(D_kt/u_a)
(a partly filled last truck is paid whole or avoided by re-routing). `transit_days` is
ignored: every lane delivers on the day it ships, which is what makes the dates independent.

Method per date: the LP relaxation with those cuts (a lower bound); slope scaling with
long-term memory for a pool of plans (re-solve the flow LP with each lane's truck cost
spread over the volume it carries, round trucks up; then restarted passes that diversify
from or intensify around the lanes used most: `search`); SCIP on the MIP restricted to the
trucks of the pool's best plans (y <= max over them: a small, tight neighbourhood; no root
cut rounds, it is there to find plans; keyed by demand pair, x_pa <= min(d_p, u_a) y_a, when
small enough: `restrict`); then SCIP on the full MIP (without the pair rounding cuts, which
its own root cuts match) with the best plan as a hint, for the bound and further
improvement, until the relative gap, SCIP's node limits (`deterministic`, the default) or
else the date's share of the time limit; the time limit always bounds the run. Dates run in
parallel on `workers` threads (SCIP and GLOP release the GIL); a date's share is what is
left divided among the dates not yet started. Every plan is checked independently of the
model (conservation per pair, lane and facility capacity, whole trucks, transit kinds)
before it is returned. Facility shadow prices are the duals of the capacity rows of the LP
with trucks fixed at the plan's values (with --relax: of the relaxation itself).

The package, in the order a run goes through it: `network` (the nodes and lanes as arrays),
`demand` (the rows to plan, per date), `model` (one date's MIP), `threads` (Ctrl-C-safe
solving threads), `search` (slope scaling and the plan pool), `restrict` (the pair-keyed
restricted MIP), `solve` (one date's phases), `parallel` (the dates across threads or a
Dask engine), `paths` (per-pair paths from commodity flows), `check` (the plan's own
check), `assemble` (the plan tables and summary) and `unserved` (why volume went
unserved, per pair); beside them `fleet` and `marginal` (fleet budgets and one more truck),
`grain` (week and month plans in loads: the fleet and capacity per period),
`scenarios` (scenario files: changed dates re-solved, the rest reused), `simulation` (the
plan against the forecast's distribution) and `promise` (path days and promised days).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl

from mmplan.config import OptimizeConfig
from mmplan.plan.assemble import METHOD, Plan, assemble
from mmplan.plan.demand import DemandColumns, demand_columns, demand_rows, scenario
from mmplan.plan.marginal import Budgeted, add_marginal_values, plan_config
from mmplan.plan.network import default_penalty
from mmplan.plan.parallel import solve_dates
from mmplan.plan.scenarios import ScenarioResult, plan_scenarios

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "Plan",
    "optimize",
    "optimize_scenarios",
    "plan_scenarios",
    "ScenarioResult",
    "demand_rows",
    "DemandColumns",
    "demand_columns",
    "default_penalty",
]


def optimize(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    column: str | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    engine: Engine | None = None,
) -> Plan:
    """Plan trucks and routes for every date in `demand`; see the module docstring.

    Dates are solved separately in parallel, on `workers` threads here or, with a Dask
    `engine` (mmplan.engine), on the cluster's workers. `progress` (done, total, label) is
    called as dates finish, for a progress bar.
    """
    column = column or config.column
    return optimize_scenarios(
        demand, nodes, lanes, config, [column], progress=progress, engine=engine
    )[column]


def optimize_scenarios(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    columns: list[str],
    *,
    progress: Callable[[int, int, str], None] | None = None,
    engine: Engine | None = None,
) -> dict[str, Plan]:
    """One plan per demand column (scenarios such as forecast, hi_80, hi_95), by column.

    Every (scenario, date) is its own MIP: they are solved together, in parallel on the
    engine, and share `time_limit` as one run's dates do. With `config.grain` week or
    month, `demand` holds that grain's rows and each period is planned in loads
    (mmplan.plan.grain).
    """
    if config.grain != "day":  # one MIP per week or month, trucks as loads
        from mmplan.plan.grain import optimize_grain

        return optimize_grain(
            demand, nodes, lanes, config, columns, progress=progress, engine=engine
        )
    started = time.perf_counter()
    parts = {c: scenario(demand, nodes, lanes, config, c) for c in dict.fromkeys(columns)}
    net, _, penalty, _ = next(iter(parts.values()))
    tasks = [(c, day) for c, part in parts.items() for day in part.days]
    outcomes = solve_dates(
        net,
        [day for _, day in tasks],
        penalty,
        plan_config(config, [net]),
        started,
        progress,
        engine,
    )
    plans = {
        c: assemble(
            net,
            [o for (tc, _), o in zip(tasks, outcomes, strict=True) if tc == c],
            penalty,
            config,
            c,
            part.scale,
            started,
            METHOD,
        )
        for c, part in parts.items()
    }
    # One more truck a day, where a fleet budget binds: one batch, in what is left of the limit.
    budgeted = [
        Budgeted(plan, [net] * len(parts[c].days), parts[c].days) for c, plan in plans.items()
    ]
    add_marginal_values(budgeted, penalty, config, engine, started)
    return plans
