"""Solving one date: the OR-Tools calls, the heuristics and the phases within its time share.

Per date (see the package docstring): the LP relaxation with the cuts (a bound, and every
heuristic's start); slope scaling with memory for a pool of plans (`search`); SCIP on the MIP
restricted to the pool's best plans' trucks (`restrict` when keyed by pair); SCIP on the full
MIP with the best plan as a hint; then the LP with trucks fixed at the plan's values, for the
facility shadow prices. With `deterministic` the phases stop on work limits (LP rounds, SCIP
nodes) and the date's deadline is only a hard bound; a date it cut is `timed_out`.
`solve_date` picks the commodity side (origins or destinations, whichever is fewer) and
runs it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from mmplan.config import OptimizeConfig
from mmplan.errors import InfeasibleError
from mmplan.plan import restrict
from mmplan.plan.demand import Day
from mmplan.plan.fleet import fleet_ok, fleet_rows
from mmplan.plan.model import Model, build_model
from mmplan.plan.network import Network
from mmplan.plan.search import neighbourhood, slope_search
from mmplan.plan.threads import NO_SIGINT, in_flight

# Shares of a date's time left after its LP by which each phase must end: slope scaling,
# the restricted MIP; the full MIP gets the rest (measured on the sample network).
_SLOPE_SHARE, _RESTRICTED_SHARE = 0.12, 0.55
# The restricted MIP is there to find plans, not to bound: without root cut rounds SCIP
# reaches its heuristics and branching sooner (6 s on three sample dates: 3.6k-10k better).
_RESTRICTED_SCIP = "separating/maxroundsroot = 0\n"


@dataclass
class Result:
    """What one solver call returned."""

    status: str
    values: np.ndarray | None
    objective: float
    bound: float
    duals: np.ndarray | None = None
    seconds: float = 0.0


# The full MIP's status when the date's share left it no time.
NOT_RUN = "NOT_RUN"
# The phase that produced a date's plan (summary.json per_date.phase).
MIP, RESTRICTED, SLOPE, SLOPE_RESTART, RELAXATION = (
    "mip",
    "restricted mip",
    "slope-scaling heuristic",
    "slope-scaling restart",
    "lp relaxation",
)


@dataclass
class DayOutcome:
    """One date's solved model: its values and how it got there."""

    model: Model
    values: np.ndarray
    objective: float
    bound: float
    status: str
    duals: np.ndarray | None
    timings: dict[str, float]
    heuristic: float
    phase: str = MIP  # which phase's plan this is (MIP, RESTRICTED, SLOPE, RELAXATION)
    mip_status: str = ""  # what the full MIP's solver returned ("" when it did not run)
    time_share: float = 0.0  # seconds this date was given
    started: float = 0.0  # seconds into the run when the date started
    timed_out: bool = False  # deterministic, but the clock stopped a phase (not a work limit)


class DateOutcome(NamedTuple):
    """A date's outcome with the pair ends the model saw: `src` is the commodity side (the
    origins, or the destinations when `reversed`), `dst` the other end."""

    date: Any
    reversed: bool
    src: np.ndarray
    dst: np.ndarray
    q: np.ndarray
    day: DayOutcome

    @property
    def po(self) -> np.ndarray:
        """Origin of each pair, in the network's own direction."""
        return self.dst if self.reversed else self.src

    @property
    def pt(self) -> np.ndarray:
        """Destination of each pair, in the network's own direction."""
        return self.src if self.reversed else self.dst


class Incumbent(NamedTuple):
    """A plan (all column values) and its objective."""

    values: np.ndarray
    objective: float


