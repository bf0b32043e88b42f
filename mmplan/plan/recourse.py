"""The recourse LP of `mmplan simulate`: one date's flows with the plan's trucks fixed.

Formulation (mmplan.plan.model's, with y and z fixed): for the date's pairs p = (o, t) with
sampled volume q_p, commodity flows x_ka on the plan's lanes, unserved s_p, throughput θ_n

    min  Σ c_a x_ka + Σ h_n θ_n + shortfall_cost Σ s_p  (+ spot trucks, when priced)
    s.t. flow conservation of every commodity, with q_p - s_p leaving o and reaching t;
         Σ_k x_ka <= u_a y_a (y_a the plan's trucks); θ_n >= arrivals, departures;
         θ_n <= cap_n + z_n (z_n the plan's added capacity); 0 <= s_p <= q_p.

Only the right-hand sides (conservation rows) and the bounds of s change between samples,
so the LP is loaded once per date into one GLOP solver and each sample is a re-solve from
the previous sample's optimal basis with the dual simplex (that basis stays dual feasible
when only right-hand sides change; presolve is off, or GLOP would rebuild the problem and
start cold). Each answer is the LP's optimum, as a cold solve's. OR-Tools' MPSolver holds
the GIL while it solves, so dates run in worker processes (`solve_dates`) rather than
threads when there are enough of them to pay for starting the processes.

A path-based LP (each pair on its paths over the plan's lanes) was measured and not kept:
the plan's sort-center-to-sort-center lanes make the simple paths explode (68,715 to
1,645,006 per date on the default sample network, up to 40,353 for one pair), so an exact
path LP is bigger than this arc LP, and one over a few paths per pair is not exact.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmplan.config import SimulateConfig
from mmplan.plan.model import build_model, pair_rows
from mmplan.plan.network import Network
from mmplan.plan.solve import by_destination

__all__ = [
    "RecourseLP",
    "RecourseOutcome",
    "RecourseTask",
    "build_recourse",
    "solve_recourse",
    "solve_dates",
]

# Below this many LPs in a run, starting worker processes and copying the tasks to them
# costs more than it saves.
PROCESS_MIN_LPS = 400
# GLOP's settings for re-solves: keep the problem as loaded (no presolve) and re-optimise
# with the dual simplex from the last basis.
WARM = "use_preprocessing:false use_dual_simplex:true"


@dataclass
class RecourseLP:
    """One date's fixed-truck LP as sparse arrays, and where each pair's volume enters it."""

    lb: np.ndarray
    ub: np.ndarray
    obj: np.ndarray
    A: sp.csr_matrix
    rlo: np.ndarray
    rhi: np.ndarray
    s_cols: np.ndarray  # unserved column of each pair
    y_cols: np.ndarray
    rows_o: np.ndarray  # conservation row of each pair's commodity end (+q)
    rows_d: np.ndarray  # and of its other end (-q)
    changed_rows: np.ndarray
    plan_y: np.ndarray
    offset: float  # what the objective counts that is not recourse (spot: the plan's trucks)
    spot: bool = False  # can trucks be hired above the plan's


@dataclass
class RecourseTask:
    """What a worker needs to build one date's LP (`build_recourse`) and route its samples."""

    net: Network
    po: np.ndarray
    pt: np.ndarray
    q_env: np.ndarray
    trucks: np.ndarray
    added: np.ndarray
    config: SimulateConfig
    q: np.ndarray  # (samples, pairs)

    def solve(self) -> RecourseOutcome:
        args = (self.net, self.po, self.pt, self.q_env, self.trucks, self.added, self.config)
        return solve_recourse(build_recourse(*args), self.q)


@dataclass
class RecourseOutcome:
    """Per sample: recourse cost, unserved volume per pair, spot trucks hired."""

    cost: np.ndarray
    unserved: np.ndarray  # (samples, pairs)
    spot_trucks: np.ndarray


def build_recourse(
    net: Network,
    po: np.ndarray,
    pt: np.ndarray,
    q_env: np.ndarray,
    trucks: np.ndarray,
    added: np.ndarray,
    config: SimulateConfig,
) -> RecourseLP:
    """The date's LP with the plan's trucks (per lane) and added capacity (per node) fixed,
    its commodity lanes those the samples' largest demand (`q_env`) could use."""
    if config.spot_premium is None:
        # Lanes without trucks carry nothing: the LP keeps only the plan's lanes (on the
        # default sample network that is 10x fewer columns and 20x faster).
        keep = trucks > 0
        net = net.keep_lanes(keep)
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
        maxt = net.maxt[m.y_lane]
        ub[m.y_cols] = np.maximum(np.where(np.isfinite(maxt), maxt, np.inf), plan_y)
        obj[m.y_cols] = config.spot_premium * net.f[m.y_lane]
        offset = float(obj[m.y_cols] @ plan_y)
    else:
        ub[m.y_cols] = plan_y
    zc = m.n_x + m.n_y + np.arange(m.n_z)
    lb[zc] = ub[zc] = np.minimum(added[m.z_node], m.ub[zc])
    rows_o, rows_d = pair_rows(m, n2, a, b)
    return RecourseLP(
        lb,
        ub,
        obj,
        m.A.tocsr(),
        m.rlo,
        m.rhi,
        m.s_cols,
        m.y_cols,
        rows_o,
        rows_d,
        np.unique(np.concatenate([rows_o, rows_d])),
        plan_y,
        offset,
        config.spot_premium is not None,
    )


