"""Benchmark `mmplan simulate` on the network of `mmplan sample` (925 lanes, 14 days).

The instance is scenario_bench's: the last 14 days of the sample history as a forecast with
an 80% interval of +-25% per lane, planned by `optimize` (relative_gap 0.02). It prints:

1. the simulation of `--samples` (200) samples on the plan's trucks as `simulate` runs it
   (warm-started dual simplex per date, dates in worker processes), wall seconds;
2. the approach it replaced (one cold GLOP solve per sample through a fresh model-builder
   solver, dates on threads) on `--old-samples` (10) samples of every date, its seconds per
   LP, extrapolated linearly to the same run (a cold solve does not get faster with more
   samples), and the ratio;
3. that both give the same recourse cost on those samples (largest relative difference).

    .venv/bin/python benchmarks/simulate_bench.py [--samples 200] [--old-samples 10]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
from scenario_bench import instance

from mmplan.config import OptimizeConfig, SimulateConfig
from mmplan.plan import optimize
from mmplan.plan.recourse import RecourseLP
from mmplan.plan.simulation import PlanTables, sample_demand, simulate
from mmplan.plan.solve import run
from mmplan.plan.threads import map_on_threads


def cold(lp: RecourseLP, q: np.ndarray) -> np.ndarray:
    """The replaced approach: per sample, set the bounds on the date's model and solve it
    with a new GLOP ModelSolverHelper (no basis kept). Returns the recourse cost."""
    import ortools.linear_solver.python.model_builder_helper as mbh

    h = mbh.ModelBuilderHelper()
    h.fill_model_from_sparse_data(lp.lb, lp.ub, lp.obj, lp.rlo, lp.rhi, lp.A)
    n_rows, out = len(lp.rlo), np.zeros(q.shape[0])
    for i in range(q.shape[0]):
        rhs = np.bincount(lp.rows_o, q[i], n_rows) - np.bincount(lp.rows_d, q[i], n_rows)
        for r in lp.changed_rows.tolist():
            h.set_constraint_lower_bound(r, rhs[r])
            h.set_constraint_upper_bound(r, rhs[r])
        for col, v in zip(lp.s_cols.tolist(), q[i].tolist(), strict=True):
            h.set_var_upper_bound(col, v)
        out[i] = run(h, "GLOP", 600.0).objective - lp.offset
    return out


def plan_tables(inst, cfg, cache: Path | None) -> PlanTables:
    if cache is not None and (cache / "trucks.parquet").exists():
        return PlanTables(
            pl.read_parquet(cache / "trucks.parquet"), pl.read_parquet(cache / "nodes.parquet")
        )
    base = optimize(
        inst["forecast"].filter(pl.col("level") == "lane"), inst["nodes"], inst["lanes"], cfg
    )
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        base.trucks.write_parquet(cache / "trucks.parquet")
        base.nodes.write_parquet(cache / "nodes.parquet")
    return PlanTables(base.trucks, base.nodes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--old-samples", type=int, default=10)
    parser.add_argument("--plan-cache", type=Path, help="keep the plan here between runs")
    args = parser.parse_args()
    inst = instance()
    cfg = OptimizeConfig(time_limit=60.0, relative_gap=0.02, workers=2)
    plan = plan_tables(inst, cfg, args.plan_cache)
    n_dates = inst["forecast"]["date"].n_unique()
    sim = SimulateConfig(samples=args.samples, seed=1)
    load = os.getloadavg()[0]
    print(f"network: {inst['lanes'].height} lanes, {n_dates} dates; load {load:.1f}")

    import mmplan.plan.recourse as recourse
    import mmplan.plan.simulation as simulation

    tasks: list[recourse.RecourseTask] = []
    real = recourse.solve_dates

    def keep(found, workers, done=None):
        tasks[:] = found  # the same LPs, for the old approach below
        return real(found, workers, done)

    simulation.solve_dates = keep
    started = time.perf_counter()
    ds = sample_demand(inst["forecast"], sim, sim.samples, sim.seed)
    res = simulate({"base": plan}, ds, inst["nodes"], inst["lanes"], cfg, sim)
    new = time.perf_counter() - started
    lps = args.samples * n_dates
    s = res.summary["plans"]["base"]
    print(
        f"new: simulate {args.samples} samples x {n_dates} dates = {lps} LPs: {new:.1f} s wall "
        f"({new / lps * 1000:.1f} ms per LP); P(any unserved) {s['p_any_unserved']:.0%}, "
        f"cost P50 {s['cost_p50']:,.0f} P90 {s['cost_p90']:,.0f}"
    )
    k = min(args.old_samples, args.samples)
    captured = [
        (recourse.build_recourse(t.net, t.po, t.pt, t.q_env, t.trucks, t.added, t.config), t.q)
        for t in tasks
    ]
    started = time.perf_counter()
    old_costs = map_on_threads(lambda i: cold(captured[i][0], captured[i][1][:k]), n_dates, 2)
    old = time.perf_counter() - started
    new_costs = [recourse.solve_recourse(lp, q[:k]).cost for lp, q in captured]
    diff = max(
        float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.0)))
        for a, b in zip(old_costs, new_costs, strict=True)
    )
    per = old / (k * n_dates)
    print(
        f"old: cold solve per sample, {k} samples x {n_dates} dates on 2 threads: {old:.1f} s "
        f"({per * 1000:.1f} ms per LP); {lps} LPs would take {per * lps:.0f} s"
    )
    print(
        f"ratio old/new: {per * lps / new:.1f}x; largest relative cost difference "
        f"{diff:.1e}; load now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