def helper(
    m: Model,
    integer: bool,
    lb: np.ndarray | None = None,
    ub: np.ndarray | None = None,
    obj: np.ndarray | None = None,
    pair_cuts: bool = True,
) -> Any:
    """The model in an OR-Tools ModelBuilderHelper (trucks integer when `integer`)."""
    import ortools.linear_solver.python.model_builder_helper as mbh

    A, rlo, rhi = m.A, m.rlo, m.rhi
    if not pair_cuts and len(m.pair_rows):
        keep = np.ones(A.shape[0], dtype=bool)
        keep[m.pair_rows] = False
        A, rlo, rhi = A[keep], rlo[keep], rhi[keep]
    h: Any = mbh.ModelBuilderHelper()  # its stubs misname ndarray's parameters
    h.fill_model_from_sparse_data(
        m.lb if lb is None else lb,
        m.ub if ub is None else ub,
        m.obj if obj is None else obj,
        rlo,
        rhi,
        A,
    )
    h.set_objective_offset(m.offset)
    if integer:
        for col in m.y_cols.tolist():  # one call per truck variable; no vectorized setter
            h.set_var_integrality(col, True)
    return h


def run(h: Any, solver: str, time_limit: float, params: str = "") -> Result:
    """Solve a ModelBuilderHelper with `solver`, interruptible by its run's Ctrl-C."""
    import ortools.linear_solver.python.model_builder_helper as mbh

    started = time.perf_counter()
    s: Any = mbh.ModelSolverHelper(solver)
    s.set_time_limit_in_seconds(max(time_limit, 1e-4))
    params = NO_SIGINT.get(solver, "") + params
    if params:
        s.set_solver_specific_parameters(params)
    with in_flight(s):
        s.solve(h)
    seconds = time.perf_counter() - started
    status = s.status()
    name = status.name if hasattr(status, "name") else str(status)
    if not s.has_solution():
        return Result(name, None, math.inf, -math.inf, seconds=seconds)
    values = s.variable_values()
    duals = None
    if solver in ("GLOP", "PDLP"):
        duals = s.dual_values()
    bound = s.best_objective_bound()
    obj = s.objective_value()
    if solver in ("GLOP", "PDLP") and name == "OPTIMAL":
        bound = obj
    return Result(name, np.asarray(values), obj, bound, duals, seconds)


def mip_params(solver: str, gap: float, threads: int, scale: float | None = None) -> str:
    """Stopping rule: relative gap, or when `scale` is given, gap * scale absolute.

    Unserved volume forced by capacity costs the same in every plan and in the bound, yet
    at its high penalty it can dwarf the operating cost; the gap is then measured against
    the operating cost (`scale`), or SCIP would stop on a plan far from the best.
    """
    if scale is not None:
        if solver == "SCIP":
            return f"limits/gap = 0\nlimits/absgap = {gap * scale}\n"
        return f"absolute_gap_limit:{gap * scale} num_workers:{threads}"
    if solver == "SCIP":
        return f"limits/gap = {gap}\n"
    return f"relative_gap_limit:{gap} num_workers:{threads}"


def _lp(
    m: Model,
    config: OptimizeConfig,
    time_limit: float,
    *,
    lb: np.ndarray | None = None,
    ub: np.ndarray | None = None,
    obj: np.ndarray | None = None,
) -> Result:
    return run(helper(m, False, lb=lb, ub=ub, obj=obj), config.lp_solver, time_limit)


def clean(m: Model, values: np.ndarray, net: Network, whole: bool = True) -> np.ndarray:
    """Whole trucks, and throughput exactly max(arrivals, departures) (never padded)."""
    v = values.copy()
    if whole:
        v[m.y_cols] = np.round(v[m.y_cols])
    # Solver noise can leave unserved volume a hair below 0 (a negative penalty cost).
    v[m.s_cols] = np.clip(v[m.s_cols], 0.0, m.ub[m.s_cols])
    x = np.maximum(v[: m.n_x], 0.0)
    arrive = np.bincount(net.ld[m.x_lane], weights=x, minlength=net.n)
    depart = np.bincount(net.lo[m.x_lane], weights=x, minlength=net.n)
    v[m.t_cols] = np.maximum(arrive, depart)[m.t_node]
    return v


def no_solution(solver: str, status: str, time_limit: float) -> str:
    """The InfeasibleError message for a solve that stopped without a plan."""
    return (
        f"{solver} stopped ({status}) without a feasible plan within {time_limit:.1f} s. "
        "Raise [optimize] time_limit, or plan fewer dates at a time."
    )


