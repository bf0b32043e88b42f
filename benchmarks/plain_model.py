"""The benchmark's baseline: all dates in one plain MIP (weak linking, no heuristic).

`optimize_plain` plans the same tables as `mmplan.optimize` but stacks every date's model
(built with `strong=False`: no strong linking, no cuts) into one block-diagonal model and
solves it with SCIP to the time limit, with no first plan and no hint. It is what
benchmarks/optimize_bench.py compares the production method (per-date models, strong
linking and cuts, heuristics, in parallel) against; it is built from the package's own
parts, so only the method differs.
"""

from __future__ import annotations

import math
import time

import numpy as np
import polars as pl
import scipy.sparse as sp

from mmplan.config import OptimizeConfig
from mmplan.errors import InfeasibleError
from mmplan.plan import Plan
from mmplan.plan.assemble import assemble
from mmplan.plan.demand import Day, scenario
from mmplan.plan.model import Model, build_model
from mmplan.plan.network import Network
from mmplan.plan.solve import (
    DateOutcome,
    DayOutcome,
    by_destination,
    clean,
    helper,
    mip_params,
    no_solution,
    run,
)
from mmplan.plan.threads import map_on_threads

_PARTS = ["x", "y", "z", "s", "t"]


def optimize_plain(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    column: str | None = None,
) -> Plan:
    """Plan every date of `demand` as one plain MIP (the MIP only: no --relax)."""
    if config.relax:
        raise ValueError("the plain single model is a MIP baseline; it has no --relax")
    column = column or config.column
    started = time.perf_counter()
    net, days, penalty, scale = scenario(demand, nodes, lanes, config, column)
    outcomes = solve_plain(net, days, penalty, config) if days else []
    return assemble(net, outcomes, penalty, config, column, scale, started, "plain")


def stack(models: list[Model]) -> Model:
    """Several dates as one block-diagonal model (the plain single-model baseline)."""
    cat = np.concatenate
    # Reorder each model's columns into the global [x | y | z | s | t] layout.
    sizes = {p: [getattr(m, f"n_{p}") for m in models] for p in _PARTS}
    starts = {}
    pos = 0
    for p in _PARTS:
        starts[p] = pos + np.concatenate([[0], np.cumsum(sizes[p])[:-1]])
        pos += sum(sizes[p])
    perms, row_off, blocks = [], 0, []
    for b, m in enumerate(models):
        perm = np.concatenate([starts[p][b] + np.arange(getattr(m, f"n_{p}")) for p in _PARTS])
        perms.append(perm)
        coo = m.A.tocoo()
        blocks.append((coo.row + row_off, perm[coo.col], coo.data))
        row_off += m.A.shape[0]
    ncol = pos
    A = sp.csr_matrix(
        (cat([b[2] for b in blocks]), (cat([b[0] for b in blocks]), cat([b[1] for b in blocks]))),
        shape=(row_off, ncol),
    )
    lb, ub, obj = np.zeros(ncol), np.zeros(ncol), np.zeros(ncol)
    for perm, m in zip(perms, models, strict=True):
        lb[perm], ub[perm], obj[perm] = m.lb, m.ub, m.obj
    first = models[0]
    n_x, n_y, n_z, n_s, n_t = (sum(sizes[p]) for p in _PARTS)
    return Model(
        x_key=first.x_key,
        x_lane=first.x_lane,
        y_lane=first.y_lane,
        z_node=first.z_node,
        group=first.group,
        lb=lb,
        ub=ub,
        obj=obj,
        offset=sum(m.offset for m in models),
        A=A,
        rlo=cat([m.rlo for m in models]),
        rhi=cat([m.rhi for m in models]),
        cap_rows=np.zeros(0, int),
        cap_node=np.zeros(0, int),
        t_node=np.zeros(0, int),
        n_x=n_x,
        n_y=n_y,
        n_z=n_z,
        n_s=n_s,
        n_t=n_t,
    )


def solve_plain(
    net: Network, days: list[Day], penalty: float, config: OptimizeConfig
) -> list[DateOutcome]:
    """All dates in one MIP, weak linking, no heuristic: the single-model baseline."""
    started = time.perf_counter()
    parts: list[tuple[DateOutcome, Network]] = []
    for date, po, pt, q in days:
        rev = by_destination(po, pt)
        n2 = net.reversed() if rev else net
        a, b = (pt, po) if rev else (po, pt)
        m = build_model(n2, a, b, q, penalty, strong=False)
        empty = DayOutcome(m, np.zeros(0), math.nan, math.nan, "", None, {}, math.nan)
        parts.append((DateOutcome(date, rev, a, b, q, empty), n2))
    big = stack([p.day.model for p, _ in parts])
    build = time.perf_counter() - started
    h = helper(big, True)  # y columns of every day sit together after all x columns
    # On a thread of its own, like the dates, so that Ctrl-C stops it.
    [res] = map_on_threads(
        lambda _: run(
            h,
            config.solver,
            config.time_limit,
            # The unserved penalty can swamp a relative gap; run to the time limit.
            mip_params(config.solver, 1e-6, config.workers),
        ),
        1,
        1,
    )
    if res.values is None:
        raise InfeasibleError(no_solution(config.solver, res.status, config.time_limit))
    # Unstack into per-day outcomes.
    outcomes = []
    offs = dict.fromkeys(_PARTS, 0)
    base, pos = {}, 0
    for p in _PARTS:
        base[p] = pos
        pos += getattr(big, f"n_{p}")
    for part, n2 in parts:
        m = part.day.model
        vals = []
        for p in _PARTS:
            k = getattr(m, f"n_{p}")
            vals.append(res.values[base[p] + offs[p] : base[p] + offs[p] + k])
            offs[p] += k
        v = clean(m, np.concatenate(vals), n2)
        obj = float(m.obj @ v) + m.offset
        timings = {"build": build / len(parts), "solve": res.seconds / len(parts)}
        day = DayOutcome(m, v, obj, math.nan, res.status, None, timings, math.nan)
        outcomes.append(part._replace(day=day))
    # The bound is only known for the whole model: spread it by objective share.
    total = sum(o.day.objective for o in outcomes) or 1.0
    for o in outcomes:
        o.day.bound = res.bound * o.day.objective / total
    return outcomes
