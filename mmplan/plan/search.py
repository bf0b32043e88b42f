"""Primal search for one date: slope scaling with long-term memory, and the plan pool.

Slope scaling (Crainic, Gendron & Hernu 2004) solves the flow LP with each lane's truck cost
spread over the volume it carries and rounds the trucks up. One pass from the LP relaxation
settles on one plan; on networks where fixed costs dominate that plan is often a few percent
above the best, and SCIP restricted to its trucks can only close lanes, so it finds nothing
better. Here a first pass starts from the relaxation, and further passes restart from
perturbed rates built from long-term memory: how often each lane carried volume across all
rounds so far. Even passes diversify (lanes used often cost more, with a seeded random
factor), odd passes intensify (the best plan's lanes at their actual cost per package, the
others at full truck cost). Every distinct rounded plan goes into a pool; the union of the
lanes of the pool's best plans is the neighbourhood the restricted MIP searches (a
RINS-like restriction: it can combine plans, not only close lanes).

Everything here is deterministic for given inputs: the passes and rounds are counted, the
random factors come from a fixed seed, and the flow LPs are GLOP's (deterministic). The
wall clock only cuts a pass short when the date's hard deadline comes first, and the result
says so (`timed_out`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mmplan.config import OptimizeConfig
from mmplan.plan.model import Model
from mmplan.plan.network import Network

# Diversifying passes raise a lane's rate by this much per unit of its use frequency.
_DIVERSIFY = 0.5
# ... times a random factor in [1 - _NOISE, 1 + _NOISE] from the fixed seed.
_NOISE = 0.2
# A pass stops after this many rounds without a better plan of its own.
_STALE = 5


@dataclass
class Plan:
    """A plan (all column values) and its objective."""

    values: np.ndarray
    objective: float


@dataclass
class SearchResult:
    """The pool of distinct plans found (best first), how much work was done, and whether
    the deadline cut the search short of its work limits."""

    pool: list[Plan]
    lp_solves: int = 0
    timed_out: bool = False
    found_in_pass: int = 0  # the pass whose plan is best (0: the first, from the LP)
    frequency: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def best(self) -> Plan:
        return self.pool[0]


def lane_loads(m: Model, values: np.ndarray) -> np.ndarray:
    """Volume on each truck column's lane."""
    lane_of_x = np.searchsorted(m.y_lane, m.x_lane)
    return np.bincount(lane_of_x, weights=values[: m.n_x], minlength=m.n_y)


def neighbourhood(m: Model, pool: list[Plan], size: int) -> np.ndarray:
    """Truck upper bounds for the restricted MIP: on each lane the most trucks any of the
    pool's `size` best plans has there (0 on lanes none of them uses)."""
    ys = np.array([p.values[m.y_cols] for p in pool[: max(size, 1)]])
    return np.maximum(ys.max(axis=0), 0.0)


class _Pool:
    """Distinct plans by their trucks, best first, at most `size` kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.plans: list[Plan] = []
        self.keys: list[bytes] = []
        self.passes: list[int] = []

    def add(self, m: Model, plan: Plan, pass_no: int) -> bool:
        """Add a plan unless its trucks are already in; True when it is the new best."""
        key = np.round(plan.values[m.y_cols]).astype(np.int64).tobytes()
        if key in self.keys:
            return False
        best = not self.plans or plan.objective < self.plans[0].objective - 1e-9 * abs(
            plan.objective
        )
        at = int(np.searchsorted([p.objective for p in self.plans], plan.objective, "right"))
        self.plans.insert(at, plan)
        self.keys.insert(at, key)
        self.passes.insert(at, pass_no)
        del self.plans[self.size :], self.keys[self.size :], self.passes[self.size :]
        return best


def slope_search(
    m: Model,
    flow_model: Model,
    net: Network,
    config: OptimizeConfig,
    start: np.ndarray,
    deadline: float,
    lp: Callable[[Model, np.ndarray, float], np.ndarray | None],
    round_trucks: Callable[[np.ndarray], np.ndarray],
) -> SearchResult:
    """Slope-scaling passes from the LP relaxation `start`; see the module docstring.

    `flow_model` has `m`'s columns without the cut rows (the flow LPs need none: trucks
    are free in them). `lp(model, obj, limit)` solves a flow LP and returns its values or
    None; `round_trucks(values)` is the rounded plan of a flow. Work: at most
    `config.slope_passes` passes of `config.slope_rounds` LPs each.
    """
    u, f = m.y_cap, net.f[m.y_lane]
    lane_of_x = np.searchsorted(m.y_lane, m.x_lane)
    rng = np.random.default_rng(config.seed)
    pool = _Pool(max(config.pool_size, 1))
    first = round_trucks(start)
    pool.add(m, Plan(first, float(m.obj @ first) + m.offset), 0)
    used_count = np.zeros(m.n_y)
    result = SearchResult([], frequency=used_count)
    rho = f / u
    values: np.ndarray | None = start
    for pass_no in range(max(config.slope_passes, 1)):
        if pass_no > 0:
            freq = used_count / max(result.lp_solves, 1)
            rho = _restart_rates(m, net, pool.plans[0].values, freq, pass_no, rng)
            values = None
        stale = 0
        for _ in range(max(config.slope_rounds, 1)):
            if values is not None:
                load = np.bincount(lane_of_x, weights=values[: m.n_x], minlength=m.n_y)
                used = load > 1e-9
                trucks = np.ceil(load / u - 1e-6)
                rho = np.where(used, f * np.maximum(trucks, 1) / np.maximum(load, 1e-9), rho)
            obj = m.obj.copy()
            obj[: m.n_x] += rho[lane_of_x]
            obj[m.y_cols] = 0.0
            left = deadline - time.perf_counter()
            if left <= 0.05:
                result.timed_out = True
                break
            out = lp(flow_model, obj, left)
            if out is None:
                break
            result.lp_solves += 1
            values = out
            used_count += lane_loads(m, values) > 1e-9
            cand = round_trucks(values)
            if pool.add(m, Plan(cand, float(m.obj @ cand) + m.offset), pass_no):
                stale = 0
            else:
                stale += 1
                if stale >= _STALE:
                    break
        if result.timed_out:
            break
    result.pool = pool.plans
    result.found_in_pass = pool.passes[0]
    result.frequency = used_count / max(result.lp_solves, 1)
    return result


def _restart_rates(
    m: Model,
    net: Network,
    best: np.ndarray,
    freq: np.ndarray,
    pass_no: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A pass's starting lane rates from long-term memory: odd passes intensify around the
    best plan, even passes diversify away from the lanes used most."""
    u, f = m.y_cap, net.f[m.y_lane]
    full = f / u
    noise = rng.uniform(1 - _NOISE, 1 + _NOISE, size=m.n_y)
    if pass_no % 2 == 1:
        load = lane_loads(m, best)
        trucks = np.maximum(np.round(best[m.y_cols]), 1.0)
        actual = f * trucks / np.maximum(load, 1e-9)
        return np.where(load > 1e-9, actual, full) * noise
    return full * (1 + _DIVERSIFY * freq) * noise