def whole_packages(
    net: Network, po: np.ndarray, pt: np.ndarray, q: np.ndarray, penalty: float
) -> Model:
    """The date in whole packages, for CP-SAT (it takes integer data only: on fractional
    demand it answers MODEL_INVALID): demand rounded up, truck, facility and added
    capacities rounded down. Its columns are the true model's, and any plan of it carries
    the true demand on the same trucks (`on_true_model`)."""
    from dataclasses import replace

    def down(a: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(a), np.floor(a + 1e-9), a)

    whole = replace(net, u=np.maximum(down(net.u), 1.0), cap=down(net.cap), extra=down(net.extra))
    return build_model(whole, po, pt, np.ceil(q - 1e-9), penalty)


def on_true_model(
    m: Model, mm: Model, values: np.ndarray, net: Network, config: OptimizeConfig, limit: float
) -> np.ndarray | None:
    """A plan of the whole-package model `mm` on the true model `m`: its trucks, with the
    flows of the LP on those trucks (None when that LP finds none in `limit`)."""
    if mm is m:
        return clean(m, values, net)
    lb, ub = m.lb.copy(), m.ub.copy()
    lb[m.y_cols] = ub[m.y_cols] = np.clip(np.round(values[m.y_cols]), 0.0, m.ub[m.y_cols])
    fixed = _lp(m, config, limit, lb=lb, ub=ub)
    if fixed.values is None:
        return None
    out = clean(m, fixed.values, net)
    out[m.y_cols] = lb[m.y_cols]
    return out


def _round_trucks(m: Model, values: np.ndarray, net: Network) -> np.ndarray:
    """Trucks that carry an LP's lane volumes: ceil(volume / truck capacity)."""
    load = np.bincount(
        np.searchsorted(m.y_lane, m.x_lane), weights=values[: m.n_x], minlength=m.n_y
    )
    u = m.y_cap
    y = np.ceil(load / u - 1e-6 * np.maximum(1.0, load / u))
    y = np.clip(y, 0, m.ub[m.y_cols])
    out = values.copy()
    out[m.y_cols] = y
    return clean(m, out, net)


def _floor_plan(
    m: Model, net: Network, config: OptimizeConfig, start: np.ndarray, deadline: float
) -> np.ndarray:
    """A plan within the fleet budgets: the LP's trucks rounded down (they keep every
    budget row the LP kept), then a truck more on the lanes with the largest fractions while
    every budget allows, with the flows of the LP on those trucks (mmplan.plan.fleet)."""
    y_lp = np.clip(start[m.y_cols], 0.0, m.ub[m.y_cols])
    y = np.floor(y_lp + 1e-6)
    rows = fleet_rows(net, m.y_lane)
    room = [limit - float(y[pos].sum()) for pos, limit in rows]
    member = [np.isin(np.arange(m.n_y), pos) for pos, _ in rows]
    frac = y_lp - y
    for a in np.argsort(-frac, kind="stable"):
        if frac[a] <= 1e-6:
            break
        full = any(r < 1 for r, mb in zip(room, member, strict=True) if mb[a])
        if full or y[a] + 1 > m.ub[m.y_cols][a]:
            continue
        y[a] += 1
        room = [r - 1 if mb[a] else r for r, mb in zip(room, member, strict=True)]
    lb, ub = m.lb.copy(), m.ub.copy()
    lb[m.y_cols] = ub[m.y_cols] = y
    fixed = _lp(m, config, max(deadline - time.perf_counter(), 1.0), lb=lb, ub=ub)
    values = start.copy() if fixed.values is None else fixed.values
    if fixed.values is None:  # no time: carry nothing, every package unserved
        values[: m.n_x] = 0.0
        values[m.s_cols] = m.ub[m.s_cols]
    out = clean(m, values, net)
    out[m.y_cols] = y
    return out


def _fleet_round(
    m: Model, net: Network, config: OptimizeConfig, values: np.ndarray, deadline: float
) -> np.ndarray:
    """The rounded plan of a flow; when rounding up breaks a fleet budget, the plan within
    the budgets that `_floor_plan` makes from the same flow."""
    plan = _round_trucks(m, values, net)
    if fleet_ok(net, m.y_lane, plan[m.y_cols]):
        return plan
    return _floor_plan(m, net, config, values, deadline)