def _ortools() -> tuple[Any, Any]:
    """OR-Tools' MPModelProto module and pywraplp (imported here: `mmplan --help` stays
    instant; through import_module, as their stubs do not declare them)."""
    from importlib import import_module

    pb2 = import_module("ortools.linear_solver.linear_solver_pb2")
    return pb2, import_module("ortools.linear_solver.pywraplp")


def _load(lp: RecourseLP) -> Any:
    """A GLOP MPSolver holding the LP (through its model proto: no per-term calls)."""
    pb2, pywraplp = _ortools()
    proto = pb2.MPModelProto()
    for lo, hi, c in zip(lp.lb.tolist(), lp.ub.tolist(), lp.obj.tolist(), strict=True):
        proto.variable.add(lower_bound=lo, upper_bound=hi, objective_coefficient=c)
    ptr, idx, val = lp.A.indptr, lp.A.indices.tolist(), lp.A.data.tolist()
    for i, (lo, hi) in enumerate(zip(lp.rlo.tolist(), lp.rhi.tolist(), strict=True)):
        s, e = int(ptr[i]), int(ptr[i + 1])
        proto.constraint.add(
            lower_bound=lo, upper_bound=hi, var_index=idx[s:e], coefficient=val[s:e]
        )
    solver = pywraplp.Solver.CreateSolver("GLOP")
    status = solver.LoadModelFromProto(proto)
    if status:
        raise RuntimeError(f"GLOP could not load the recourse LP: {status}")
    solver.SetSolverSpecificParametersAsString(WARM)
    return solver


def solve_recourse(lp: RecourseLP, q: np.ndarray) -> RecourseOutcome:
    """Every sample (rows of q) of one date on one solver, each from the last one's basis.
    A re-solve that does not end optimal is repeated cold on a fresh solver."""
    _, pywraplp = _ortools()
    n, n_rows = q.shape[0], len(lp.rlo)
    cost, spot, short = np.zeros(n), np.zeros(n), np.zeros_like(q)
    s_cols, y_cols = lp.s_cols.tolist(), lp.y_cols.tolist()
    solver = _load(lp)
    for i in range(n):
        rhs = np.bincount(lp.rows_o, q[i], n_rows) - np.bincount(lp.rows_d, q[i], n_rows)
        _set_sample(solver, lp, q[i], rhs)
        if solver.Solve() != pywraplp.Solver.OPTIMAL:
            solver = _load(lp)  # a fresh solver, this sample solved cold
            solver.SetSolverSpecificParametersAsString("")
            _set_sample(solver, lp, q[i], rhs)
            if solver.Solve() != pywraplp.Solver.OPTIMAL:
                raise RuntimeError("the fixed-truck LP found no optimal solution")
            solver.SetSolverSpecificParametersAsString(WARM)
        cost[i] = solver.Objective().Value() - lp.offset
        # Only the columns reported are read back: one call per column.
        s_val = np.array([solver.variable(c).solution_value() for c in s_cols])
        short[i] = np.clip(s_val, 0.0, q[i])
        if lp.spot:
            y_val = np.array([solver.variable(c).solution_value() for c in y_cols])
            spot[i] = float((y_val - lp.plan_y).clip(min=0).sum())
    return RecourseOutcome(cost, short, spot)


def _set_sample(solver: Any, lp: RecourseLP, q: np.ndarray, rhs: np.ndarray) -> None:
    """One sample's volumes: conservation right-hand sides and unserved upper bounds."""
    for r, v in zip(lp.changed_rows.tolist(), rhs[lp.changed_rows].tolist(), strict=True):
        solver.constraint(r).SetBounds(v, v)
    for c, v in zip(lp.s_cols.tolist(), q.tolist(), strict=True):
        solver.variable(c).SetUb(v)


def _quiet_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers, so a worker
    # must not die printing a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _context() -> BaseContext:
    """Fork where there is fork: a forked worker has mmplan and OR-Tools loaded already,
    where a spawned one spends seconds importing them (mmplan.plan imports every stage).
    A worker only solves LPs (NumPy and OR-Tools, no Polars, no logging), so the locks of
    the parent's idle threads that fork copies are never taken in it."""
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def _solve_task(task: RecourseTask) -> RecourseOutcome:
    return task.solve()


def solve_dates(
    tasks: list[RecourseTask],
    workers: int,
    done: Callable[[int, int], None] | None = None,
) -> list[RecourseOutcome]:
    """Every task's LP built and its samples routed: in `workers` processes when the run
    has enough LPs to pay for them, else here, one after the other; `done(k, i)` as task i
    ends, the k-th to. The answers do not depend on where they ran (each date's samples
    go through one solver in order)."""
    done = done or (lambda k, i: None)
    lps = sum(t.q.shape[0] for t in tasks)
    workers = min(workers, len(tasks), os.cpu_count() or 1)
    if workers <= 1 or lps < PROCESS_MIN_LPS:
        out = []
        for i, task in enumerate(tasks):
            out.append(task.solve())
            done(i + 1, i)
        return out
    # Largest first, so that no worker is left with a long date at the end.
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i].q.size)
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_quiet_worker)
    try:
        futures = {pool.submit(_solve_task, tasks[i]): i for i in order}
        results = {}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            done(len(results), futures[future])
        out = [results[i] for i in range(len(tasks))]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()  # a worker in a solve would otherwise finish its date first
        raise
    pool.shutdown()
    return out
