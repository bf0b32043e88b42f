"""Benchmark scenarios and simulation on the network of `mmplan sample` (925 lanes, 14 days).

Demand is the last 14 days of the sample history as a forecast table: each lane's volume is
its `forecast`, with an 80% interval of +-25% (origin rows are the lanes' sums, their
interval the lanes' widths combined as independent), so the benchmark needs no model fit.

It prints:

1. one scenario (a sort center down on 2 of 14 dates) planned with the base: dates
   re-solved against reused, MIPs solved and wall seconds, beside the same scenario planned
   as if every date changed (14 re-solved dates);
2. five scenarios (2-3 changed dates each) in one run against the sum of five runs alone;
3. five scenarios that each change every date (demand times 0.9 to 1.3) in one run, base
   included, against the sum of solving each alone (`optimize` on its changed demand), on
   the first `--every-date-days` (3) dates with `--every-date-limit` (900 s) so that the
   dates stop at relative_gap 0.02 or their work limits, not at their time share: issue 14
   asks the run together to take at most 1.2x the sum;
4. `simulate` with 200 samples of that forecast on the base plan's trucks.

    .venv/bin/python benchmarks/scenario_bench.py [--time-limit 60] [--samples 200]
        [--skip-scenarios] [--skip-every-date] [--skip-simulate]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import polars as pl

from mmplan.config import OptimizeConfig, SampleConfig, SimulateConfig
from mmplan.plan import optimize, plan_scenarios
from mmplan.plan.simulation import PlanTables, sample_demand, simulate
from mmplan.scenario_file import ScenarioFile


def instance(days: int = 14, seed: int = 7) -> dict[str, pl.DataFrame]:
    """Nodes, lanes and a forecast table made of the last `days` days of history."""
    from mmplan.synthetic import sample

    tables = sample(SampleConfig(seed=seed))
    history = tables["history"]
    last = history["date"].max()
    lanes = (
        history.filter(pl.col("date") > last - pl.duration(days=days))
        .select("date", "origin", "destination", pl.col("volume").alias("forecast"))
        .with_columns(
            level=pl.lit("lane"),
            unique_id=pl.format("lane:{}/{}", "origin", "destination"),
            lo_80=pl.col("forecast") * 0.75,
            hi_80=pl.col("forecast") * 1.25,
        )
    )
    origins = (
        lanes.group_by("origin", "date")
        .agg(
            pl.col("forecast").sum(),
            ((pl.col("hi_80") - pl.col("forecast")) ** 2).sum().sqrt().alias("half"),
        )
        .with_columns(
            level=pl.lit("origin"),
            unique_id=pl.format("origin:{}", "origin"),
            destination=pl.lit(None, dtype=pl.String),
            lo_80=pl.col("forecast") - pl.col("half"),
            hi_80=pl.col("forecast") + pl.col("half"),
        )
        .drop("half")
    )
    forecast = pl.concat([lanes, origins.select(lanes.columns)]).with_columns(model=pl.lit("x"))
    return {"nodes": tables["nodes"], "lanes": tables["lanes"], "forecast": forecast}


def busiest_sc(inst: dict[str, pl.DataFrame]) -> list[str]:
    sc = inst["nodes"].filter(pl.col("kind") == "SC")["node"].to_list()
    f = inst["forecast"].filter(pl.col("level") == "lane")
    load = (
        f.filter(pl.col("destination").is_in(sc))
        .group_by("destination")
        .agg(pl.col("forecast").sum())
    )
    return load.sort("forecast", descending=True)["destination"].to_list()


def scenarios_of(inst: dict[str, pl.DataFrame]) -> list[dict[str, Any]]:
    dates = sorted(inst["forecast"]["date"].unique().to_list())
    scs = busiest_sc(inst)
    return [
        {
            "name": "sc_down",
            "change": [
                {"type": "facility_down", "facility": scs[0], "start": dates[3], "end": dates[4]}
            ],
        },
        {
            "name": "surge",
            "change": [{"type": "demand", "multiply": 1.15, "start": dates[0], "end": dates[2]}],
        },
        {
            "name": "sc2_down",
            "change": [
                {"type": "facility_down", "facility": scs[1], "start": dates[8], "end": dates[9]}
            ],
        },
        {
            "name": "capacity",
            "change": [
                {
                    "type": "capacity",
                    "facility": scs[2],
                    "multiply": 0.8,
                    "start": dates[10],
                    "end": dates[12],
                }
            ],
        },
        {"name": "late_surge", "change": [{"type": "demand", "multiply": 1.1, "start": dates[11]}]},
    ]


def run(inst, cfg, specs) -> tuple[Any, float]:
    started = time.perf_counter()
    demand = inst["forecast"].filter(pl.col("level") == "lane")
    result = plan_scenarios(
        demand,
        inst["nodes"],
        inst["lanes"],
        cfg,
        ScenarioFile.model_validate({"scenario": specs}),
        "forecast",
    )
    return result, time.perf_counter() - started


def line(label: str, result, wall: float) -> str:
    solved = sum(len(sp.resolved_dates) for sp in result.plans.values())
    reused = sum(len(sp.reused_dates) for sp in result.plans.values())
    return f"{label:<44} MIPs solved {solved:3d}  dates reused {reused:3d}  wall {wall:7.1f}s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--skip-scenarios", action="store_true", help="simulate only")
    parser.add_argument(
        "--skip-simulate", action="store_true", help="scenarios only (simulate_bench.py)"
    )
    parser.add_argument("--skip-every-date", action="store_true")
    parser.add_argument("--every-date-limit", type=float, default=900.0)
    parser.add_argument("--every-date-days", type=int, default=3)
    args = parser.parse_args()
    inst = instance()
    cfg = OptimizeConfig(time_limit=args.time_limit, relative_gap=0.02)
    n_lanes, n_dates = inst["lanes"].height, inst["forecast"]["date"].n_unique()
    print(f"network: {n_lanes} lanes, {n_dates} dates, time_limit {args.time_limit:g} s per run")
    specs = scenarios_of(inst)
    if not args.skip_scenarios:
        scenario_figures(inst, cfg, specs)
    if not args.skip_every_date:
        first = sorted(inst["forecast"]["date"].unique().to_list())[: args.every_date_days]
        short = dict(inst, forecast=inst["forecast"].filter(pl.col("date").is_in(first)))
        every_date_figures(short, cfg.model_copy(update={"time_limit": args.every_date_limit}))
    if not args.skip_simulate:
        simulate_figures(inst, cfg, args.samples, n_dates)


def scenario_figures(inst, cfg, specs) -> None:
    # 1. Only the changed dates are re-solved.
    one, wall = run(inst, cfg, specs[:1])
    print(line("1 scenario (2 changed dates) + base", one, wall))
    every = dict(specs[0], fleet={"total": 100_000})  # a fleet change touches every date
    all_dates, wall_all = run(inst, cfg, [every])
    print(line("same, every date re-solved (fleet changed)", all_dates, wall_all))

    # 2. Five scenarios together vs alone.
    together, wall_t = run(inst, cfg, specs)
    print(line("5 scenarios together + base", together, wall_t))
    alone_wall, alone_solved = 0.0, 0
    for spec in specs:
        res, w = run(inst, cfg, [spec])
        alone_wall += w
        alone_solved += sum(len(sp.resolved_dates) for sp in res.plans.values())
    print(
        f"{'5 scenarios alone (each with its base), sum':<44} MIPs solved {alone_solved:3d}"
        f"  {'':17} wall {alone_wall:7.1f}s"
    )
    print(
        together.comparison.select(
            "scenario",
            "dates_resolved",
            "total_cost",
            "delta_total_cost",
            "unserved_volume",
            "closed_facility_volume",
        )
        .to_pandas()
        .to_string(index=False)
    )


def every_date_figures(inst, cfg) -> None:
    # 3. Scenarios that change every date: together (base included) vs each alone.
    factors = (0.9, 1.05, 1.1, 1.2, 1.3)
    specs = [{"name": f"x{m:g}", "change": [{"type": "demand", "multiply": m}]} for m in factors]
    together, wall_t = run(inst, cfg, specs)
    print(line("5 scenarios changing every date + base", together, wall_t))
    demand = inst["forecast"].filter(pl.col("level") == "lane")
    alone = 0.0
    for m in factors:
        scaled = demand.with_columns(pl.col("forecast") * m)
        started = time.perf_counter()
        optimize(scaled, inst["nodes"], inst["lanes"], cfg, column="forecast")
        alone += time.perf_counter() - started
    n = len(factors) * demand["date"].n_unique()
    print(
        f"{'the 5 solved alone (optimize), sum':<44} MIPs solved {n:3d}  {'':17} wall "
        f"{alone:7.1f}s; together / alone = {wall_t / alone:.2f}x (target at most 1.2x)"
    )
    short = [
        name
        for name, sp in together.plans.items()
        if sp.plan is not None and sp.plan.summary.get("short_of_time_dates")
    ]
    print(f"plans with dates stopped by the clock before the gap: {short or 'none'}")


def simulate_figures(inst, cfg, samples: int, n_dates: int) -> None:
    # 3. Simulation on the base plan's trucks.
    base = optimize(
        inst["forecast"].filter(pl.col("level") == "lane"), inst["nodes"], inst["lanes"], cfg
    )
    sim = SimulateConfig(samples=samples, seed=1)
    started = time.perf_counter()
    ds = sample_demand(inst["forecast"], sim, sim.samples, sim.seed)
    sampled = time.perf_counter() - started
    res = simulate(
        {"base": PlanTables(base.trucks, base.nodes)}, ds, inst["nodes"], inst["lanes"], cfg, sim
    )
    total = time.perf_counter() - started
    s = res.summary["plans"]["base"]
    print(
        f"simulate {samples} samples x {n_dates} dates: {total:.1f} s "
        f"(sampling {sampled:.2f} s, {total / (samples * n_dates) * 1000:.1f} ms per LP); "
        f"P(any unserved) {s['p_any_unserved']:.0%}, "
        f"E unserved {s['expected_unserved_volume']:,.0f}, "
        f"cost P50 {s['cost_p50']:,.0f} P90 {s['cost_p90']:,.0f} P99 {s['cost_p99']:,.0f}"
    )


if __name__ == "__main__":
    main()