def _hinted(h: Any, values: np.ndarray) -> Any:
    """Give the solver a full solution to start from (SCIP tries it as a first incumbent)."""
    for col, val in enumerate(values.tolist()):
        h.add_hint(col, val)
    return h


class _Start(NamedTuple):
    """What the phases before the full MIP leave it: the best plan so far (None when the LP
    found none), its objective, the LP bound, the operating cost the gap is measured
    against, which phase found the plan and whether a deadline cut a phase short."""

    hint: np.ndarray | None
    heuristic: float
    lp_bound: float
    scale: float | None
    phase: str = SLOPE
    timed_out: bool = False


def _operating_cost(m: Model, plan: Incumbent, penalty: float) -> float:
    return max(plan.objective - penalty * float(plan.values[m.s_cols].sum()), 1e-9)


def _node_limit(config: OptimizeConfig, nodes: int) -> str:
    """SCIP's work limit in deterministic mode (CP-SAT stops on its time limit)."""
    if config.deterministic and config.solver == "SCIP":
        return f"limits/totalnodes = {nodes}\n"
    return ""


def _hit(res: Result, limit: float) -> bool:
    """Did the wall clock, not a work limit or the gap, stop this solve?"""
    return res.status != "OPTIMAL" and res.seconds >= 0.97 * limit


def _restricted(
    m: Model,
    mm: Model,
    net: Network,
    pairs: restrict.Pairs,
    penalty: float,
    config: OptimizeConfig,
    best: Incumbent,
    ub_y: np.ndarray,
    limit: float,
    scale: float,
) -> tuple[np.ndarray | None, Result]:
    """SCIP on the MIP restricted to at most `ub_y` trucks per lane, from `best`: in
    disaggregated form (mmplan.plan.restrict) when it has at most disaggregate_columns
    flow columns, else on the date's own model. Returns the plan on `m` (None if none)."""
    started = time.perf_counter()
    params = (
        mip_params(config.solver, config.relative_gap / 10, 1, scale)
        + (_RESTRICTED_SCIP if config.solver == "SCIP" else "")
        + _node_limit(config, config.restricted_nodes)
    )
    small = restrict.columns(pairs, m, ub_y) <= config.disaggregate_columns
    r = restrict.build(m, net, pairs, penalty, ub_y) if small and mm is m else None
    if r is not None:
        h = helper(r.model, True)
        for col, val in restrict.hint(r, best.values, m).items():
            h.add_hint(col, val)
        sub = run(h, config.solver, limit, params)
        if sub.values is None:
            return None, sub
        trucks = best.values.copy()
        trucks[m.y_cols] = restrict.day_trucks(r, sub.values, m)
        left = config.time_limit - (time.perf_counter() - started)
        return on_true_model(m, r.model, trucks, net, config, left), sub
    ub = mm.ub.copy()
    ub[mm.y_cols] = ub_y
    sub = run(_hinted(helper(mm, True, ub=ub), best.values), config.solver, limit, params)
    if sub.values is None:
        return None, sub
    left = config.time_limit - (time.perf_counter() - started)
    return on_true_model(m, mm, sub.values, net, config, left), sub


def _first_plan(
    m: Model,
    mm: Model,
    flow: Model,
    net: Network,
    pairs: restrict.Pairs,
    penalty: float,
    config: OptimizeConfig,
    deadline: float,
) -> _Start:
    """The LP bound, slope-scaling plans (mmplan.plan.search), and SCIP's improvement of
    the best on the lanes of the pool's best plans (`mm` is the model the MIP solver sees:
    `m`, or its whole-package form for CP-SAT; `flow` is `m` without the cut rows)."""
    # The LP is the bound of last resort and every heuristic's start: it always runs to the
    # end (within the run's limit), even past the date's share, so every date has a plan.
    lp = _lp(m, config, config.time_limit)
    rest = max(deadline - time.perf_counter(), 0.0)
    base = time.perf_counter()
    if lp.values is None:
        return _Start(None, math.nan, -math.inf, None)
    lp_bound = lp.objective if lp.status == "OPTIMAL" else -math.inf
    det = config.deterministic

    def flow_lp(model: Model, obj: np.ndarray, limit: float) -> np.ndarray | None:
        return _lp(model, config, limit, obj=obj).values

    found = slope_search(
        m,
        flow,
        net,
        config,
        lp.values,
        deadline if det else base + _SLOPE_SHARE * rest,
        flow_lp,
        lambda v: _fleet_round(m, net, config, v, deadline),
    )
    best = Incumbent(found.best.values, found.best.objective)
    phase = SLOPE if found.found_in_pass == 0 else SLOPE_RESTART
    timed_out = det and found.timed_out
    scale = _operating_cost(m, best, penalty)
    # Neighbourhood search: the MIP restricted to the lanes (and trucks) of the pool's best
    # plans is small and tight; SCIP combines and improves them far faster than in the whole.
    ub = neighbourhood(m, found.pool, config.pool_size)
    left = (deadline if det else base + _RESTRICTED_SHARE * rest) - time.perf_counter()
    if left > 0.1:
        # SCIP overshoots its limit by up to a third while it completes the hint.
        cand, sub = _restricted(m, mm, net, pairs, penalty, config, best, ub, 0.75 * left, scale)
        timed_out = timed_out or (det and _hit(sub, 0.75 * left))
        if cand is not None:
            cand_obj = float(m.obj @ cand) + m.offset
            if cand_obj < best.objective:
                best, phase = Incumbent(cand, cand_obj), RESTRICTED
                # The gap limit is relative to the best plan's operating cost.
                scale = _operating_cost(m, best, penalty)
    elif det:
        timed_out = True
    return _Start(best.values, best.objective, lp_bound, scale, phase, timed_out)


def _full_mip(
    m: Model,
    mm: Model,
    net: Network,
    pairs: restrict.Pairs,
    penalty: float,
    config: OptimizeConfig,
    hint: np.ndarray | None,
    limit: float,
    scale: float | None,
) -> tuple[Result, np.ndarray | None]:
    """SCIP (or CP-SAT) on the full MIP from the best plan: keyed by demand pair when that
    has at most disaggregate_mip_columns flow columns (a far tighter LP), else the date's
    own model without the pair rounding cuts. Returns the result and its plan on `m`."""
    params = mip_params(config.solver, config.relative_gap, 1, scale)
    params += _node_limit(config, config.mip_nodes)
    small = len(pairs.q) * m.n_y <= config.disaggregate_mip_columns
    r = restrict.build(m, net, pairs, penalty, m.ub[m.y_cols]) if small and mm is m else None
    if r is None:
        h = helper(mm, True, pair_cuts=False)
        if hint is not None:
            _hinted(h, hint)
        res = run(h, config.solver, limit, params)
        values = (
            None if res.values is None else on_true_model(m, mm, res.values, net, config, limit)
        )
        return res, values
    h = helper(r.model, True, pair_cuts=False)
    if hint is not None:
        for col, val in restrict.hint(r, hint, m).items():
            h.add_hint(col, val)
    res = run(h, config.solver, limit, params)
    if res.values is None:
        return res, None
    trucks = np.zeros(m.n_cols)
    trucks[m.y_cols] = restrict.day_trucks(r, res.values, m)
    return res, on_true_model(m, r.model, trucks, net, config, limit)


def _relaxed_day(
    m: Model, config: OptimizeConfig, time_limit: float, timings: dict[str, float]
) -> DayOutcome:
    """The LP relaxation as the day's plan (--relax)."""
    res = _lp(m, config, max(time_limit, config.time_limit))  # the LP is the plan: never starve it
    timings["solve"] = res.seconds
    if res.values is None:
        raise InfeasibleError(no_solution(config.lp_solver, res.status, time_limit))
    return DayOutcome(
        model=m,
        values=res.values,
        objective=res.objective,
        bound=res.bound,
        status=res.status,
        duals=res.duals,
        timings=timings,
        heuristic=math.nan,
        phase=RELAXATION,
        mip_status=res.status,
    )


def solve_day(
    net: Network,
    po: np.ndarray,
    pt: np.ndarray,
    q: np.ndarray,
    penalty: float,
    config: OptimizeConfig,
    time_limit: float,
) -> DayOutcome:
    """Build, bound, heuristically solve and then MIP-solve one date's model, every phase
    within the date's `time_limit` (a phase with no time left is skipped)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    deadline = started + time_limit
    m = build_model(net, po, pt, q, penalty)
    mm = whole_packages(net, po, pt, q, penalty) if config.solver == "CP-SAT" else m
    flow = build_model(net, po, pt, q, penalty, strong=False)
    timings["build"] = time.perf_counter() - started
    if config.relax:
        return _relaxed_day(m, config, time_limit, timings)
    t0 = time.perf_counter()
    pairs = restrict.Pairs(po, pt, q)
    start = _first_plan(m, mm, flow, net, pairs, penalty, config, deadline)
    hint, heuristic = start.hint, start.heuristic
    timings["heuristic"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # SCIP overshoots its limit a little; leave room for the shadow-price LP.
    left = 0.85 * (deadline - time.perf_counter())
    res = Result(NOT_RUN, None, math.inf, -math.inf)
    values = None
    if left > 0.01:
        res, values = _full_mip(m, mm, net, pairs, penalty, config, hint, left, start.scale)
    timed_out = config.deterministic and (start.timed_out or left <= 0.01 or _hit(res, left))
    timings["solve"] = time.perf_counter() - t0
    objective = math.inf if values is None else float(m.obj @ values) + m.offset
    status, phase, mip_status = res.status, MIP, res.status
    if mm is not m and status == "OPTIMAL":
        # Optimal for whole packages; on the true demand only a plan, bounded by the LP.
        status, mip_status = "FEASIBLE", "OPTIMAL (whole packages)"
    if hint is not None and (values is None or heuristic < objective - 1e-9 * abs(objective)):
        values, status, phase = hint, "HEURISTIC", start.phase
    if values is None:
        raise InfeasibleError(no_solution(config.solver, res.status, time_limit))
    # CP-SAT's bound is the whole-package model's, not this one's: keep the LP's.
    mip_bound = res.bound if mm is m and math.isfinite(res.bound) else -math.inf
    bound = max(mip_bound, start.lp_bound)
    values = clean(m, values, net)
    objective = float(m.obj @ values) + m.offset
    # Shadow prices: the LP with trucks fixed at the plan's values.
    t0 = time.perf_counter()
    lb, ub = m.lb.copy(), m.ub.copy()
    lb[m.y_cols] = ub[m.y_cols] = values[m.y_cols]
    fixed = _lp(m, config, deadline - time.perf_counter(), lb=lb, ub=ub)
    timings["duals"] = time.perf_counter() - t0
    if fixed.values is not None and fixed.objective < objective - 1e-9 * abs(objective):
        # Re-routing on the same trucks is cheaper: keep the better flows.
        values = clean(m, fixed.values, net)
        values[m.y_cols] = lb[m.y_cols]
        objective = float(m.obj @ values) + m.offset
    return DayOutcome(
        model=m,
        values=values,
        objective=objective,
        bound=min(bound, objective),
        status=status,
        duals=fixed.duals,
        timings=timings,
        heuristic=heuristic,
        phase=phase,
        mip_status=mip_status,
        time_share=time_limit,
        timed_out=timed_out,
    )


def by_destination(po: np.ndarray, pt: np.ndarray) -> bool:
    """Key commodities by destination? Fewer keys give fewer commodities; destination keys
    solve the reversed network."""
    return len(np.unique(pt)) < len(np.unique(po))


def solve_date(
    day: Day, net: Network, penalty: float, config: OptimizeConfig, limit: float
) -> DateOutcome:
    """One date's plan, in a worker thread here or on a Dask worker (mmplan.engine)."""
    date, po, pt, q = day
    rev = by_destination(po, pt)
    n2 = net.reversed() if rev else net
    a, b = (pt, po) if rev else (po, pt)
    return DateOutcome(date, rev, a, b, q, solve_day(n2, a, b, q, penalty, config, limit))
